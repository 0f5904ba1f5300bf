/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentctl — acp: an ACP agent on standard input and output whose
 * sessions live in the broker
 *
 * Any ACP client can run `agentctl acp` as its agent.  Every request is
 * answered here or turned into a call of the broker, as the calling user:
 * session/new creates a session (CreateSession()) on a new thread,
 * session/prompt is PromptContent(),
 * the session's Update signals become session/update notifications, its
 * TurnEnded the prompt's answer, its PermissionRequested (for the turns
 * this client prompted) a session/request_permission to the client,
 * whose answer goes back through AnswerPermission().  The agent of a
 * session is the broker's: it is offered no fs/ and no terminal/
 * methods, and this proxy forwards none of the client's.
 *
 * Every byte on standard input is untrusted: lines are at most
 * AB_FRONT_MAX_LINE_BYTES long (a longer one is discarded, reported, and
 * reading goes on), each is parsed with a bounded depth, and what a
 * client may make this process keep (sessions, permission requests) is
 * capped.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib/gi18n.h>

#include "agentctl.h"
#include "error.h"
#include "json-text.h"
#include "line-reader.h"
#include "names.h"

/* The longest line read from the client (a prompt with an image). */
#define AB_FRONT_MAX_LINE_BYTES (8 * 1024 * 1024)
#define AB_FRONT_READ_BYTES (64 * 1024)
/* Sessions open on one connection, and permission requests waiting for
 * the client's answer. */
#define AB_FRONT_MAX_SESSIONS 256
#define AB_FRONT_MAX_ASKS 64
/* Prompts of one session waiting for their turn's end. */
#define AB_FRONT_MAX_PROMPTS 64
/* The longest session title passed on (the broker keeps 256 bytes). */
#define AB_FRONT_MAX_TITLE_BYTES 1024
/* Threads this front door names begin so: session/list shows them. */
#define AB_FRONT_THREAD_PREFIX "acp:"

enum
{
  RPC_PARSE_ERROR = -32700,
  RPC_INVALID_REQUEST = -32600,
  RPC_METHOD_NOT_FOUND = -32601,
  RPC_INVALID_PARAMS = -32602,
  RPC_INTERNAL_ERROR = -32603,
  ACP_RESOURCE_NOT_FOUND = -32002,
};

typedef struct _Front Front;

/* A session/prompt of the client waiting for its turn's end. */
typedef struct
{
  JsonNode *id;
  guint64 serial; /* of its PromptContent() call */
  guint64 turn;   /* 0 until PromptContent() answered */
} FrontPrompt;

/* A broker session open on this connection. */
typedef struct
{
  char *thread;
  char *path;
  GQueue prompts;   /* FrontPrompt *, in the order sent */
  guint unnumbered; /* PromptContent() calls not yet answered */
  GPtrArray *early; /* (sv): TurnEnded, PermissionRequested meanwhile */
  guint loading;    /* session/load calls waiting for the transcript */
} FrontSession;

/* A session/request_permission sent to the client. */
typedef struct
{
  char *thread;
  char *request;
} FrontAsk;

struct _Front
{
  AbCtl *ctl;
  GMainLoop *loop;
  char *profile; /* --agent, or NULL: the default */
  AbLineReader *reader;
  char *buffer;      /* AB_FRONT_READ_BYTES, one read */
  gboolean skipping; /* the rest of an over-long line */
  gboolean initialized;
  gboolean initializing;
  GHashTable *sessions; /* thread → FrontSession */
  GHashTable *by_path;  /* object path → FrontSession (unowned) */
  GHashTable *asks;     /* request id (gint64 *) → FrontAsk */
  gint64 next_ask;
  guint64 next_serial;
  guint stdin_source;
  guint signal_subscription;
  guint name_watch;
  gboolean broker_seen;
};

/* A call to the broker on behalf of one request of the client. */
typedef struct
{
  Front *front;
  JsonNode *id; /* NULL for a notification */
  char *thread;
  guint64 serial; /* the FrontPrompt of a PromptContent() call */
  gboolean fresh; /* session/load: the session was not open here before */
} FrontCall;

static FrontCall *
call_new (Front *f, JsonNode *id, const char *thread)
{
  FrontCall *call = g_new0 (FrontCall, 1);

  call->front = f;
  call->id = id != NULL ? json_node_copy (id) : NULL;
  call->thread = g_strdup (thread);
  return call;
}

static void
call_free (FrontCall *call)
{
  g_clear_pointer (&call->id, json_node_unref);
  g_free (call->thread);
  g_free (call);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (FrontCall, call_free)

static void
prompt_free (FrontPrompt *prompt)
{
  json_node_unref (prompt->id);
  g_free (prompt);
}

static void
session_free (FrontSession *session)
{
  g_queue_clear_full (&session->prompts, (GDestroyNotify)prompt_free);
  g_ptr_array_unref (session->early);
  g_free (session->thread);
  g_free (session->path);
  g_free (session);
}

static void
ask_free (FrontAsk *ask)
{
  g_free (ask->thread);
  g_free (ask->request);
  g_free (ask);
}

/* ---- writing to the client ------------------------------------------- */

/* @text and a newline on standard output.  A client that has gone ends
 * the proxy. */
static void
write_line (Front *f, const char *text, gsize len)
{
  struct iovec parts[2] = { { (void *)text, len }, { (void *)"\n", 1 } };
  int part = 0;

  while (part < 2)
    {
      ssize_t n = writev (STDOUT_FILENO, parts + part, 2 - part);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          g_debug ("standard output: %s", g_strerror (errno));
          g_main_loop_quit (f->loop);
          return;
        }
      while (part < 2 && (gsize)n >= parts[part].iov_len)
        n -= (ssize_t)parts[part++].iov_len;
      if (part < 2)
        {
          parts[part].iov_base = (char *)parts[part].iov_base + n;
          parts[part].iov_len -= (gsize)n;
        }
    }
}

/* @message (an object, taken) with "jsonrpc": "2.0" */
static void
send_message (Front *f, JsonObject *message)
{
  g_autoptr (JsonNode) root = json_node_new (JSON_NODE_OBJECT);
  g_autofree char *text = NULL;
  gsize len;

  json_object_set_string_member (message, "jsonrpc", "2.0");
  json_node_take_object (root, message);
  text = json_to_string (root, FALSE);
  len = strlen (text);
  write_line (f, text, len);
}

/* Answers @id with @result (taken). */
static void
send_result (Front *f, JsonNode *id, JsonNode *result)
{
  JsonObject *message = json_object_new ();

  json_object_set_member (message, "id", json_node_copy (id));
  json_object_set_member (message, "result", result);
  send_message (f, message);
}

static void
send_empty_result (Front *f, JsonNode *id)
{
  g_autoptr (JsonNode) empty = json_node_new (JSON_NODE_OBJECT);

  json_node_take_object (empty, json_object_new ());
  send_result (f, id, g_steal_pointer (&empty));
}

/* Answers @id (NULL: a message whose id is unknown) with an error;
 * @dbus_error, when given, is the broker's error name. */
