/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker-bench — baselines without the daemon: the demo agent driven
 * over its pipes by the bench itself, and a trivial D-Bus emitter. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gio/gunixinputstream.h>

#include <json-glib/json-glib.h>

#include "bench-direct.h"
#include "bench-sink.h"
#include "bench-util.h"

struct _BenchDirect
{
  GSubprocess *proc;
  GOutputStream *in;
  GDataInputStream *out;
  JsonParser *parser;
  char *session_id;
  gint64 next_id;
  GArray *latency_us; /* gint64, of stamped chunks; NULL: not kept */
};

static gboolean
send_request (BenchDirect *d, const char *method, const char *params,
              GError **error)
{
  g_autofree char *line
      = g_strdup_printf ("{\"jsonrpc\":\"2.0\",\"id\":%" G_GINT64_FORMAT
                         ",\"method\":\"%s\",\"params\":%s}\n",
                         ++d->next_id, method, params);

  return g_output_stream_write_all (d->in, line, strlen (line), NULL, NULL,
                                    error)
         && g_output_stream_flush (d->in, NULL, error);
}

/* Reads and parses lines (each with json-glib, as a client would) until
 * the response to the last request; counts agent_message_chunk updates,
 * notes when the first arrived and, when asked, how long each stamped one
 * took to arrive. Returns the response's result. */
static JsonObject *
read_response (BenchDirect *d, guint64 *chunks, gint64 *first_chunk_us,
               GError **error)
{
  for (;;)
    {
      gsize len;
      g_autofree char *line
          = g_data_input_stream_read_line (d->out, &len, NULL, error);
      JsonNode *root;
      JsonObject *msg;

      if (line == NULL)
        {
          if (error != NULL && *error == NULL)
            g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CLOSED,
                                 "the demo agent closed its stdout");
          return NULL;
        }
      if (!json_parser_load_from_data (d->parser, line, (gssize)len, error))
        return NULL;
      root = json_parser_get_root (d->parser);
      if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
        continue;
      msg = json_node_get_object (root);
      if (json_object_has_member (msg, "method"))
        {
          JsonObject *params, *update;

          if (g_strcmp0 (json_object_get_string_member_with_default (
                             msg, "method", ""),
                         "session/update")
              != 0)
            continue;
          params = json_object_get_object_member (msg, "params");
          update = params != NULL
                       ? json_object_get_object_member (params, "update")
                       : NULL;
          if (update != NULL
              && g_strcmp0 (json_object_get_string_member_with_default (
                                update, "sessionUpdate", ""),
                            "agent_message_chunk")
                     == 0)
            {
              gint64 age;

              if (chunks != NULL && (*chunks)++ == 0 && first_chunk_us != NULL)
                *first_chunk_us = g_get_monotonic_time ();
              /* Only when asked: the throughput baseline does no more per
               * line than a client would. */
              if (d->latency_us != NULL
                  && bench_stamp_age (line, g_get_monotonic_time (), &age))
                g_array_append_val (d->latency_us, age);
            }
          continue;
        }
      if (json_object_get_int_member_with_default (msg, "id", -1) != d->next_id)
        continue;
      if (json_object_has_member (msg, "error"))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                       "the demo agent answered with an error: %s", line);
          return NULL;
        }
      return json_object_ref (json_object_get_object_member (msg, "result"));
    }
}

