/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentctl — prompt and watch: a main loop on a session's signals until
 * its turn ends, Ctrl+C or the broker leaves the bus; the events as text
 * (agentctl-stream.c) or as JSON lines
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>

#include <glib-unix.h>
#include <glib/gi18n.h>

#include "agentctl.h"
#include "error.h"
#include "names.h"

/* Prompt() returns as soon as the prompt is queued: never a long wait. */
#define AB_PROMPT_TIMEOUT_MSEC (60 * 1000)
#define AB_STDIN_MAX_BYTES (1024 * 1024)

/* ---- JSON helpers -------------------------------------------------- */

static void
print_json_line (JsonNode *node)
{
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autofree char *text = NULL;

  json_generator_set_root (generator, node);
  text = json_generator_to_data (generator, NULL);
  printf ("%s\n", text);
  fflush (stdout);
}

/* @text parsed, or as a JSON string when it is not JSON. */
static JsonNode *
json_from_text (const char *text)
{
  g_autoptr (JsonParser) parser = json_parser_new ();

  if (json_parser_load_from_data (parser, text, -1, NULL)
      && json_parser_get_root (parser) != NULL)
    return json_node_copy (json_parser_get_root (parser));
  return json_node_init_string (json_node_alloc (), text);
}

/* ---- waiting for signals -------------------------------------------- */

/* What prompt and watch share: a main loop that also ends when the
 * broker leaves the bus. */
typedef struct
{
  AbCtl *ctl;
  GMainLoop *loop;
  GCancellable *cancellable;
  char *owner; /* the broker's unique name while it runs, else NULL */
  AbStream stream;
  guint owner_subscription;
  guint gone_source;      /* the broker left: how long to wait for it */
  char *follow_thread;    /* watched again at a new broker, or NULL */
  GHashTable *stream_seq; /* session path → the last stream number */
  gboolean report_gaps;   /* say when WatchFrom() finds signals missing */
  gulong closed_handler;
  guint sigint_source;
  gboolean done;
  int status;
} AbWait;

static void
wait_finish (AbWait *wait, int status)
{
  if (wait->done)
    return;
  wait->done = TRUE;
  wait->status = status;
  g_main_loop_quit (wait->loop);
}

static void
wait_broker_gone (AbWait *wait)
{
  stream_end_line (&wait->stream);
  wait_finish (wait, fail (_ ("agentbroker left the bus")));
}

/* How long a prompt or watch waits for a broker that left the bus to
 * come back (a restart, Restart=on-failure) before it gives up. */
#define AB_FOLLOW_SECONDS 120

static gboolean
wait_on_gone_too_long (gpointer user_data)
{
  AbWait *wait = user_data;

  wait->gone_source = 0;
  wait_broker_gone (wait);
  return G_SOURCE_REMOVE;
}

/* Whether a streaming signal of @path is new: numbered above the last
 * one taken (a signal resent by WatchFrom() may have come already). */
static gboolean
wait_stream_fresh (AbWait *wait, const char *path, GVariant *parameters)
{
  gsize n = g_variant_n_children (parameters);
  g_autoptr (GVariant) last_child = NULL;
  guint64 seq, *last;

  if (n > 0)
    last_child = g_variant_get_child_value (parameters, n - 1);
  if (last_child == NULL
      || !g_variant_is_of_type (last_child, G_VARIANT_TYPE_UINT64))
    return FALSE;
  seq = g_variant_get_uint64 (last_child);
  last = g_hash_table_lookup (wait->stream_seq, path);
  if (last != NULL && seq <= *last)
    return FALSE;
  if (last == NULL)
    g_hash_table_insert (wait->stream_seq, g_strdup (path),
                         last = g_new0 (guint64, 1));
  *last = seq;
  return TRUE;
}

