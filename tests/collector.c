/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — the streams one connection sees, and Prompt calls */
#include "config.h"

#include <string.h>

#include <json-glib/json-glib.h>

#include "collector.h"

/* ---- records ------------------------------------------------------------ */

static void
turn_free (AbTurn *t)
{
  g_free (t->path);
  g_ptr_array_unref (t->updates);
  g_ptr_array_unref (t->chunks);
  g_string_free (t->text, TRUE);
  g_free (t->reason);
  g_free (t->message);
  g_free (t);
}

static void
permission_free (AbPermission *perm)
{
  g_free (perm->path);
  g_free (perm->request);
  g_free (perm->request_json);
  g_free (perm);
}

static AbTurn *
find_turn (AbCollector *c, const char *path, guint64 turn)
{
  for (guint i = 0; i < c->turns->len; i++)
    {
      AbTurn *t = c->turns->pdata[i];

      if (t->turn == turn && g_str_equal (t->path, path))
        return t;
    }
  return NULL;
}

/* The record of @turn on @path, created at the first signal of the turn. */
static AbTurn *
get_turn (AbCollector *c, const char *path, guint64 turn)
{
  AbTurn *t = find_turn (c, path, turn);

  if (t != NULL)
    return t;
  t = g_new0 (AbTurn, 1);
  t->path = g_strdup (path);
  t->turn = turn;
  t->updates = g_ptr_array_new_with_free_func (g_free);
  t->chunks = g_ptr_array_new_with_free_func (g_free);
  t->text = g_string_new (NULL);
  t->first_seq = c->seq;
  g_ptr_array_add (c->turns, t);
  return t;
}

AbTurn *
ab_collector_lookup (AbCollector *c, const char *thread, guint64 turn)
{
  g_autofree char *path = ab_session_path (thread);

  return find_turn (c, path, turn);
}

/* Keeps the update's JSON, and the text of an agent_message_chunk. */
static void
turn_add_update (AbTurn *t, const char *json)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  JsonObject *update, *content;

  g_ptr_array_add (t->updates, g_strdup (json));
  if (!json_parser_load_from_data (parser, json, -1, &error))
    {
      g_test_message ("update is not JSON: %s: %.200s", error->message, json);
      g_test_fail ();
      return;
    }
  if (!JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    {
      g_test_message ("update is not a JSON object: %.200s", json);
      g_test_fail ();
      return;
    }
  update = json_node_get_object (json_parser_get_root (parser));
  if (g_strcmp0 (json_object_get_string_member_with_default (
                     update, "sessionUpdate", NULL),
                 "agent_message_chunk")
          != 0
      || !json_object_has_member (update, "content")
      || !JSON_NODE_HOLDS_OBJECT (json_object_get_member (update, "content")))
    return;
  content = json_object_get_object_member (update, "content");
  if (g_strcmp0 (
          json_object_get_string_member_with_default (content, "type", NULL),
          "text")
      != 0)
    return;
  g_ptr_array_add (t->chunks,
                   g_strdup (json_object_get_string_member_with_default (
                       content, "text", "")));
  g_string_append (t->text, t->chunks->pdata[t->chunks->len - 1]);
}

/* ---- signals ------------------------------------------------------------ */

/* A session's streaming signals are numbered, each above the one before. */
static void
check_stream_seq (AbCollector *c, const char *path, const char *member,
                  GVariant *params)
{
  gsize n = g_variant_n_children (params);
  g_autoptr (GVariant) last_child = NULL;
  guint64 seq, *last;

  if (n > 0)
    last_child = g_variant_get_child_value (params, n - 1);
  if (last_child == NULL
      || !g_variant_is_of_type (last_child, G_VARIANT_TYPE_UINT64))
    {
      g_test_message ("%s on %s has no stream number", member, path);
      g_test_fail ();
      return;
    }
  seq = g_variant_get_uint64 (last_child);
  last = g_hash_table_lookup (c->stream_seq, path);
  if (last != NULL && seq <= *last)
    {
      g_test_message ("%s on %s numbered %" G_GUINT64_FORMAT
                      ", not above %" G_GUINT64_FORMAT,
                      member, path, seq, *last);
      g_test_fail ();
    }
  if (last == NULL)
    g_hash_table_insert (c->stream_seq, g_strdup (path),
                         last = g_new0 (guint64, 1));
  *last = seq;
}