BenchDirect *
bench_direct_start (const char *agent_path, const char *cwd, GError **error)
{
  g_autoptr (GSubprocessLauncher) launcher = NULL;
  g_autoptr (JsonObject) result = NULL;
  g_autofree char *params = NULL;
  BenchDirect *d = g_new0 (BenchDirect, 1);

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE
                                        | G_SUBPROCESS_FLAGS_STDOUT_PIPE
                                        | G_SUBPROCESS_FLAGS_STDERR_SILENCE);
  g_subprocess_launcher_set_cwd (launcher, cwd);
  d->parser = json_parser_new_immutable ();
  d->proc = g_subprocess_launcher_spawn (launcher, error, agent_path, NULL);
  if (d->proc == NULL)
    goto fail;
  d->in = g_subprocess_get_stdin_pipe (d->proc);
  d->out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (d->proc));
  g_buffered_input_stream_set_buffer_size (G_BUFFERED_INPUT_STREAM (d->out),
                                           65536);

  if (!send_request (d, "initialize",
                     "{\"protocolVersion\":1,\"clientCapabilities\":{\"fs\":{"
                     "\"readTextFile\":false,\"writeTextFile\":false},"
                     "\"terminal\":false}}",
                     error))
    goto fail;
  result = read_response (d, NULL, NULL, error);
  if (result == NULL)
    goto fail;
  g_clear_pointer (&result, json_object_unref);

  {
    g_autoptr (JsonNode) cwd_node
        = json_node_init_string (json_node_alloc (), cwd);
    g_autofree char *quoted = json_to_string (cwd_node, FALSE);

    params = g_strdup_printf ("{\"cwd\":%s,\"mcpServers\":[]}", quoted);
  }
  if (!send_request (d, "session/new", params, error))
    goto fail;
  result = read_response (d, NULL, NULL, error);
  if (result == NULL)
    goto fail;
  d->session_id = g_strdup (
      json_object_get_string_member_with_default (result, "sessionId", ""));
  return d;

fail:
  bench_direct_free (d);
  return NULL;
}

/* session/prompt with @text, its answer not waited for. */
static gboolean
send_prompt (BenchDirect *d, const char *text, GError **error)
{
  g_autoptr (JsonNode) text_node
      = json_node_init_string (json_node_alloc (), text);
  g_autofree char *quoted = json_to_string (text_node, FALSE);
  g_autofree char *params = g_strdup_printf (
      "{\"sessionId\":\"%s\",\"prompt\":[{\"type\":\"text\",\"text\":%s}]}",
      d->session_id, quoted);

  return send_request (d, "session/prompt", params, error);
}

gboolean
bench_direct_prompt (BenchDirect *d, const char *text, guint64 *chunks,
                     gint64 *first_chunk_us, GArray *latency_us, GError **error)
{
  g_autoptr (JsonObject) result = NULL;

  *chunks = 0;
  if (!send_prompt (d, text, error))
    return FALSE;
  d->latency_us = latency_us;
  result = read_response (d, chunks, first_chunk_us, error);
  d->latency_us = NULL;
  return result != NULL;
}

void
bench_direct_free (BenchDirect *d)
{
  if (d == NULL)
    return;
  if (d->proc != NULL)
    {
      /* EOF on stdin ends the demo agent. */
      g_output_stream_close (d->in, NULL, NULL);
      g_subprocess_wait (d->proc, NULL, NULL);
      g_object_unref (d->proc);
    }
  g_clear_object (&d->out);
  g_clear_object (&d->parser);
  g_free (d->session_id);
  g_free (d);
}

/* ---- the trivial emitter (a process of its own) ---------------------- */

static void
sleep_until (gint64 due_us)
{
  gint64 left = due_us - g_get_monotonic_time ();

  if (left > 0)
    {
      struct timespec ts = { .tv_sec = left / G_USEC_PER_SEC,
                             .tv_nsec = (left % G_USEC_PER_SEC) * 1000 };

      nanosleep (&ts, NULL);
    }
}

static GVariant *
update_signal (guint64 i, guint bytes)
{
  GString *text = g_string_new (NULL);
  g_autofree char *json = NULL;
  const char *one[2];

  g_string_printf (text, "%" G_GUINT64_FORMAT " t=%" G_GINT64_FORMAT " ", i,
                   g_get_monotonic_time ());
  while (text->len < bytes)
    g_string_append_c (text, 'x');
  /* The same update object the demo agent sends for a chunk. */
  json = g_strdup_printf ("{\"sessionUpdate\":\"agent_message_chunk\","
                          "\"content\":{\"type\":\"text\",\"text\":\"%s\"}}",
                          text->str);
  g_string_free (text, TRUE);
  one[0] = json;
  one[1] = NULL;
  return g_variant_new ("(t^ast)", (guint64)1, one, i);
}