static void
on_watched_again (GObject *source, GAsyncResult *result, gpointer user_data)
{
  AbWait *wait = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = g_dbus_connection_call_finish (
      G_DBUS_CONNECTION (source), result, &error);
  gboolean complete = TRUE;

  /* A prompter hears its own turn from the new instance directly: what
   * the session's stream may lack is not its business. */
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED)
      || !wait->report_gaps)
    return;
  if (reply == NULL)
    {
      stream_break (&wait->stream);
      g_dbus_error_strip_remote_error (error);
      fail (_ ("cannot watch thread %s again: %s"), wait->follow_thread,
            error->message);
      return;
    }
  if (g_variant_is_of_type (reply, G_VARIANT_TYPE ("(b)")))
    g_variant_get (reply, "(b)", &complete);
  if (complete)
    return;
  stream_break (&wait->stream);
  fail (_ ("some updates of thread %s were lost while agentbroker "
           "restarted"),
        wait->follow_thread);
}

/* The broker came back: its new instance watches @follow_thread again,
 * from the last signal received. */
static void
wait_watch_again (AbWait *wait, GDBusConnection *connection)
{
  g_autofree char *path = NULL;
  const guint64 *last;

  if (g_str_equal (wait->follow_thread, "*"))
    {
      g_dbus_connection_call (connection, AB_BUS_NAME, AB_BUS_PATH,
                              AB_BROKER_IFACE, "Watch",
                              g_variant_new ("(s)", wait->follow_thread), NULL,
                              G_DBUS_CALL_FLAGS_NONE, -1, wait->cancellable,
                              on_watched_again, wait);
      return;
    }
  path = session_path (wait->follow_thread);
  last = g_hash_table_lookup (wait->stream_seq, path);
  g_dbus_connection_call (
      connection, AB_BUS_NAME, AB_BUS_PATH, AB_BROKER_IFACE, "WatchFrom",
      g_variant_new ("(st)", wait->follow_thread, last != NULL ? *last : 0),
      G_VARIANT_TYPE ("(b)"), G_DBUS_CALL_FLAGS_NONE, -1, wait->cancellable,
      on_watched_again, wait);
}

/* The broker's name changed hands.  Gone: it is waited for, as a
 * restart brings it back, and the turn goes on.  Back: the new instance
 * gets the watch again (a watcher's stream, or the end of a turn it could
 * not go on with); the signals follow the name. */
static void
wait_on_name_owner_changed (GDBusConnection *connection, const char *sender,
                            const char *path, const char *interface,
                            const char *member, GVariant *parameters,
                            gpointer user_data)
{
  AbWait *wait = user_data;
  const char *new_owner = NULL;

  if (!g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(sss)")))
    return;
  g_variant_get (parameters, "(&s&s&s)", NULL, NULL, &new_owner);
  g_clear_pointer (&wait->owner, g_free);
  if (*new_owner == '\0')
    {
      if (wait->gone_source == 0)
        wait->gone_source = g_timeout_add_seconds (AB_FOLLOW_SECONDS,
                                                   wait_on_gone_too_long, wait);
      return;
    }
  wait->owner = g_strdup (new_owner);
  g_clear_handle_id (&wait->gone_source, g_source_remove);
  if (wait->follow_thread != NULL)
    wait_watch_again (wait, connection);
}

static void
wait_on_closed (GDBusConnection *connection, gboolean remote_peer_vanished,
                GError *error, gpointer user_data)
{
  wait_broker_gone (user_data);
}

static gboolean
wait_init (AbWait *wait, AbCtl *ctl)
{
  wait->ctl = ctl;
  wait->owner = g_dbus_proxy_get_name_owner (G_DBUS_PROXY (ctl->broker));
  if (wait->owner == NULL)
    return FALSE;
  wait->loop = g_main_loop_new (NULL, FALSE);
  wait->cancellable = g_cancellable_new ();
  wait->stream_seq
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);

  /* The broker's name: a restarted daemon takes it over, and the
   * signals, subscribed by that name, come from whoever has it. */
  wait->owner_subscription = g_dbus_connection_signal_subscribe (
      ctl->connection, "org.freedesktop.DBus", "org.freedesktop.DBus",
      "NameOwnerChanged", "/org/freedesktop/DBus", AB_BUS_NAME,
      G_DBUS_SIGNAL_FLAGS_NONE, wait_on_name_owner_changed, wait, NULL);
  g_dbus_connection_set_exit_on_close (ctl->connection, FALSE);
  wait->closed_handler = g_signal_connect (ctl->connection, "closed",
                                           G_CALLBACK (wait_on_closed), wait);
  return TRUE;
}