static void
send_error (Front *f, JsonNode *id, int code, const char *text,
            const char *dbus_error)
{
  JsonObject *message = json_object_new ();
  JsonObject *error = json_object_new ();

  if (id != NULL)
    json_object_set_member (message, "id", json_node_copy (id));
  else
    json_object_set_null_member (message, "id");
  json_object_set_int_member (error, "code", code);
  json_object_set_string_member (error, "message", text);
  if (dbus_error != NULL)
    {
      JsonObject *data = json_object_new ();

      json_object_set_string_member (data, "dbusError", dbus_error);
      json_object_set_object_member (error, "data", data);
    }
  json_object_set_object_member (message, "error", error);
  send_message (f, message);
}

static void send_error_printf (Front *f, JsonNode *id, int code,
                               const char *format, ...) G_GNUC_PRINTF (4, 5);

static void
send_error_printf (Front *f, JsonNode *id, int code, const char *format, ...)
{
  g_autofree char *text = NULL;
  va_list args;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);
  send_error (f, id, code, text, NULL);
}

/* A broker's refusal as a JSON-RPC error with its message: no such
 * session is ACP's resource-not-found, a bad argument invalid params,
 * the rest (draining, access denied, pool exhausted, busy, …) internal
 * errors naming the broker's error in their data. */
static void
send_broker_error (Front *f, JsonNode *id, GError *error)
{
  g_autofree char *remote = g_dbus_error_get_remote_error (error);
  int code = RPC_INTERNAL_ERROR;

  if (g_error_matches (error, AB_ERROR, AB_ERROR_NO_SUCH_SESSION))
    code = ACP_RESOURCE_NOT_FOUND;
  else if (g_error_matches (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT))
    code = RPC_INVALID_PARAMS;
  g_dbus_error_strip_remote_error (error);
  send_error (f, id, code, error->message, remote);
}

/* ---- sessions open on this connection -------------------------------- */

static FrontSession *
session_attach (Front *f, const char *thread)
{
  FrontSession *session = g_hash_table_lookup (f->sessions, thread);

  if (session != NULL)
    return session;
  session = g_new0 (FrontSession, 1);
  session->thread = g_strdup (thread);
  session->path = session_path (thread);
  session->early
      = g_ptr_array_new_with_free_func ((GDestroyNotify)g_variant_unref);
  g_queue_init (&session->prompts);
  g_hash_table_insert (f->by_path, session->path, session);
  g_hash_table_insert (f->sessions, session->thread, session);
  return session;
}

/* The thread id @params names as its sessionId; NULL after answering
 * @id. */
static const char *
thread_of_params (Front *f, JsonNode *id, JsonObject *params)
{
  const char *thread
      = json_object_get_string_member_with_default (params, "sessionId", NULL);

  if (thread == NULL)
    send_error (f, id, RPC_INVALID_PARAMS, "sessionId must be a string", NULL);
  return thread;
}

/* The session @params names, open here; NULL after answering @id. */
static FrontSession *
session_of_params (Front *f, JsonNode *id, JsonObject *params)
{
  const char *thread = thread_of_params (f, id, params);
  FrontSession *session;

  if (thread == NULL)
    return NULL;
  session = g_hash_table_lookup (f->sessions, thread);
  if (session == NULL)
    send_error_printf (f, id, ACP_RESOURCE_NOT_FOUND,
                       "session %.200s is not open on this connection: "
                       "session/new or session/resume first",
                       thread);
  return session;
}

static void
session_detach (Front *f, FrontSession *session)
{
  FrontPrompt *prompt;

  /* The turns go on in the broker; this client hears no more of them. */
  while ((prompt = g_queue_pop_head (&session->prompts)) != NULL)
    {
      g_autoptr (JsonNode) result = json_node_new (JSON_NODE_OBJECT);
      JsonObject *object = json_object_new ();

      json_object_set_string_member (object, "stopReason", "cancelled");
      json_node_take_object (result, object);
      send_result (f, prompt->id, g_steal_pointer (&result));
      prompt_free (prompt);
    }
  ab_dbus_broker1_call_unwatch (f->ctl->broker, session->thread, NULL, NULL,
                                NULL);
  g_hash_table_remove (f->by_path, session->path);
  g_hash_table_remove (f->sessions, session->thread);
}

/* ---- the stream of a session --------------------------------------------- */

/* One update (JSON text from the broker) as a session/update line, as it
 * is, appended to @lines (without its last newline). */
static void
append_update (GString *lines, FrontSession *session, const char *update)
{
  if (!ab_json_is_valid (update, strlen (update), AB_JSON_MAX_DEPTH))
    {
      g_debug ("an update of %s is not JSON; dropped", session->thread);
      return;
    }
  if (lines->len > 0)
    g_string_append_c (lines, '\n');
  /* Thread ids need no escaping: the broker accepts [A-Za-z0-9._:/@+-]. */
  g_string_append_printf (lines,
                          "{\"jsonrpc\":\"2.0\",\"method\":\"session/update\","
                          "\"params\":{\"sessionId\":\"%s\",\"update\":",
                          session->thread);
  g_string_append (lines, update);
  g_string_append (lines, "}}");
}

static void
relay_update (Front *f, FrontSession *session, const char *update)
{
  g_autoptr (GString) line = g_string_new (NULL);

  append_update (line, session, update);
  if (line->len > 0)
    write_line (f, line->str, line->len);
}

static FrontPrompt *
find_prompt (FrontSession *session, guint64 turn)
{
  for (GList *l = session->prompts.head; l != NULL; l = l->next)
    if (((FrontPrompt *)l->data)->turn == turn)
      return l->data;
  return NULL;
}

static FrontPrompt *
find_prompt_call (FrontSession *session, guint64 serial)
{
  for (GList *l = session->prompts.head; l != NULL; l = l->next)
    if (((FrontPrompt *)l->data)->serial == serial)
      return l->data;
  return NULL;
}

/* The broker's reasons that are not ACP stop reasons end the prompt
 * with an error naming them; "interrupted" (the broker restarted) is
 * ACP's "cancelled". */
static void
turn_ended (Front *f, FrontSession *session, guint64 turn, const char *reason,
            const char *message)
{
  static const char *const acp_reasons[]
      = { "end_turn", "max_tokens", "max_turn_requests",
          "refusal",  "cancelled",  NULL };
  FrontPrompt *prompt = find_prompt (session, turn);

  if (prompt == NULL)
    return;
  g_queue_remove (&session->prompts, prompt);
  if (g_strv_contains (acp_reasons, reason)
      || g_str_equal (reason, "interrupted"))
    {
      g_autoptr (JsonNode) result = json_node_new (JSON_NODE_OBJECT);
      JsonObject *object = json_object_new ();

      json_object_set_string_member (
          object, "stopReason",
          g_str_equal (reason, "interrupted") ? "cancelled" : reason);
      json_node_take_object (result, object);
      send_result (f, prompt->id, g_steal_pointer (&result));
    }
  else if (*message != '\0')
    send_error_printf (f, prompt->id, RPC_INTERNAL_ERROR,
                       "the turn ended %s: %s", reason, message);
  else
    send_error_printf (f, prompt->id, RPC_INTERNAL_ERROR, "the turn ended %s",
                       reason);
  prompt_free (prompt);
}