int
bench_emitter_main (const char *address, const char *dest, guint64 n,
                    guint bytes, guint rate, guint streams)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GDBusConnection) c = NULL;
  char go[8];
  gint64 t0, interval_us = rate > 0 ? G_USEC_PER_SEC / rate : 0;

  c = bench_bus_connect (address, &error);
  if (c == NULL)
    {
      g_printerr ("emitter: %s\n", error->message);
      return 1;
    }
  printf ("ready\n");
  fflush (stdout);
  if (fgets (go, sizeof go, stdin) == NULL)
    return 1;

  t0 = g_get_monotonic_time ();
  for (guint64 i = 1; i <= n; i++)
    for (guint s = 0; s < streams; s++)
      {
        if (interval_us > 0)
          sleep_until (t0 + (gint64)(i - 1) * interval_us
                       + (gint64)s * interval_us / streams);
        /* One unicast signal per update: the simplest relay there is. */
        if (!g_dbus_connection_emit_signal (c, dest, "/org/agentbroker/bench",
                                            BENCH_SESSION_IFACE, "Update",
                                            update_signal (i, bytes), &error))
          {
            g_printerr ("emitter: %s\n", error->message);
            return 1;
          }
      }
  for (guint s = 0; s < streams; s++)
    g_dbus_connection_emit_signal (
        c, dest, "/org/agentbroker/bench", BENCH_SESSION_IFACE, "TurnEnded",
        g_variant_new ("(tsst)", (guint64)1, "end_turn", "", (guint64)0), NULL);
  g_dbus_connection_flush_sync (c, NULL, NULL);
  return 0;
}

/* ---- the simplest relay (a process of its own) ------------------------ */

/* The simplest relay: where it sends, and whether it does (FALSE: it only
 * reads what its agents write, to show their load alone). */
typedef struct
{
  GDBusConnection *connection;
  const char *dest;
  JsonParser *parser;
  gboolean relay;
  guint64 seq; /* the last stream number sent */
} Floor;

/* One agent of the simplest relay: its pipe and the partial line read. */
typedef struct
{
  BenchDirect *agent;
  GPid pid;
  int fd;
  GString *line;
  gboolean done; /* the prompt's response has arrived */
} FloorAgent;

/* One line from an agent: an update goes on as an Update signal of its own,
 * holding the JSON text of the update object, and the prompt's response as
 * a TurnEnded. Anything else is dropped. */
static gboolean
floor_relay_line (Floor *f, FloorAgent *a, GError **error)
{
  JsonNode *root, *params, *update = NULL;
  JsonObject *msg;
  g_autofree char *json = NULL;
  const char *one[2] = { NULL, NULL };

  if (!f->relay
      && memmem (a->line->str, a->line->len, "\"session/update\"", 16) != NULL)
    return TRUE;
  if (!json_parser_load_from_data (f->parser, a->line->str,
                                   (gssize)a->line->len, error))
    return FALSE;
  root = json_parser_get_root (f->parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return TRUE;
  msg = json_node_get_object (root);
  if (json_object_has_member (msg, "error"))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   "a demo agent answered with an error: %s", a->line->str);
      return FALSE;
    }
  if (json_object_has_member (msg, "result"))
    {
      a->done = TRUE;
      return !f->relay
             || g_dbus_connection_emit_signal (
                 f->connection, f->dest, "/org/agentbroker/bench",
                 BENCH_SESSION_IFACE, "TurnEnded",
                 g_variant_new ("(tsst)", (guint64)1, "end_turn", "",
                                (guint64)0),
                 error);
    }
  if (g_strcmp0 (json_object_get_string_member_with_default (msg, "method", ""),
                 "session/update")
      != 0)
    return TRUE;
  params = json_object_get_member (msg, "params");
  if (params != NULL && JSON_NODE_HOLDS_OBJECT (params))
    update = json_object_get_member (json_node_get_object (params), "update");
  if (update == NULL || !JSON_NODE_HOLDS_OBJECT (update))
    return TRUE;
  json = json_to_string (update, FALSE);
  one[0] = json;
  return g_dbus_connection_emit_signal (
      f->connection, f->dest, "/org/agentbroker/bench", BENCH_SESSION_IFACE,
      "Update", g_variant_new ("(t^ast)", (guint64)1, one, ++f->seq), error);
}