static void
wait_clear (AbWait *wait)
{
  g_cancellable_cancel (wait->cancellable);
  g_clear_handle_id (&wait->gone_source, g_source_remove);
  if (wait->sigint_source != 0)
    g_source_remove (wait->sigint_source);
  if (wait->owner_subscription != 0)
    g_dbus_connection_signal_unsubscribe (wait->ctl->connection,
                                          wait->owner_subscription);
  g_clear_signal_handler (&wait->closed_handler, wait->ctl->connection);
  g_clear_object (&wait->cancellable);
  g_clear_pointer (&wait->loop, g_main_loop_unref);
  g_clear_pointer (&wait->owner, g_free);
  g_clear_pointer (&wait->follow_thread, g_free);
  g_clear_pointer (&wait->stream_seq, g_hash_table_unref);
  stream_clear (&wait->stream);
}

/* ---- prompt -------------------------------------------------------- */

typedef struct
{
  AbWait wait;
  const char *thread;
  guint64 turn;
  gboolean have_turn;
  gboolean cancel_sent;
  GPtrArray *early; /* (sv) signal name and parameters before the reply */
} AbPrompt;

/* The exit status of prompt for a turn's stop reason. */
static int
reason_exit_status (const char *reason)
{
  static const char *const cancelled[]
      = { "cancelled", "interrupted", "timeout", NULL };
  static const char *const limited[]
      = { "max_tokens", "max_turn_requests", "refusal", NULL };

  if (g_str_equal (reason, "end_turn"))
    return EXIT_SUCCESS;
  if (g_strv_contains (cancelled, reason))
    return AB_EXIT_CANCELLED;
  if (g_strv_contains (limited, reason))
    return AB_EXIT_LIMIT;
  return EXIT_FAILURE;
}

static void
prompt_turn_ended (AbPrompt *prompt, const char *reason, const char *message)
{
  if (prompt->wait.ctl->json)
    {
      g_autoptr (JsonBuilder) builder = json_builder_new ();
      g_autoptr (JsonNode) root = NULL;

      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "turn");
      json_builder_add_int_value (builder, (gint64)prompt->turn);
      json_builder_set_member_name (builder, "reason");
      json_builder_add_string_value (builder, reason);
      json_builder_set_member_name (builder, "message");
      json_builder_add_string_value (builder, message);
      json_builder_end_object (builder);
      root = json_builder_get_root (builder);
      print_json_line (root);
    }
  else
    stream_end_line (&prompt->wait.stream);

  if (!g_str_equal (reason, "end_turn"))
    {
      if (*message != '\0')
        fail (_ ("turn ended: %s: %s"), reason, message);
      else
        fail (_ ("turn ended: %s"), reason);
    }
  wait_finish (&prompt->wait, reason_exit_status (reason));
}

static void
prompt_permission (AbPrompt *prompt, const char *request,
                   const char *request_json)
{
  g_autofree char *title = NULL;
  g_autofree char *options = NULL;

  describe_permission (request_json, &title, &options);
  if (!prompt->wait.ctl->json)
    stream_break (&prompt->wait.stream);
  fail (_ ("the agent asks for permission (request %s): %s; options: %s — "
           "answer with: agentctl%s answer %s %s OPTION"),
        request, title, options, prompt->wait.ctl->system_bus ? "" : " --user",
        prompt->thread, request);
}