static void
on_answered (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autofree char *thread = user_data;
  g_autoptr (GError) error = NULL;

  if (!ab_dbus_broker1_call_answer_permission_finish (AB_DBUS_BROKER1 (source),
                                                      result, &error))
    {
      g_dbus_error_strip_remote_error (error);
      g_printerr ("agentctl acp: %s: %s\n", thread, error->message);
    }
}

static void
answer_permission (Front *f, const char *thread, const char *request,
                   const char *option)
{
  ab_dbus_broker1_call_answer_permission (f->ctl->broker, thread, request,
                                          option, NULL, on_answered,
                                          g_strdup (thread));
}

/* A permission request of a turn this client prompted goes to the
 * client, with the session's id in place of the agent's own. */
static void
permission_requested (Front *f, FrontSession *session, guint64 turn,
                      const char *request, const char *request_json)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (JsonNode) params = NULL;
  JsonObject *message;
  FrontAsk *ask;
  gint64 *id;

  if (find_prompt (session, turn) == NULL)
    return;
  params = ab_json_parse_untrusted (parser, request_json, strlen (request_json),
                                    NULL);
  if (params == NULL || !JSON_NODE_HOLDS_OBJECT (params)
      || g_hash_table_size (f->asks) >= AB_FRONT_MAX_ASKS)
    {
      answer_permission (f, session->thread, request, "");
      return;
    }
  json_object_set_string_member (json_node_get_object (params), "sessionId",
                                 session->thread);
  ask = g_new0 (FrontAsk, 1);
  ask->thread = g_strdup (session->thread);
  ask->request = g_strdup (request);
  id = g_new (gint64, 1);
  *id = ++f->next_ask;
  g_hash_table_insert (f->asks, id, ask);

  message = json_object_new ();
  json_object_set_int_member (message, "id", *id);
  json_object_set_string_member (message, "method",
                                 "session/request_permission");
  json_object_set_member (message, "params", g_steal_pointer (&params));
  send_message (f, message);
}

/* Whether the signal's arguments begin with the types @leading (one
 * character each): later versions of the broker may append arguments. */
static gboolean
args_begin_with (GVariant *parameters, const char *leading)
{
  gsize n = strlen (leading);

  if (!g_variant_is_of_type (parameters, G_VARIANT_TYPE_TUPLE)
      || g_variant_n_children (parameters) < n)
    return FALSE;
  for (gsize i = 0; i < n; i++)
    {
      g_autoptr (GVariant) child = g_variant_get_child_value (parameters, i);
      const char *type = g_variant_get_type_string (child);

      if (leading[i] == 'a' ? !g_str_equal (type, "as")
                            : type[0] != leading[i] || type[1] != '\0')
        return FALSE;
    }
  return TRUE;
}

/* TurnEnded and PermissionRequested, once every turn number is known. */
static void
handle_turn_signal (Front *f, FrontSession *session, const char *member,
                    GVariant *parameters)
{
  const char *a, *b;
  guint64 turn;

  if (!args_begin_with (parameters, "tss"))
    return;
  g_variant_get_child (parameters, 0, "t", &turn);
  g_variant_get_child (parameters, 1, "&s", &a);
  g_variant_get_child (parameters, 2, "&s", &b);
  if (g_str_equal (member, "TurnEnded"))
    turn_ended (f, session, turn, a, b);
  else if (g_str_equal (member, "PermissionRequested"))
    permission_requested (f, session, turn, a, b);
}

static void
on_session_signal (GDBusConnection *connection, const char *sender,
                   const char *path, const char *interface, const char *member,
                   GVariant *parameters, gpointer user_data)
{
  Front *f = user_data;
  FrontSession *session = g_hash_table_lookup (f->by_path, path);

  if (session == NULL)
    return;
  if (g_str_equal (member, "Update"))
    {
      g_autofree const char **updates = NULL;

      g_autoptr (GString) lines = NULL;

      /* In the transcript being read: replayed from there. */
      if (session->loading > 0 || !args_begin_with (parameters, "ta"))
        return;
      g_variant_get_child (parameters, 1, "^a&s", &updates);
      /* The updates of one signal leave in one write: a client reading
       * line by line gets them in as few reads as the agent's. */
      lines = g_string_new (NULL);
      for (gsize i = 0; updates[i] != NULL; i++)
        append_update (lines, session, updates[i]);
      if (lines->len > 0)
        write_line (f, lines->str, lines->len);
      return;
    }
  /* Until PromptContent() names its turn, what belongs to a turn
   * waits. */
  if (session->unnumbered > 0)
    g_ptr_array_add (session->early, g_variant_ref_sink (g_variant_new (
                                         "(sv)", member, parameters)));
  else
    handle_turn_signal (f, session, member, parameters);
}

static void
replay_early (Front *f, FrontSession *session)
{
  g_autoptr (GPtrArray) early = g_steal_pointer (&session->early);

  session->early
      = g_ptr_array_new_with_free_func ((GDestroyNotify)g_variant_unref);
  for (guint i = 0; i < early->len; i++)
    {
      g_autoptr (GVariant) parameters = NULL;
      const char *member;

      g_variant_get (early->pdata[i], "(&sv)", &member, &parameters);
      handle_turn_signal (f, session, member, parameters);
    }
}

/* ---- requests ------------------------------------------------------------ */

/* The profile this front door creates sessions of (--agent, or the
 * broker's default) in a ListProfiles() answer: its name and its agent as
 * the broker last saw it (NULL if never), or FALSE, with the names of
 * all the profiles in @names. */
static gboolean
find_profile (Front *f, GVariant *profiles, const char **name_out,
              JsonNode **agent_out, GString *names)
{
  GVariantIter iter;
  const char *name;
  GVariant *dict;

  g_variant_iter_init (&iter, profiles);
  while (g_variant_iter_next (&iter, "(&s@a{sv})", &name, &dict))
    {
      g_autoptr (GVariant) owned = dict;
      gboolean is_default = FALSE;
      const char *agent = "";

      if (names != NULL)
        g_string_append_printf (names, "%s%s", names->len > 0 ? ", " : "",
                                name);
      g_variant_lookup (dict, "default", "b", &is_default);
      if (f->profile != NULL ? !g_str_equal (f->profile, name) : !is_default)
        continue;
      g_variant_lookup (dict, "agent", "&s", &agent);
      /* @name stays valid: @profiles holds it */
      *name_out = name;
      *agent_out = acp_parse_agent (agent);
      return TRUE;
    }
  return FALSE;
}

static void
on_profiles (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (FrontCall) call = user_data;
  Front *f = call->front;
  g_autoptr (GVariant) profiles = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GString) names = g_string_new (NULL);
  g_autoptr (JsonNode) seen = NULL;
  const char *name;

  f->initializing = FALSE;
  if (!ab_dbus_broker1_call_list_profiles_finish (AB_DBUS_BROKER1 (source),
                                                  &profiles, result, &error))
    {
      send_broker_error (f, call->id, error);
      return;
    }
  if (find_profile (f, profiles, &name, &seen, names))
    {
      f->initialized = TRUE;
      send_result (
          f, call->id,
          acp_initialize_result (
              name, seen != NULL ? json_node_get_object (seen) : NULL));
      return;
    }
  send_error_printf (f, call->id, RPC_INVALID_PARAMS,
                     "the broker has no agent profile '%s'; it has: %s",
                     f->profile != NULL ? f->profile : "(default)", names->str);
}