/* Reads what @a's pipe holds and relays each whole line. */
static gboolean
floor_read (Floor *f, FloorAgent *a, GError **error)
{
  char buf[65536];
  gssize got;
  const char *p, *end, *nl;

  do
    got = read (a->fd, buf, sizeof buf);
  while (got < 0 && errno == EINTR);
  if (got <= 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_CLOSED,
                   "a demo agent closed its stdout%s%s", got < 0 ? ": " : "",
                   got < 0 ? g_strerror (errno) : "");
      return FALSE;
    }
  for (p = buf, end = buf + got; (nl = memchr (p, '\n', end - p)) != NULL;
       p = nl + 1)
    {
      g_string_append_len (a->line, p, nl - p);
      if (!floor_relay_line (f, a, error))
        return FALSE;
      g_string_truncate (a->line, 0);
    }
  g_string_append_len (a->line, p, end - p);
  return TRUE;
}

/* CPU time the agents of the simplest relay have used so far (s). */
static double
floor_agents_cpu (FloorAgent *agents, guint streams)
{
  double sum = 0;

  for (guint s = 0; s < streams; s++)
    sum += bench_cpu_seconds (agents[s].pid);
  return sum;
}

int
bench_floor_main (const char *address, const char *dest, const char *agent_path,
                  const char *cwd, guint streams, guint rate, guint64 n,
                  guint bytes, double start_ms, gboolean relay)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GDBusConnection) c = NULL;
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  Floor f = { NULL, dest, parser, relay };
  g_autofree FloorAgent *agents = g_new0 (FloorAgent, streams);
  g_autofree struct pollfd *fds = g_new0 (struct pollfd, streams);
  guint done = 0;
  char go[8];
  double cpu0 = 0, agents_cpu0 = 0, wall;
  gint64 t0 = 0;
  int status = 1;

  c = bench_bus_connect (address, &error);
  f.connection = c;
  for (guint s = 0; c != NULL && s < streams; s++)
    {
      FloorAgent *a = &agents[s];

      a->agent = bench_direct_start (agent_path, cwd, &error);
      if (a->agent == NULL)
        break;
      a->fd = g_unix_input_stream_get_fd (
          G_UNIX_INPUT_STREAM (g_subprocess_get_stdout_pipe (a->agent->proc)));
      a->pid = (GPid)g_ascii_strtoll (
          g_subprocess_get_identifier (a->agent->proc), NULL, 10);
      a->line = g_string_new (NULL);
      fds[s].fd = a->fd;
      fds[s].events = POLLIN;
    }
  if (error != NULL)
    goto out;
  printf ("ready\n");
  fflush (stdout);
  if (fgets (go, sizeof go, stdin) == NULL)
    goto out;

  /* The prompts the daemon's agents get, at the same offsets. */
  for (guint s = 0; s < streams; s++)
    {
      g_autofree char *text
          = g_strdup_printf ("pace %u %" G_GUINT64_FORMAT " %u %.3f", rate, n,
                             bytes, start_ms + s * 1000.0 / rate / streams);

      if (!send_prompt (agents[s].agent, text, &error))
        goto out;
    }

  while (done < streams)
    {
      if (poll (fds, streams, 60000) <= 0)
        {
          g_set_error (&error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                       "no demo agent wrote for a minute");
          goto out;
        }
      /* CPU is counted from the first update, as on the daemon's path. */
      if (t0 == 0)
        {
          t0 = g_get_monotonic_time ();
          cpu0 = bench_cpu_seconds (getpid ());
          agents_cpu0 = floor_agents_cpu (agents, streams);
        }
      for (guint s = 0; s < streams; s++)
        {
          if (fds[s].fd < 0 || fds[s].revents == 0)
            continue;
          if (!floor_read (&f, &agents[s], &error))
            goto out;
          if (agents[s].done)
            {
              fds[s].fd = -1; /* poll() skips it from now on */
              done++;
            }
        }
    }
  wall = (g_get_monotonic_time () - t0) / 1e6;
  /* Cores used while the agents wrote: this relay, its agents. */
  printf ("cpu %.4f %.4f\n", (bench_cpu_seconds (getpid ()) - cpu0) / wall,
          (floor_agents_cpu (agents, streams) - agents_cpu0) / wall);
  fflush (stdout);
  g_dbus_connection_flush_sync (c, NULL, NULL);
  status = 0;