static void
prompt_handle (AbPrompt *prompt, const char *member, GVariant *parameters)
{
  guint64 turn;

  if (g_str_equal (member, "Update")
      && g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(tast)")))
    {
      g_autofree const char **updates = NULL;

      g_variant_get (parameters, "(t^a&st)", &turn, &updates, NULL);
      if (turn != prompt->turn)
        return;
      for (gsize i = 0; updates[i] != NULL; i++)
        if (prompt->wait.ctl->json)
          {
            g_autoptr (JsonNode) node = json_from_text (updates[i]);

            print_json_line (node);
          }
        else
          stream_update (&prompt->wait.stream, "", updates[i]);
    }
  else if (g_str_equal (member, "TurnEnded")
           && g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(tsst)")))
    {
      const char *reason, *message;

      g_variant_get (parameters, "(t&s&st)", &turn, &reason, &message, NULL);
      if (turn == prompt->turn)
        prompt_turn_ended (prompt, reason, message);
    }
  else if (g_str_equal (member, "PermissionRequested")
           && g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(tsst)")))
    {
      const char *request, *request_json;

      g_variant_get (parameters, "(t&s&st)", &turn, &request, &request_json,
                     NULL);
      if (turn == prompt->turn)
        prompt_permission (prompt, request, request_json);
    }
}

static void
prompt_on_signal (GDBusConnection *connection, const char *sender,
                  const char *path, const char *interface, const char *member,
                  GVariant *parameters, gpointer user_data)
{
  AbPrompt *prompt = user_data;

  if (prompt->wait.done || !wait_stream_fresh (&prompt->wait, path, parameters))
    return;
  /* Until the reply names our turn, keep everything: the broker sends
   * the reply first, but nothing here depends on it. */
  if (!prompt->have_turn)
    {
      g_ptr_array_add (prompt->early, g_variant_ref_sink (g_variant_new (
                                          "(sv)", member, parameters)));
      return;
    }
  prompt_handle (prompt, member, parameters);
}

static void
prompt_on_reply (GObject *source, GAsyncResult *result, gpointer user_data)
{
  AbPrompt *prompt = user_data;
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GError) error = NULL;

  reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result,
                                         &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  if (reply == NULL)
    {
      stream_break (&prompt->wait.stream);
      wait_finish (&prompt->wait, fail_dbus (error));
      return;
    }

  g_variant_get (reply, "(t)", &prompt->turn);
  prompt->have_turn = TRUE;
  for (guint i = 0; i < prompt->early->len && !prompt->wait.done; i++)
    {
      g_autoptr (GVariant) parameters = NULL;
      const char *member;

      g_variant_get (prompt->early->pdata[i], "(&sv)", &member, &parameters);
      prompt_handle (prompt, member, parameters);
    }
  g_ptr_array_set_size (prompt->early, 0);
}

static void
prompt_on_cancel_reply (GObject *source, GAsyncResult *result,
                        gpointer user_data)
{
  AbPrompt *prompt = user_data;
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GError) error = NULL;

  reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result,
                                         &error);
  if (reply == NULL
      && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      stream_break (&prompt->wait.stream);
      fail_dbus (error);
    }
}

/* The first Ctrl+C cancels the turn and waits for its end; the second
 * gives up waiting. */
static gboolean
prompt_on_sigint (gpointer user_data)
{
  AbPrompt *prompt = user_data;

  stream_break (&prompt->wait.stream);
  if (prompt->cancel_sent)
    {
      prompt->wait.sigint_source = 0;
      wait_finish (&prompt->wait, AB_EXIT_SIGINT);
      return G_SOURCE_REMOVE;
    }

  prompt->cancel_sent = TRUE;
  fail (_ ("cancelling the turn; press Ctrl+C again to stop waiting"));
  g_dbus_connection_call (
      prompt->wait.ctl->connection, AB_BUS_NAME, AB_BUS_PATH, AB_BROKER_IFACE,
      "Cancel", g_variant_new ("(s)", prompt->thread), NULL,
      G_DBUS_CALL_FLAGS_NONE, AB_PROMPT_TIMEOUT_MSEC, prompt->wait.cancellable,
      prompt_on_cancel_reply, prompt);
  return G_SOURCE_CONTINUE;
}