static void
do_initialize (Front *f, JsonNode *id, JsonObject *params)
{
  JsonNode *version = json_object_get_member (params, "protocolVersion");

  if (f->initialized || f->initializing)
    {
      send_error (f, id, RPC_INVALID_REQUEST, "initialize was already called",
                  NULL);
      return;
    }
  if (version == NULL || !JSON_NODE_HOLDS_VALUE (version)
      || json_node_get_value_type (version) != G_TYPE_INT64)
    {
      send_error (f, id, RPC_INVALID_PARAMS,
                  "protocolVersion must be an integer", NULL);
      return;
    }
  f->initializing = TRUE;
  ab_dbus_broker1_call_list_profiles (f->ctl->broker, NULL, on_profiles,
                                      call_new (f, id, NULL));
}

/* cwd and mcpServers of session/new and session/resume: the agent runs
 * on the broker's host, in the directory the broker gives the session,
 * with the MCP servers of its profile.  The client's cwd must be an
 * absolute path, as ACP says, and is not used; MCP servers it cannot
 * have. */
static gboolean
check_workspace (Front *f, JsonNode *id, JsonObject *params)
{
  const char *cwd
      = json_object_get_string_member_with_default (params, "cwd", NULL);
  JsonNode *servers = json_object_get_member (params, "mcpServers");

  if (cwd == NULL || !g_path_is_absolute (cwd))
    {
      send_error (f, id, RPC_INVALID_PARAMS,
                  "cwd must be an absolute path (it is not used: the agent "
                  "works in the directory the broker gives the session)",
                  NULL);
      return FALSE;
    }
  if (servers != NULL && !JSON_NODE_HOLDS_NULL (servers)
      && (!JSON_NODE_HOLDS_ARRAY (servers)
          || json_array_get_length (json_node_get_array (servers)) > 0))
    {
      send_error (f, id, RPC_INVALID_PARAMS,
                  "agentctl acp passes no MCP servers to the agent: it runs "
                  "on the broker's host with its profile's configuration; "
                  "send an empty mcpServers",
                  NULL);
      return FALSE;
    }
  if (g_hash_table_size (f->sessions) >= AB_FRONT_MAX_SESSIONS)
    {
      send_error_printf (f, id, RPC_INVALID_REQUEST,
                         "at most %d sessions may be open on one connection; "
                         "session/close one first",
                         AB_FRONT_MAX_SESSIONS);
      return FALSE;
    }
  return TRUE;
}

/* The answer to session/new: the session, and the modes and options the
 * profile's agent gave the last session it opened (its agent starts with
 * the first prompt; what it offers is known from its last start). */
static void
on_new_profiles (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (FrontCall) call = user_data;
  g_autoptr (GVariant) profiles = NULL;
  g_autoptr (JsonNode) seen = NULL;
  g_autoptr (JsonNode) answer = json_node_new (JSON_NODE_OBJECT);
  JsonObject *object = json_object_new ();
  const char *name;

  json_object_set_string_member (object, "sessionId", call->thread);
  if (ab_dbus_broker1_call_list_profiles_finish (AB_DBUS_BROKER1 (source),
                                                 &profiles, result, NULL)
      && find_profile (call->front, profiles, &name, &seen, NULL)
      && seen != NULL)
    acp_add_session_setup (object, json_node_get_object (seen));
  json_node_take_object (answer, object);
  /* A new session's agent has not started: nothing of it was missed. */
  session_attach (call->front, call->thread);
  send_result (call->front, call->id, g_steal_pointer (&answer));
}

static void
on_new_watched (GObject *source, GAsyncResult *result, gpointer user_data)
{
  FrontCall *call = user_data;
  g_autoptr (GError) error = NULL;

  if (!ab_dbus_broker1_call_watch_finish (AB_DBUS_BROKER1 (source), result,
                                          &error))
    {
      send_broker_error (call->front, call->id, error);
      call_free (call);
      return;
    }
  ab_dbus_broker1_call_list_profiles (call->front->ctl->broker, NULL,
                                      on_new_profiles, call);
}

static void
on_created (GObject *source, GAsyncResult *result, gpointer user_data)
{
  FrontCall *call = user_data;
  g_autoptr (GError) error = NULL;

  if (!ab_dbus_broker1_call_create_session_finish (AB_DBUS_BROKER1 (source),
                                                   result, &error))
    {
      send_broker_error (call->front, call->id, error);
      call_free (call);
      return;
    }
  ab_dbus_broker1_call_watch (call->front->ctl->broker, call->thread, NULL,
                              on_new_watched, call);
}

/* A new thread of this front door and this user, and its session in the
 * broker (CreateSession()), whose agent starts with its first prompt. */
static void
do_new (Front *f, JsonNode *id, JsonObject *params)
{
  g_auto (GVariantDict) options = G_VARIANT_DICT_INIT (NULL);
  g_autofree char *uuid = NULL;
  g_autofree char *thread = NULL;

  if (!check_workspace (f, id, params))
    return;
  uuid = g_uuid_string_random ();
  thread = g_strdup_printf (AB_FRONT_THREAD_PREFIX "%u:%s", (guint)getuid (),
                            uuid);
  if (f->profile != NULL)
    g_variant_dict_insert (&options, "agent", "s", f->profile);
  ab_dbus_broker1_call_create_session (f->ctl->broker, thread,
                                       g_variant_dict_end (&options), NULL,
                                       on_created, call_new (f, id, thread));
}

static void
on_resume_watched (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (FrontCall) call = user_data;
  g_autoptr (GError) error = NULL;

  if (!ab_dbus_broker1_call_watch_finish (AB_DBUS_BROKER1 (source), result,
                                          &error))
    {
      send_broker_error (call->front, call->id, error);
      return;
    }
  session_attach (call->front, call->thread);
  send_empty_result (call->front, call->id);
}

/* The session exists (no such session is ACP's resource-not-found);
 * Watch() decides whether the caller may follow it. */
static void
on_resume_found (GObject *source, GAsyncResult *result, gpointer user_data)
{
  FrontCall *call = user_data;
  g_autoptr (GVariant) dict = NULL;
  g_autoptr (GError) error = NULL;

  if (!ab_dbus_broker1_call_get_session_finish (AB_DBUS_BROKER1 (source), &dict,
                                                result, &error))
    {
      send_broker_error (call->front, call->id, error);
      call_free (call);
      return;
    }
  ab_dbus_broker1_call_watch (call->front->ctl->broker, call->thread, NULL,
                              on_resume_watched, call);
}

static void
do_resume (Front *f, JsonNode *id, JsonObject *params)
{
  const char *thread = thread_of_params (f, id, params);

  if (thread == NULL)
    return;
  if (g_hash_table_contains (f->sessions, thread))
    {
      send_empty_result (f, id);
      return;
    }
  if (!check_workspace (f, id, params))
    return;
  ab_dbus_broker1_call_get_session (f->ctl->broker, thread, NULL,
                                    on_resume_found, call_new (f, id, thread));
}