static void
on_session_signal (GDBusConnection *connection, const char *sender,
                   const char *path, const char *iface, const char *member,
                   GVariant *params, gpointer user_data)
{
  AbCollector *c = user_data;

  c->seq++;
  c->session_signals++;
  if (!g_str_equal (member, "PropertiesChanged"))
    check_stream_seq (c, path, member, params);
  if (g_str_equal (member, "Update")
      && g_variant_is_of_type (params, G_VARIANT_TYPE ("(tast)")))
    {
      guint64 turn;
      g_autofree const char **updates = NULL;
      AbTurn *t;

      g_variant_get (params, "(t^a&st)", &turn, &updates, NULL);
      t = get_turn (c, path, turn);
      t->update_signals++;
      for (guint i = 0; updates[i] != NULL; i++)
        turn_add_update (t, updates[i]);
    }
  else if (g_str_equal (member, "TurnEnded")
           && g_variant_is_of_type (params, G_VARIANT_TYPE ("(tsst)")))
    {
      guint64 turn;
      const char *reason, *message;
      AbTurn *t;

      g_variant_get (params, "(t&s&st)", &turn, &reason, &message, NULL);
      t = get_turn (c, path, turn);
      c->turn_ended_count++;
      t->ended_count++;
      if (t->ended)
        {
          g_test_message ("TurnEnded twice for %s turn %" G_GUINT64_FORMAT
                          " (%s, then %s)",
                          path, turn, t->reason, reason);
          g_test_fail ();
        }
      t->ended = TRUE;
      t->ended_seq = c->seq;
      g_free (t->reason);
      g_free (t->message);
      t->reason = g_strdup (reason);
      t->message = g_strdup (message);
    }
  else if (g_str_equal (member, "PermissionRequested")
           && g_variant_is_of_type (params, G_VARIANT_TYPE ("(tsst)")))
    {
      AbPermission *perm = g_new0 (AbPermission, 1);

      perm->path = g_strdup (path);
      g_variant_get (params, "(tsst)", &perm->turn, &perm->request,
                     &perm->request_json, NULL);
      get_turn (c, path, perm->turn);
      g_ptr_array_add (c->perms, perm);
    }
  else if (g_str_equal (member, "PropertiesChanged"))
    c->session_signals--; /* not a streaming signal */
  else
    {
      g_test_message ("unexpected signal %s%s on %s", member,
                      g_variant_get_type_string (params), path);
      g_test_fail ();
    }
}

static void
on_manager_signal (GDBusConnection *connection, const char *sender,
                   const char *path, const char *iface, const char *member,
                   GVariant *params, gpointer user_data)
{
  AbCollector *c = user_data;
  const char *a, *b;

  c->seq++;
  if (g_str_equal (member, "SessionAdded")
      && g_variant_is_of_type (params, G_VARIANT_TYPE ("(so)")))
    {
      g_variant_get (params, "(&s&o)", &a, &b);
      g_ptr_array_add (c->added, g_strdup_printf ("%s %s", a, b));
    }
  else if (g_str_equal (member, "SessionRemoved")
           && g_variant_is_of_type (params, G_VARIANT_TYPE ("(ss)")))
    {
      g_variant_get (params, "(&s&s)", &a, &b);
      g_ptr_array_add (c->removed, g_strdup_printf ("%s %s", a, b));
    }
}

AbCollector *
ab_collector_new (GDBusConnection *connection)
{
  AbCollector *c = g_new0 (AbCollector, 1);

  c->connection = g_object_ref (connection);
  c->turns = g_ptr_array_new_with_free_func ((GDestroyNotify)turn_free);
  c->perms = g_ptr_array_new_with_free_func ((GDestroyNotify)permission_free);
  c->added = g_ptr_array_new_with_free_func (g_free);
  c->removed = g_ptr_array_new_with_free_func (g_free);
  c->stream_seq
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  /* Streaming signals of every session: a unicast signal arrives whatever
   * the match rule, a broadcast one only through it — so a connection
   * that should not get the stream would see a broadcast here. */
  c->session_sub = g_dbus_connection_signal_subscribe (
      connection, NULL, AB_SESSION_IFACE, NULL, NULL, NULL,
      G_DBUS_SIGNAL_FLAGS_NONE, on_session_signal, c, NULL);
  c->added_sub = g_dbus_connection_signal_subscribe (
      connection, NULL, AB_BROKER_IFACE, "SessionAdded", AB_BUS_PATH, NULL,
      G_DBUS_SIGNAL_FLAGS_NONE, on_manager_signal, c, NULL);
  c->removed_sub = g_dbus_connection_signal_subscribe (
      connection, NULL, AB_BROKER_IFACE, "SessionRemoved", AB_BUS_PATH, NULL,
      G_DBUS_SIGNAL_FLAGS_NONE, on_manager_signal, c, NULL);
  return c;
}

void
ab_collector_free (AbCollector *c)
{
  if (c == NULL)
    return;
  g_dbus_connection_signal_unsubscribe (c->connection, c->session_sub);
  g_dbus_connection_signal_unsubscribe (c->connection, c->added_sub);
  g_dbus_connection_signal_unsubscribe (c->connection, c->removed_sub);
  /* Let pending dispatches of the unsubscribed handlers run out before
   * their user data goes. */
  ab_drain_main_context ();
  g_object_unref (c->connection);
  g_ptr_array_unref (c->turns);
  g_ptr_array_unref (c->perms);
  g_ptr_array_unref (c->added);
  g_ptr_array_unref (c->removed);
  g_hash_table_unref (c->stream_seq);
  g_free (c);
}

gboolean
ab_collector_has (GPtrArray *list, const char *entry)
{
  for (guint i = 0; i < list->len; i++)
    if (g_str_equal (list->pdata[i], entry))
      return TRUE;
  return FALSE;
}

/* ---- turns -------------------------------------------------------------- */