/* Standard input as the prompt, at most AB_STDIN_MAX_BYTES. */
static char *
read_stdin (GError **error)
{
  g_autoptr (GString) text = g_string_new (NULL);
  char buffer[8192];
  size_t n;

  while ((n = fread (buffer, 1, sizeof buffer, stdin)) > 0)
    {
      if (text->len + n > AB_STDIN_MAX_BYTES)
        {
          g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                       _ ("the prompt on standard input is longer than "
                          "1 MiB"));
          return NULL;
        }
      g_string_append_len (text, buffer, (gssize)n);
    }
  if (ferror (stdin))
    {
      g_set_error (error, AB_ERROR, AB_ERROR_FAILED,
                   _ ("cannot read standard input: %s"), g_strerror (errno));
      return NULL;
    }
  if (!g_utf8_validate (text->str, (gssize)text->len, NULL))
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("the prompt on standard input is not valid UTF-8 "
                      "text"));
      return NULL;
    }
  return g_string_free (g_steal_pointer (&text), FALSE);
}

int
verb_prompt (AbCtl *ctl, int argc, char **argv)
{
  g_autofree char *agent = NULL;
  const GOptionEntry entries[]
      = { { "agent", 0, 0, G_OPTION_ARG_STRING, &agent,
            N_ ("The agent profile of a new session"), N_ ("NAME") },
          { NULL } };
  g_autofree char *text = NULL;
  g_autofree char *path = NULL;
  GVariantBuilder options;
  AbPrompt prompt = { 0 };
  guint subscription;
  int status;

  if (!parse_verb_options (ctl, entries, TRUE, &argc, &argv, &status))
    return status;
  if (argc < 3)
    return fail_usage (ctl);

  if (argc == 3 && g_str_equal (argv[2], "-"))
    {
      g_autoptr (GError) error = NULL;

      text = read_stdin (&error);
      if (text == NULL)
        return fail ("%s", error->message);
    }
  else
    {
      GString *words = g_string_new (argv[2]);

      for (int i = 3; i < argc; i++)
        g_string_append_printf (words, " %s", argv[i]);
      text = g_string_free (words, FALSE);
    }
  if (*text == '\0')
    return fail (_ ("the prompt is empty"));

  if (!wait_init (&prompt.wait, ctl))
    return fail (_ ("agentbroker left the bus"));
  prompt.thread = argv[1];
  prompt.wait.stream.events = stderr;
  prompt.early
      = g_ptr_array_new_with_free_func ((GDestroyNotify)g_variant_unref);

  /* Subscribed before asking, so that no signal of the turn can be
   * missed. */
  path = session_path (prompt.thread);
  subscription = g_dbus_connection_signal_subscribe (
      ctl->connection, AB_BUS_NAME, AB_SESSION_IFACE, NULL, path, NULL,
      G_DBUS_SIGNAL_FLAGS_NONE, prompt_on_signal, &prompt, NULL);
  /* A new instance that could not go on with the turn tells its end to
   * the first who watches. */
  prompt.wait.follow_thread = g_strdup (prompt.thread);
  prompt.wait.sigint_source
      = g_unix_signal_add (SIGINT, prompt_on_sigint, &prompt);

  g_variant_builder_init (&options, G_VARIANT_TYPE_VARDICT);
  if (agent != NULL)
    g_variant_builder_add (&options, "{sv}", "agent",
                           g_variant_new_string (agent));
  g_dbus_connection_call (
      ctl->connection, prompt.wait.owner, AB_BUS_PATH, AB_BROKER_IFACE,
      "Prompt", g_variant_new ("(ssa{sv})", prompt.thread, text, &options),
      G_VARIANT_TYPE ("(t)"), G_DBUS_CALL_FLAGS_NONE, AB_PROMPT_TIMEOUT_MSEC,
      prompt.wait.cancellable, prompt_on_reply, &prompt);

  g_main_loop_run (prompt.wait.loop);

  g_dbus_connection_signal_unsubscribe (ctl->connection, subscription);
  g_ptr_array_unref (prompt.early);
  status = prompt.wait.status;
  wait_clear (&prompt.wait);
  return status;
}