/* A prompt of the transcript as the client would have sent it: one
 * user_message_chunk per content block. */
static void
replay_prompt (Front *f, FrontSession *session, JsonArray *blocks)
{
  for (guint i = 0; i < json_array_get_length (blocks); i++)
    {
      JsonNode *block = json_array_get_element (blocks, i);
      g_autoptr (JsonNode) update = json_node_new (JSON_NODE_OBJECT);
      JsonObject *object = json_object_new ();
      g_autofree char *text = NULL;

      if (!JSON_NODE_HOLDS_OBJECT (block))
        continue;
      json_object_set_string_member (object, "sessionUpdate",
                                     "user_message_chunk");
      json_object_set_member (object, "content", json_node_copy (block));
      json_node_take_object (update, object);
      text = json_to_string (update, FALSE);
      relay_update (f, session, text);
    }
}

/* One entry of GetTranscript() as session/update notifications. */
static void
replay_entry (Front *f, FrontSession *session, const char *entry)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (JsonNode) root
      = ab_json_parse_untrusted (parser, entry, strlen (entry), NULL);
  JsonObject *object;
  JsonNode *node;

  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return;
  object = json_node_get_object (root);
  if ((node = json_object_get_member (object, "prompt")) != NULL
      && JSON_NODE_HOLDS_ARRAY (node))
    replay_prompt (f, session, json_node_get_array (node));
  else if ((node = json_object_get_member (object, "update")) != NULL
           && JSON_NODE_HOLDS_OBJECT (node))
    {
      g_autofree char *text = json_to_string (node, FALSE);

      relay_update (f, session, text);
    }
}

/* The transcript, read after the watch began: every update the session
 * sent before the broker read it is in it, and every update this
 * connection got before its answer was sent before that (the broker
 * reads it on its main loop, where it writes it and sends the updates,
 * and answers at once); those were dropped (session->loading).  What
 * comes after the answer follows the replay: the live updates of a
 * running turn, none twice and none missed. */
static void
on_transcript (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (FrontCall) call = user_data;
  Front *f = call->front;
  g_autoptr (GError) error = NULL;
  g_auto (GStrv) entries = NULL;
  FrontSession *session = g_hash_table_lookup (f->sessions, call->thread);
  gboolean ok;

  ok = ab_dbus_broker1_call_get_transcript_finish (AB_DBUS_BROKER1 (source),
                                                   &entries, result, &error);
  /* Closed meanwhile: the client has had its answer. */
  if (session == NULL)
    {
      send_error (f, call->id, RPC_INVALID_REQUEST,
                  "the session was closed while it was loaded", NULL);
      return;
    }
  if (session->loading > 0)
    session->loading--;
  if (!ok)
    {
      /* The broker's answer to whether the caller may read it: no such
       * session is ACP's resource-not-found. */
      if (call->fresh)
        session_detach (f, session);
      send_broker_error (f, call->id, error);
      return;
    }
  for (gsize i = 0; entries[i] != NULL; i++)
    replay_entry (f, session, entries[i]);
  send_empty_result (f, call->id);
}

static void
on_load_watched (GObject *source, GAsyncResult *result, gpointer user_data)
{
  FrontCall *call = user_data;
  g_autoptr (GError) error = NULL;
  FrontSession *session;

  if (!ab_dbus_broker1_call_watch_finish (AB_DBUS_BROKER1 (source), result,
                                          &error))
    {
      send_broker_error (call->front, call->id, error);
      call_free (call);
      return;
    }
  call->fresh = !g_hash_table_contains (call->front->sessions, call->thread);
  session = session_attach (call->front, call->thread);
  session->loading++;
  ab_dbus_broker1_call_get_transcript (call->front->ctl->broker, call->thread,
                                       NULL, on_transcript, call);
}

/* Reattaches (Watch(), which also admits a thread that has no session
 * yet) and replays the conversation from the broker's transcript
 * (pool.transcript_bytes), then what the session sends next. */
static void
do_load (Front *f, JsonNode *id, JsonObject *params)
{
  const char *thread = thread_of_params (f, id, params);

  if (thread == NULL)
    return;
  if (!g_hash_table_contains (f->sessions, thread)
      && !check_workspace (f, id, params))
    return;
  ab_dbus_broker1_call_watch (f->ctl->broker, thread, NULL, on_load_watched,
                              call_new (f, id, thread));
}

/* microseconds since the epoch as ISO 8601, or NULL for 0 */
static char *
iso_time (guint64 usec)
{
  g_autoptr (GDateTime) time = NULL;

  if (usec == 0)
    return NULL;
  time = g_date_time_new_from_unix_utc ((gint64)(usec / G_USEC_PER_SEC));
  return time != NULL ? g_date_time_format_iso8601 (time) : NULL;
}

/* A session/list being answered: the front door's sessions, each waiting
 * for its title (GetSession()), and the listing itself. */
typedef struct
{
  FrontCall *call;
  JsonArray *sessions; /* of SessionInfo objects */
  guint pending;
} FrontList;

typedef struct
{
  FrontList *list;
  JsonObject *info; /* in list->sessions */
} FrontListed;

static void
list_step_done (FrontList *list)
{
  g_autoptr (JsonNode) answer = NULL;
  JsonObject *object;

  if (--list->pending > 0)
    return;
  object = json_object_new ();
  json_object_set_array_member (object, "sessions", list->sessions);
  answer = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (answer, object);
  send_result (list->call->front, list->call->id, g_steal_pointer (&answer));
  call_free (list->call);
  g_free (list);
}

/* The title the agent gave the session, where it gave one (a session
 * removed meanwhile is listed without). */
static void
on_listed_title (GObject *source, GAsyncResult *result, gpointer user_data)
{
  FrontListed *listed = user_data;
  g_autoptr (GVariant) dict = NULL;
  const char *title;

  if (ab_dbus_broker1_call_get_session_finish (AB_DBUS_BROKER1 (source), &dict,
                                               result, NULL)
      && g_variant_lookup (dict, "title", "&s", &title) && *title != '\0'
      && strlen (title) <= AB_FRONT_MAX_TITLE_BYTES)
    json_object_set_string_member (listed->info, "title", title);
  list_step_done (listed->list);
  g_free (listed);
}

/* ACP's SessionInfo of one ListSessions() entry. */
static JsonObject *
session_info (GVariant *entry)
{
  g_autoptr (GVariant) thread = g_variant_get_child_value (entry, 0);
  g_autoptr (GVariant) agent = g_variant_get_child_value (entry, 1);
  g_autoptr (GVariant) cwd = g_variant_get_child_value (entry, 5);
  g_autoptr (GVariant) last = g_variant_get_child_value (entry, 7);
  g_autofree char *updated = iso_time (g_variant_get_uint64 (last));
  JsonObject *info = json_object_new ();
  JsonObject *meta = json_object_new ();
  JsonObject *ours = json_object_new ();
  const char *dir = g_variant_get_string (cwd, NULL);

  json_object_set_string_member (info, "sessionId",
                                 g_variant_get_string (thread, NULL));
  /* A session whose agent never started has no directory yet. */
  json_object_set_string_member (info, "cwd",
                                 g_str_has_prefix (dir, "/") ? dir : "/");
  if (updated != NULL)
    json_object_set_string_member (info, "updatedAt", updated);
  json_object_set_string_member (ours, "profile",
                                 g_variant_get_string (agent, NULL));
  json_object_set_object_member (meta, "agentbroker", ours);
  json_object_set_object_member (info, "_meta", meta);
  return info;
}