out:
  if (error != NULL)
    g_printerr ("simplest relay: %s\n", error->message);
  for (guint s = 0; s < streams; s++)
    {
      bench_direct_free (agents[s].agent);
      if (agents[s].line != NULL)
        g_string_free (agents[s].line, TRUE);
    }
  return status;
}

/* ---- a trivial service answering ListSessions ---------------------------- */

#define LISTER_PATH "/org/agentbroker/Broker1"
/* Its reply's type is that of the reply it is given. */
#define LISTER_XML                                                             \
  "<node><interface name='org.agentbroker.Broker1'>"                           \
  "<method name='ListSessions'><arg type='a{sv}' direction='in'/>"             \
  "<arg type='%s' direction='out'/></method>"                                  \
  "</interface></node>"

struct _BenchLister
{
  GThread *thread;
  GMainContext *context;
  GMainLoop *loop;
  GVariant *reply;
  char *address;
  GMutex lock;
  GCond cond;
  gboolean started;
  char *name;    /* once started, NULL if it failed */
  GError *error; /* why it failed */
};

/* @v rebuilt out of new containers, as the daemon builds its reply:
 * GDBus marshals a value in that form faster than a serialised one. */
static GVariant *
tree_copy (GVariant *v)
{
  g_autofree GVariant **children = NULL;
  GVariant *copy;
  gsize n;

  if (!g_variant_is_container (v))
    return g_variant_ref (v);
  n = g_variant_n_children (v);
  children = g_new (GVariant *, n + 1);
  for (gsize i = 0; i < n; i++)
    {
      g_autoptr (GVariant) child = g_variant_get_child_value (v, i);

      children[i] = tree_copy (child);
    }
  switch (g_variant_classify (v))
    {
    case G_VARIANT_CLASS_TUPLE:
      copy = g_variant_new_tuple (children, n);
      break;
    case G_VARIANT_CLASS_DICT_ENTRY:
      copy = g_variant_new_dict_entry (children[0], children[1]);
      break;
    case G_VARIANT_CLASS_VARIANT:
      copy = g_variant_new_variant (children[0]);
      break;
    default: /* arrays: the rest of what a ListSessions reply holds */
      copy = g_variant_new_array (
          g_variant_type_element (g_variant_get_type (v)), children, n);
      break;
    }
  for (gsize i = 0; i < n; i++)
    g_variant_unref (children[i]);
  return g_variant_ref_sink (copy);
}

void
bench_marshal_times (GVariant *reply, double *encode_ms, double *decode_ms)
{
  g_autoptr (GDBusMessage) call = g_dbus_message_new_method_call (
      ":1.1", LISTER_PATH, "org.agentbroker.Broker1", "ListSessions");
  g_autoptr (GDBusMessage) answer = NULL;
  g_autoptr (GDBusMessage) decoded = NULL;
  g_autofree guchar *blob = NULL;
  gsize len = 0;
  gint64 t0, t1, t2;

  g_dbus_message_set_serial (call, 1);
  answer = g_dbus_message_new_method_reply (call);
  g_dbus_message_set_serial (answer, 2);
  g_dbus_message_set_body (answer, tree_copy (reply));
  t0 = g_get_monotonic_time ();
  blob = g_dbus_message_to_blob (answer, &len, G_DBUS_CAPABILITY_FLAGS_NONE,
                                 NULL);
  t1 = g_get_monotonic_time ();
  if (blob != NULL)
    decoded = g_dbus_message_new_from_blob (blob, len,
                                            G_DBUS_CAPABILITY_FLAGS_NONE, NULL);
  t2 = g_get_monotonic_time ();
  *encode_ms = blob != NULL ? (t1 - t0) / 1000.0 : NAN;
  *decode_ms = decoded != NULL ? (t2 - t1) / 1000.0 : NAN;
}