/* ---- watch --------------------------------------------------------- */

typedef struct
{
  AbWait wait;
  const char *thread; /* NULL: every session */
} AbWatch;

/* One event as a JSON line: thread, turn (unless negative), @key with
 * @value and @detail_key with @detail, each when given. */
static void
watch_print_event (const char *thread, gint64 turn, const char *key,
                   const char *value, const char *detail_key, JsonNode *detail)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "thread");
  json_builder_add_string_value (builder, thread);
  if (turn >= 0)
    {
      json_builder_set_member_name (builder, "turn");
      json_builder_add_int_value (builder, turn);
    }
  if (key != NULL)
    {
      json_builder_set_member_name (builder, key);
      json_builder_add_string_value (builder, value);
    }
  if (detail_key != NULL)
    {
      json_builder_set_member_name (builder, detail_key);
      json_builder_add_value (builder, json_node_copy (detail));
    }
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  print_json_line (root);
}

static void
watch_on_session_signal (GDBusConnection *connection, const char *sender,
                         const char *path, const char *interface,
                         const char *member, GVariant *parameters,
                         gpointer user_data)
{
  AbWatch *watch = user_data;
  gboolean json = watch->wait.ctl->json;
  AbStream *stream = &watch->wait.stream;
  g_autofree char *thread = thread_from_path (path);
  g_autofree char *prefix = NULL;
  g_autofree char *turn_text = NULL;
  guint64 turn;

  if (watch->wait.done
      || (watch->thread != NULL && !g_str_equal (thread, watch->thread)))
    return;
  if ((!g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(tast)"))
       && !g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(tsst)")))
      || !wait_stream_fresh (&watch->wait, path, parameters))
    return;
  g_variant_get_child (parameters, 0, "t", &turn);
  turn_text = g_strdup_printf ("%" G_GUINT64_FORMAT, turn);
  prefix = g_strdup_printf ("%s %s: ", thread, turn_text);

  if (g_str_equal (member, "Update")
      && g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(tast)")))
    {
      g_autofree const char **updates = NULL;

      g_variant_get (parameters, "(t^a&st)", NULL, &updates, NULL);
      for (gsize i = 0; updates[i] != NULL; i++)
        if (json)
          {
            g_autoptr (JsonNode) node = json_from_text (updates[i]);

            watch_print_event (thread, (gint64)turn, NULL, NULL, "update",
                               node);
          }
        else
          stream_update (stream, prefix, updates[i]);
    }
  else if (g_str_equal (member, "TurnEnded")
           && g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(tsst)")))
    {
      const char *reason, *message;
      g_autofree char *line = NULL;

      g_variant_get (parameters, "(t&s&st)", NULL, &reason, &message, NULL);
      if (json)
        {
          g_autoptr (JsonNode) node
              = json_node_init_string (json_node_alloc (), message);

          watch_print_event (thread, (gint64)turn, "reason", reason, "message",
                             node);
          return;
        }
      if (*message != '\0')
        line = g_strdup_printf (_ ("%s turn %s ended: %s: %s"), thread,
                                turn_text, reason, message);
      else
        line = g_strdup_printf (_ ("%s turn %s ended: %s"), thread, turn_text,
                                reason);
      stream_line (stream, "", line);
    }
  else if (g_str_equal (member, "PermissionRequested")
           && g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(tsst)")))
    {
      const char *request, *request_json;
      g_autofree char *title = NULL;
      g_autofree char *options = NULL;
      g_autofree char *line = NULL;

      g_variant_get (parameters, "(t&s&st)", NULL, &request, &request_json,
                     NULL);
      if (json)
        {
          g_autoptr (JsonNode) node = json_from_text (request_json);

          watch_print_event (thread, (gint64)turn, "request", request,
                             "permission", node);
          return;
        }
      describe_permission (request_json, &title, &options);
      line = g_strdup_printf (
          _ ("permission requested (request %s): %s; options: %s"), request,
          title, options);
      stream_line (stream, prefix, line);
    }
}

static void
watch_on_broker_signal (GDBusConnection *connection, const char *sender,
                        const char *path, const char *interface,
                        const char *member, GVariant *parameters,
                        gpointer user_data)
{
  AbWatch *watch = user_data;
  const char *thread, *detail;
  g_autofree char *line = NULL;

  if (watch->wait.done
      || (!g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(so)"))
          && !g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(ss)"))))
    return;
  g_variant_get_child (parameters, 0, "&s", &thread);
  g_variant_get_child (parameters, 1,
                       g_str_equal (member, "SessionAdded") ? "&o" : "&s",
                       &detail);
  if (watch->thread != NULL && !g_str_equal (thread, watch->thread))
    return;

  if (g_str_equal (member, "SessionAdded"))
    {
      if (watch->wait.ctl->json)
        watch_print_event (thread, -1, "session", "added", NULL, NULL);
      else
        line = g_strdup_printf (_ ("%s session added"), thread);
    }
  else if (g_str_equal (member, "SessionRemoved"))
    {
      if (watch->wait.ctl->json)
        {
          g_autoptr (JsonNode) node
              = json_node_init_string (json_node_alloc (), detail);

          watch_print_event (thread, -1, "session", "removed", "reason", node);
        }
      else
        line = g_strdup_printf (_ ("%s session removed: %s"), thread, detail);
    }
  if (line != NULL)
    stream_line (&watch->wait.stream, "", line);
}

static gboolean
watch_on_sigint (gpointer user_data)
{
  AbWatch *watch = user_data;

  stream_end_line (&watch->wait.stream);
  wait_finish (&watch->wait, EXIT_SUCCESS);
  return G_SOURCE_CONTINUE;
}

int
verb_watch (AbCtl *ctl, int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  AbWatch watch = { 0 };
  guint session_subscription, broker_subscription;
  guint sigterm_source;
  int status;

  if (!parse_verb_options (ctl, NULL, FALSE, &argc, &argv, &status))
    return status;
  if (argc > 2)
    return fail_usage (ctl);

  if (!wait_init (&watch.wait, ctl))
    return fail (_ ("agentbroker left the bus"));
  watch.thread = argc == 2 ? argv[1] : NULL;

  /* The stream comes to watchers only, so every Session1 signal from
   * the broker is for us. */
  session_subscription = g_dbus_connection_signal_subscribe (
      ctl->connection, AB_BUS_NAME, AB_SESSION_IFACE, NULL, NULL, NULL,
      G_DBUS_SIGNAL_FLAGS_NONE, watch_on_session_signal, &watch, NULL);
  broker_subscription = g_dbus_connection_signal_subscribe (
      ctl->connection, AB_BUS_NAME, AB_BROKER_IFACE, NULL, AB_BUS_PATH, NULL,
      G_DBUS_SIGNAL_FLAGS_NONE, watch_on_broker_signal, &watch, NULL);
  watch.wait.follow_thread
      = g_strdup (watch.thread != NULL ? watch.thread : "*");
  watch.wait.report_gaps = TRUE;
  watch.wait.sigint_source
      = g_unix_signal_add (SIGINT, watch_on_sigint, &watch);
  sigterm_source = g_unix_signal_add (SIGTERM, watch_on_sigint, &watch);

  if (!ab_dbus_broker1_call_watch_sync (
          ctl->broker, watch.thread != NULL ? watch.thread : "*", NULL, &error))
    status = fail_dbus (error);
  else
    {
      g_main_loop_run (watch.wait.loop);
      status = watch.wait.status;
    }

  g_source_remove (sigterm_source);
  g_dbus_connection_signal_unsubscribe (ctl->connection, session_subscription);
  g_dbus_connection_signal_unsubscribe (ctl->connection, broker_subscription);
  wait_clear (&watch.wait);
  return status;
}