static void
on_listed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (FrontCall) call = user_data;
  g_autoptr (GVariant) sessions = NULL;
  g_autoptr (GError) error = NULL;
  FrontList *list;
  GVariantIter iter;
  GVariant *entry;

  if (!ab_dbus_broker1_call_list_sessions_finish (AB_DBUS_BROKER1 (source),
                                                  &sessions, result, &error))
    {
      send_broker_error (call->front, call->id, error);
      return;
    }
  list = g_new0 (FrontList, 1);
  list->call = g_steal_pointer (&call);
  list->sessions = json_array_new ();
  list->pending = 1;
  g_variant_iter_init (&iter, sessions);
  while ((entry = g_variant_iter_next_value (&iter)) != NULL)
    {
      g_autoptr (GVariant) owned = entry;
      g_autoptr (GVariant) thread = g_variant_get_child_value (entry, 0);
      FrontListed *listed;

      if (!g_str_has_prefix (g_variant_get_string (thread, NULL),
                             AB_FRONT_THREAD_PREFIX))
        continue;
      listed = g_new0 (FrontListed, 1);
      listed->list = list;
      listed->info = session_info (entry);
      json_array_add_object_element (list->sessions, listed->info);
      list->pending++;
      ab_dbus_broker1_call_get_session (list->call->front->ctl->broker,
                                        g_variant_get_string (thread, NULL),
                                        NULL, on_listed_title, listed);
    }
  list_step_done (list);
}

/* The caller's own sessions of this front door; the client's cwd filter
 * means nothing here (the agents work in the broker's directories). */
static void
do_list (Front *f, JsonNode *id, JsonObject *params)
{
  g_auto (GVariantDict) options = G_VARIANT_DICT_INIT (NULL);

  g_variant_dict_insert (&options, "own", "b", TRUE);
  ab_dbus_broker1_call_list_sessions (f->ctl->broker,
                                      g_variant_dict_end (&options), NULL,
                                      on_listed, call_new (f, id, NULL));
}

/* Detaches: ACP asks that the session's work stop, so a turn this
 * client prompted is cancelled; the session stays in the broker. */
static void
do_close (Front *f, JsonNode *id, JsonObject *params)
{
  FrontSession *session = session_of_params (f, id, params);

  if (session == NULL)
    return;
  if (!g_queue_is_empty (&session->prompts))
    ab_dbus_broker1_call_cancel (f->ctl->broker, session->thread, NULL, NULL,
                                 NULL);
  session_detach (f, session);
  send_empty_result (f, id);
}

static void
on_removed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (FrontCall) call = user_data;
  g_autoptr (GError) error = NULL;
  FrontSession *session;

  if (!ab_dbus_broker1_call_remove_session_finish (AB_DBUS_BROKER1 (source),
                                                   result, &error))
    {
      send_broker_error (call->front, call->id, error);
      return;
    }
  session = g_hash_table_lookup (call->front->sessions, call->thread);
  if (session != NULL)
    session_detach (call->front, session);
  send_empty_result (call->front, call->id);
}

/* RemoveSession() decides: the caller's own sessions (or an admin's). */
static void
do_delete (Front *f, JsonNode *id, JsonObject *params)
{
  const char *thread = thread_of_params (f, id, params);

  if (thread == NULL)
    return;
  ab_dbus_broker1_call_remove_session (f->ctl->broker, thread, NULL, on_removed,
                                       call_new (f, id, thread));
}

static void
on_prompted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (FrontCall) call = user_data;
  Front *f = call->front;
  g_autoptr (GError) error = NULL;
  FrontSession *session = g_hash_table_lookup (f->sessions, call->thread);
  FrontPrompt *prompt = NULL;
  guint64 turn = 0;
  gboolean ok;

  ok = ab_dbus_broker1_call_prompt_content_finish (AB_DBUS_BROKER1 (source),
                                                   &turn, result, &error);
  if (session != NULL)
    prompt = find_prompt_call (session, call->serial);
  /* Closed meanwhile: the client has had its answer. */
  if (prompt == NULL)
    return;
  session->unnumbered--;
  if (!ok)
    {
      g_queue_remove (&session->prompts, prompt);
      prompt_free (prompt);
      send_broker_error (f, call->id, error);
    }
  else
    prompt->turn = turn;
  if (session->unnumbered == 0)
    replay_early (f, session);
}

static void
do_prompt (Front *f, JsonNode *id, JsonObject *params)
{
  FrontSession *session = session_of_params (f, id, params);
  JsonNode *blocks = json_object_get_member (params, "prompt");
  g_autofree char *content = NULL;
  FrontPrompt *prompt;
  FrontCall *call;

  if (session == NULL)
    return;
  if (blocks == NULL || !JSON_NODE_HOLDS_ARRAY (blocks))
    {
      send_error (f, id, RPC_INVALID_PARAMS,
                  "prompt must be an array of content blocks", NULL);
      return;
    }
  if (g_queue_get_length (&session->prompts) >= AB_FRONT_MAX_PROMPTS)
    {
      send_error_printf (f, id, RPC_INVALID_REQUEST,
                         "%d prompts of this session are already waiting",
                         AB_FRONT_MAX_PROMPTS);
      return;
    }
  content = json_to_string (blocks, FALSE);
  prompt = g_new0 (FrontPrompt, 1);
  prompt->id = json_node_copy (id);
  prompt->serial = ++f->next_serial;
  g_queue_push_tail (&session->prompts, prompt);
  session->unnumbered++;
  call = call_new (f, id, session->thread);
  call->serial = prompt->serial;
  ab_dbus_broker1_call_prompt_content (
      f->ctl->broker, session->thread, content,
      g_variant_new_array (G_VARIANT_TYPE ("{sv}"), NULL, 0), NULL, on_prompted,
      call);
}

static void
on_mode_set (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (FrontCall) call = user_data;
  g_autoptr (GError) error = NULL;

  if (!ab_dbus_broker1_call_set_session_mode_finish (AB_DBUS_BROKER1 (source),
                                                     result, &error))
    send_broker_error (call->front, call->id, error);
  else
    send_empty_result (call->front, call->id);
}

/* SetSessionMode(): the agent's answer, its current_mode_update an
 * update of the session. */
static void
do_set_mode (Front *f, JsonNode *id, JsonObject *params)
{
  FrontSession *session = session_of_params (f, id, params);
  const char *mode
      = json_object_get_string_member_with_default (params, "modeId", NULL);

  if (session == NULL)
    return;
  if (mode == NULL)
    {
      send_error (f, id, RPC_INVALID_PARAMS, "modeId must be a string", NULL);
      return;
    }
  ab_dbus_broker1_call_set_session_mode (f->ctl->broker, session->thread, mode,
                                         NULL, on_mode_set,
                                         call_new (f, id, session->thread));
}