static void
on_lister_call (GDBusConnection *connection, const char *sender,
                const char *path, const char *iface, const char *method,
                GVariant *params, GDBusMethodInvocation *invocation,
                gpointer user_data)
{
  BenchLister *l = user_data;

  g_dbus_method_invocation_return_value (invocation, l->reply);
}

static gpointer
lister_thread (gpointer user_data)
{
  static const GDBusInterfaceVTable vtable = { on_lister_call, NULL, NULL };
  BenchLister *l = user_data;
  g_autoptr (GDBusConnection) connection = NULL;
  g_autoptr (GDBusNodeInfo) node = NULL;
  const char *type = g_variant_get_type_string (l->reply); /* "(…)" */
  g_autofree char *out_type = g_strndup (type + 1, strlen (type) - 2);
  g_autofree char *xml = g_strdup_printf (LISTER_XML, out_type);
  GError *error = NULL;
  guint id = 0;

  g_main_context_push_thread_default (l->context);
  node = g_dbus_node_info_new_for_xml (xml, &error);
  if (node != NULL)
    connection = bench_bus_connect (l->address, &error);
  if (connection != NULL)
    id = g_dbus_connection_register_object (
        connection, LISTER_PATH, node->interfaces[0], &vtable, l, NULL, &error);
  g_mutex_lock (&l->lock);
  l->started = TRUE;
  if (id != 0)
    l->name = g_strdup (g_dbus_connection_get_unique_name (connection));
  l->error = error;
  g_cond_signal (&l->cond);
  g_mutex_unlock (&l->lock);

  if (id != 0)
    {
      g_main_loop_run (l->loop);
      g_dbus_connection_unregister_object (connection, id);
      g_dbus_connection_close_sync (connection, NULL, NULL);
    }
  g_main_context_pop_thread_default (l->context);
  return NULL;
}

BenchLister *
bench_lister_start (const char *address, GVariant *reply, GError **error)
{
  BenchLister *l = g_new0 (BenchLister, 1);

  l->context = g_main_context_new ();
  l->loop = g_main_loop_new (l->context, FALSE);
  l->reply = tree_copy (reply);
  l->address = g_strdup (address);
  g_mutex_init (&l->lock);
  g_cond_init (&l->cond);
  l->thread = g_thread_new ("bench-lister", lister_thread, l);
  g_mutex_lock (&l->lock);
  while (!l->started)
    g_cond_wait (&l->cond, &l->lock);
  g_mutex_unlock (&l->lock);
  if (l->name == NULL)
    {
      g_propagate_error (error, g_steal_pointer (&l->error));
      bench_lister_stop (l);
      return NULL;
    }
  return l;
}

const char *
bench_lister_name (BenchLister *l)
{
  return l->name;
}

static gboolean
quit_loop (gpointer user_data)
{
  g_main_loop_quit (user_data);
  return G_SOURCE_REMOVE;
}

void
bench_lister_stop (BenchLister *l)
{
  g_main_context_invoke (l->context, quit_loop, l->loop);
  g_thread_join (l->thread);
  g_main_loop_unref (l->loop);
  g_main_context_unref (l->context);
  g_variant_unref (l->reply);
  g_free (l->address);
  g_free (l->name);
  g_clear_error (&l->error);
  g_mutex_clear (&l->lock);
  g_cond_clear (&l->cond);
  g_free (l);
}