gboolean
ab_turn_ended (AbCollector *c, const char *thread, guint64 turn)
{
  AbTurn *t = ab_collector_lookup (c, thread, turn);

  return t != NULL && t->ended;
}

gboolean
ab_turn_has_update (AbCollector *c, const char *thread, guint64 turn)
{
  AbTurn *t = ab_collector_lookup (c, thread, turn);

  return t != NULL && t->updates->len > 0;
}

gboolean
ab_turn_has_update_with (AbCollector *c, const char *thread, guint64 turn,
                         const char *needle)
{
  AbTurn *t = ab_collector_lookup (c, thread, turn);

  for (guint i = 0; t != NULL && i < t->updates->len; i++)
    if (strstr (t->updates->pdata[i], needle) != NULL)
      return TRUE;
  return FALSE;
}

AbTurn *
ab_wait_turn (AbCollector *c, const char *thread, guint64 turn, guint ms)
{
  AB_WAIT_FOR (ab_turn_ended (c, thread, turn), ms);
  return ab_collector_lookup (c, thread, turn);
}

void
ab_assert_stream (AbTurn *t, guint n, guint bytes)
{
  g_assert_nonnull (t);
  g_assert_cmpstr (t->reason, ==, "end_turn");
  g_assert_cmpuint (t->chunks->len, ==, n);
  for (guint i = 0; i < n; i++)
    {
      const char *chunk = t->chunks->pdata[i];
      g_autofree char *prefix = g_strdup_printf ("%u ", i + 1);

      if (!g_str_has_prefix (chunk, prefix) || strlen (chunk) != bytes)
        g_test_message ("chunk %u of %s turn %" G_GUINT64_FORMAT ": \"%s\"",
                        i + 1, t->path, t->turn, chunk);
      g_assert_true (g_str_has_prefix (chunk, prefix));
      g_assert_cmpuint (strlen (chunk), ==, bytes);
    }
}

/* ---- Prompt ------------------------------------------------------------- */

struct AbPromptCall
{
  AbCollector *order;
  char *thread;
  gboolean done;
  guint64 turn;
  guint64 seq; /* the collector's seq when the reply was dispatched */
  GError *error;
};

void
ab_prompt_call_free (AbPromptCall *p)
{
  g_free (p->thread);
  g_clear_error (&p->error);
  g_free (p);
}

static void
on_prompt_reply (GObject *source, GAsyncResult *result, gpointer user_data)
{
  AbPromptCall *p = user_data;
  g_autoptr (GVariant) reply = g_dbus_connection_call_finish (
      G_DBUS_CONNECTION (source), result, &p->error);

  if (reply != NULL)
    g_variant_get (reply, "(t)", &p->turn);
  if (p->order != NULL)
    p->seq = ++p->order->seq;
  p->done = TRUE;
}

AbPromptCall *
ab_prompt_send (GDBusConnection *connection, AbCollector *order,
                const char *thread, const char *text, const char *agent)
{
  AbPromptCall *p = g_new0 (AbPromptCall, 1);
  GVariantBuilder options;

  g_assert_true (order == NULL || order->connection == connection);
  g_variant_builder_init (&options, G_VARIANT_TYPE_VARDICT);
  if (agent != NULL)
    g_variant_builder_add (&options, "{sv}", "agent",
                           g_variant_new_string (agent));
  p->order = order;
  p->thread = g_strdup (thread);
  g_dbus_connection_call (connection, AB_BUS_NAME, AB_BUS_PATH, AB_BROKER_IFACE,
                          "Prompt",
                          g_variant_new ("(ssa{sv})", thread, text, &options),
                          G_VARIANT_TYPE ("(t)"), G_DBUS_CALL_FLAGS_NONE,
                          AB_CALL_TIMEOUT_MS, NULL, on_prompt_reply, p);
  return p;
}

guint64
ab_prompt_finish (AbPromptCall *p, GError **error)
{
  AbTurn *t;

  AB_WAIT_FOR (p->done, AB_CALL_TIMEOUT_MS + 2000);
  if (p->error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&p->error));
      return 0;
    }
  if (p->order == NULL)
    return p->turn;
  t = ab_collector_lookup (p->order, p->thread, p->turn);
  if (t != NULL && t->first_seq < p->seq)
    {
      g_test_message ("a signal of %s turn %" G_GUINT64_FORMAT
                      " arrived before the Prompt reply",
                      p->thread, p->turn);
      g_test_fail ();
    }
  return p->turn;
}

guint64
ab_prompt_on (GDBusConnection *connection, AbCollector *order,
              const char *thread, const char *text, const char *agent,
              GError **error)
{
  g_autoptr (AbPromptCall) p
      = ab_prompt_send (connection, order, thread, text, agent);

  return ab_prompt_finish (p, error);
}

guint64
ab_prompt (GDBusConnection *connection, AbCollector *order, const char *thread,
           const char *text)
{
  g_autoptr (GError) error = NULL;
  guint64 turn = ab_prompt_on (connection, order, thread, text, NULL, &error);

  g_assert_no_error (error);
  g_assert_cmpuint (turn, >, 0);
  return turn;
}