static void
on_option_set (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (FrontCall) call = user_data;
  g_autoptr (GError) error = NULL;
  g_autofree char *text = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (JsonNode) options = NULL;
  JsonObject *answer;
  JsonNode *root;

  if (!ab_dbus_broker1_call_set_session_config_option_finish (
          AB_DBUS_BROKER1 (source), &text, result, &error))
    {
      send_broker_error (call->front, call->id, error);
      return;
    }
  options = ab_json_parse_untrusted (parser, text, strlen (text), NULL);
  if (options == NULL || !JSON_NODE_HOLDS_ARRAY (options))
    {
      g_clear_pointer (&options, json_node_unref);
      options = json_node_new (JSON_NODE_ARRAY);
      json_node_take_array (options, json_array_new ());
    }
  answer = json_object_new ();
  json_object_set_member (answer, "configOptions", g_steal_pointer (&options));
  root = json_node_new (JSON_NODE_OBJECT);
  json_node_take_object (root, answer);
  send_result (call->front, call->id, root);
}

/* SetSessionConfigOption(): a value id, or a boolean ("type":
 * "boolean"). */
static void
do_set_config_option (Front *f, JsonNode *id, JsonObject *params)
{
  FrontSession *session = session_of_params (f, id, params);
  const char *option
      = json_object_get_string_member_with_default (params, "configId", NULL);
  JsonNode *value = json_object_get_member (params, "value");
  GVariant *v;

  if (session == NULL)
    return;
  if (option == NULL || value == NULL || !JSON_NODE_HOLDS_VALUE (value))
    {
      send_error (f, id, RPC_INVALID_PARAMS,
                  "configId must be a string and value a string or a "
                  "boolean",
                  NULL);
      return;
    }
  if (json_node_get_value_type (value) == G_TYPE_BOOLEAN)
    v = g_variant_new_boolean (json_node_get_boolean (value));
  else if (json_node_get_value_type (value) == G_TYPE_STRING)
    v = g_variant_new_string (json_node_get_string (value));
  else
    {
      send_error (f, id, RPC_INVALID_PARAMS,
                  "value must be a string or a boolean", NULL);
      return;
    }
  ab_dbus_broker1_call_set_session_config_option (
      f->ctl->broker, session->thread, option, g_variant_new_variant (v), NULL,
      on_option_set, call_new (f, id, session->thread));
}

/* ---- notifications and answers from the client ----------------------------
 */

static void
do_cancel (Front *f, JsonObject *params)
{
  const char *thread
      = json_object_get_string_member_with_default (params, "sessionId", NULL);

  if (thread != NULL && g_hash_table_contains (f->sessions, thread))
    ab_dbus_broker1_call_cancel (f->ctl->broker, thread, NULL, NULL, NULL);
}

/* The client's answer to session/request_permission: the option it
 * selected, or a denial (cancelled, an error, anything else). */
static void
on_client_response (Front *f, JsonObject *message)
{
  JsonNode *id = json_object_get_member (message, "id");
  JsonNode *result = json_object_get_member (message, "result");
  JsonObject *outcome = NULL;
  const char *option = "";
  FrontAsk *ask;
  gint64 key;

  if (id == NULL || !JSON_NODE_HOLDS_VALUE (id)
      || json_node_get_value_type (id) != G_TYPE_INT64)
    return;
  key = json_node_get_int (id);
  ask = g_hash_table_lookup (f->asks, &key);
  if (ask == NULL)
    return;
  if (result != NULL && JSON_NODE_HOLDS_OBJECT (result))
    {
      JsonNode *node
          = json_object_get_member (json_node_get_object (result), "outcome");

      if (node != NULL && JSON_NODE_HOLDS_OBJECT (node))
        outcome = json_node_get_object (node);
    }
  if (outcome != NULL
      && g_strcmp0 (json_object_get_string_member_with_default (
                        outcome, "outcome", NULL),
                    "selected")
             == 0)
    option
        = json_object_get_string_member_with_default (outcome, "optionId", "");
  answer_permission (f, ask->thread, ask->request, option);
  g_hash_table_remove (f->asks, &key);
}

typedef void (*FrontRequestFunc) (Front *f, JsonNode *id, JsonObject *params);

static const struct
{
  const char *method;
  FrontRequestFunc func;
} requests[] = {
  { "initialize", do_initialize },
  { "session/new", do_new },
  { "session/resume", do_resume },
  { "session/load", do_load },
  { "session/list", do_list },
  { "session/close", do_close },
  { "session/delete", do_delete },
  { "session/prompt", do_prompt },
  { "session/set_mode", do_set_mode },
  { "session/set_config_option", do_set_config_option },
};

static void
handle_request (Front *f, const char *method, JsonNode *id, JsonObject *params)
{
  for (gsize i = 0; i < G_N_ELEMENTS (requests); i++)
    {
      if (!g_str_equal (method, requests[i].method))
        continue;
      if (!f->initialized && requests[i].func != do_initialize)
        send_error_printf (f, id, RPC_INVALID_REQUEST,
                           "%s before initialize: initialize must come first",
                           method);
      else
        requests[i].func (f, id, params);
      return;
    }
  send_error_printf (f, id, RPC_METHOD_NOT_FOUND,
                     "Method not found: %.100s (agentctl acp offers "
                     "initialize and session/new, resume, load, list, "
                     "close, delete, prompt, cancel, set_mode and "
                     "set_config_option)",
                     method);
}

/* A JSON-RPC id: a string, an integer or null. */
static gboolean
id_is_valid (JsonNode *id)
{
  GType type;

  if (JSON_NODE_HOLDS_NULL (id))
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (id))
    return FALSE;
  type = json_node_get_value_type (id);
  return type == G_TYPE_STRING || type == G_TYPE_INT64;
}

static void
handle_message (Front *f, JsonObject *message)
{
  JsonNode *id = json_object_get_member (message, "id");
  JsonNode *params = json_object_get_member (message, "params");
  const char *method
      = json_object_get_string_member_with_default (message, "method", NULL);
  g_autoptr (JsonObject) empty = json_object_new ();

  if (id != NULL && !id_is_valid (id))
    {
      send_error (f, NULL, RPC_INVALID_REQUEST,
                  "id must be a string, an integer or null", NULL);
      return;
    }
  if (g_strcmp0 (
          json_object_get_string_member_with_default (message, "jsonrpc", NULL),
          "2.0")
      != 0)
    {
      send_error (f, id, RPC_INVALID_REQUEST, "jsonrpc must be \"2.0\"", NULL);
      return;
    }
  if (method == NULL)
    {
      if (id != NULL
          && (json_object_has_member (message, "result")
              || json_object_has_member (message, "error")))
        on_client_response (f, message);
      else
        send_error (f, id, RPC_INVALID_REQUEST,
                    "a request needs a string method", NULL);
      return;
    }
  if (params != NULL && !JSON_NODE_HOLDS_OBJECT (params)
      && !JSON_NODE_HOLDS_NULL (params))
    {
      if (id != NULL)
        send_error (f, id, RPC_INVALID_PARAMS, "params must be an object",
                    NULL);
      return;
    }
  if (id == NULL)
    {
      /* Notifications get no answer, not even an error. */
      if (g_str_equal (method, "session/cancel") && f->initialized
          && params != NULL && JSON_NODE_HOLDS_OBJECT (params))
        do_cancel (f, json_node_get_object (params));
      return;
    }
  handle_request (f, method, id,
                  params != NULL && JSON_NODE_HOLDS_OBJECT (params)
                      ? json_node_get_object (params)
                      : empty);
}

static gboolean
on_line (const char *line, gsize len, gpointer user_data)
{
  Front *f = user_data;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autoptr (GError) error = NULL;

  root = ab_json_parse_untrusted (parser, line, len, &error);
  if (root == NULL)
    send_error_printf (f, NULL, RPC_PARSE_ERROR, "Parse error: %s",
                       error->message);
  else if (!JSON_NODE_HOLDS_OBJECT (root))
    send_error (f, NULL, RPC_INVALID_REQUEST,
                "a message must be a JSON object (ACP has no batches)", NULL);
  else
    handle_message (f, json_node_get_object (root));
  return TRUE;
}

/* ---- standard input ------------------------------------------------------ */

static void
feed (Front *f, const char *data, gsize len)
{
  g_autoptr (GError) error = NULL;
  const char *newline;

  if (f->skipping)
    {
      newline = memchr (data, '\n', len);
      if (newline == NULL)
        return;
      f->skipping = FALSE;
      len -= (gsize)(newline + 1 - data);
      data = newline + 1;
    }
  if (ab_line_reader_feed (f->reader, data, len, on_line, f, &error))
    return;

  send_error_printf (f, NULL, RPC_INVALID_REQUEST,
                     "a line longer than %d bytes was discarded",
                     AB_FRONT_MAX_LINE_BYTES);
  ab_line_reader_free (f->reader);
  f->reader = ab_line_reader_new (AB_FRONT_MAX_LINE_BYTES);
  /* The line began before @data (it is longer than a read): it ends at
   * the first newline of @data, if there is one. */
  newline = memchr (data, '\n', len);
  if (newline == NULL)
    f->skipping = TRUE;
  else
    feed (f, newline + 1, len - (gsize)(newline + 1 - data));
}

static gboolean
on_stdin (int fd, GIOCondition condition, gpointer user_data)
{
  Front *f = user_data;
  ssize_t n = read (fd, f->buffer, AB_FRONT_READ_BYTES);

  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return G_SOURCE_CONTINUE;
  if (n <= 0)
    {
      /* The client is gone: its sessions stay in the broker. */
      f->stdin_source = 0;
      g_main_loop_quit (f->loop);
      return G_SOURCE_REMOVE;
    }
  feed (f, f->buffer, (gsize)n);
  return G_SOURCE_CONTINUE;
}

/* ---- the broker ---------------------------------------------------------- */

/* A broker that comes back (a restart) forgot this connection's
 * watches: they are made again, and the turns the old one cut off are
 * told as it reports them, "interrupted". */
static void
on_broker_appeared (GDBusConnection *connection, const char *name,
                    const char *owner, gpointer user_data)
{
  Front *f = user_data;
  GHashTableIter iter;
  gpointer key;

  if (!f->broker_seen)
    {
      f->broker_seen = TRUE;
      return;
    }
  g_hash_table_iter_init (&iter, f->sessions);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    ab_dbus_broker1_call_watch (f->ctl->broker, key, NULL, NULL, NULL);
}

static void
front_clear (Front *f)
{
  if (f->stdin_source != 0)
    g_source_remove (f->stdin_source);
  if (f->signal_subscription != 0)
    g_dbus_connection_signal_unsubscribe (f->ctl->connection,
                                          f->signal_subscription);
  if (f->name_watch != 0)
    g_bus_unwatch_name (f->name_watch);
  g_clear_pointer (&f->by_path, g_hash_table_unref);
  g_clear_pointer (&f->sessions, g_hash_table_unref);
  g_clear_pointer (&f->asks, g_hash_table_unref);
  g_clear_pointer (&f->reader, ab_line_reader_free);
  g_clear_pointer (&f->buffer, g_free);
  g_clear_pointer (&f->loop, g_main_loop_unref);
}

static gboolean
on_bus_option (const char *option, const char *value, gpointer data,
               GError **error)
{
  AbCtl *ctl = data;

  ctl->system_bus = g_str_equal (option, "--system");
  return TRUE;
}

int
verb_acp (AbCtl *ctl, int argc, char **argv)
{
  g_autofree char *profile = NULL;
  const GOptionEntry entries[]
      = { { "agent", 0, 0, G_OPTION_ARG_STRING, &profile,
            N_ ("The agent profile of new sessions (default: the broker's)"),
            N_ ("NAME") },
          { "system", 0, G_OPTION_FLAG_NO_ARG, G_OPTION_ARG_CALLBACK,
            on_bus_option, N_ ("Talk to the system broker (default)"), NULL },
          { "user", 0, G_OPTION_FLAG_NO_ARG, G_OPTION_ARG_CALLBACK,
            on_bus_option, N_ ("Talk to the broker of the calling user"),
            NULL },
          { NULL } };
  Front f = { 0 };
  int status;

  if (!parse_verb_options (ctl, entries, FALSE, &argc, &argv, &status))
    return status;
  if (argc != 1)
    return fail_usage (ctl);

  /* Writes to a client that went away fail with EPIPE instead. */
  signal (SIGPIPE, SIG_IGN);
  f.ctl = ctl;
  f.profile = profile;
  f.loop = g_main_loop_new (NULL, FALSE);
  f.reader = ab_line_reader_new (AB_FRONT_MAX_LINE_BYTES);
  f.buffer = g_malloc (AB_FRONT_READ_BYTES);
  f.sessions = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                      (GDestroyNotify)session_free);
  f.by_path = g_hash_table_new (g_str_hash, g_str_equal);
  f.asks = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free,
                                  (GDestroyNotify)ask_free);
  g_debug ("connected to the broker as %s",
           g_dbus_connection_get_unique_name (ctl->connection));

  f.signal_subscription = g_dbus_connection_signal_subscribe (
      ctl->connection, AB_BUS_NAME, AB_SESSION_IFACE, NULL, NULL, NULL,
      G_DBUS_SIGNAL_FLAGS_NONE, on_session_signal, &f, NULL);
  f.name_watch = g_bus_watch_name_on_connection (
      ctl->connection, AB_BUS_NAME, G_BUS_NAME_WATCHER_FLAGS_NONE,
      on_broker_appeared, NULL, &f, NULL);
  g_dbus_connection_set_exit_on_close (ctl->connection, FALSE);
  f.stdin_source = g_unix_fd_add (STDIN_FILENO, G_IO_IN | G_IO_HUP | G_IO_ERR,
                                  on_stdin, &f);

  g_main_loop_run (f.loop);

  front_clear (&f);
  return EXIT_SUCCESS;
}
