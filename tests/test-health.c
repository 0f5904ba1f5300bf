/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — the HTTP health shim (agentbrokerd(8)) against the
 * real daemon on a private bus: the four endpoints, HEAD, 405, 404, dot
 * segments, oversized and slow requests, readiness through Drain, Resume
 * and Reload, /metrics checked by a small Prometheus text-format parser
 * with counters that move, a stopped main loop, sequential and concurrent
 * load while a session streams, and socket activation through
 * systemd-socket-activate.
 *
 * HTTP is spoken over plain sockets with bounded waits, so what is tested
 * is the bytes on the wire, not a client library's view of them.
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-glib/json-glib.h>

#include "daemon-fixture.h"

#define TEST_ALARM_SECONDS 90
#define HTTP_TIMEOUT_MS 5000

/* ---- a minimal HTTP client ------------------------------------------------
 */

typedef struct
{
  int status; /* 0: no response (closed, reset or timed out) */
  gboolean timed_out;
  char *head;
  char *body;
} Reply;

static void
reply_clear (Reply *r)
{
  g_clear_pointer (&r->head, g_free);
  g_clear_pointer (&r->body, g_free);
  memset (r, 0, sizeof *r);
}

/* Where the shim listens: a TCP port on 127.0.0.1, or a unix socket. */
typedef struct
{
  guint port;
  const char *path;
} Target;

static int
connect_to (const Target *t)
{
  int fd;

  if (t->path != NULL)
    {
      struct sockaddr_un sa = { .sun_family = AF_UNIX };

      fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      g_strlcpy (sa.sun_path, t->path, sizeof sa.sun_path);
      if (connect (fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        {
          close (fd);
          return -1;
        }
    }
  else
    {
      struct sockaddr_in sa = { .sin_family = AF_INET,
                                .sin_port = htons (t->port),
                                .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };

      fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (connect (fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        {
          close (fd);
          return -1;
        }
    }
  return fd;
}

/* Reads until EOF into @r; FALSE on a timeout. */
static gboolean
read_reply (int fd, int timeout_ms, Reply *r)
{
  GString *in = g_string_new (NULL);
  gint64 deadline = g_get_monotonic_time () + (gint64)timeout_ms * 1000;
  const char *split;

  for (;;)
    {
      struct pollfd p = { .fd = fd, .events = POLLIN };
      int left = (int)((deadline - g_get_monotonic_time ()) / 1000);
      char buf[16384];
      ssize_t n;

      if (left <= 0 || poll (&p, 1, left) == 0)
        {
          r->timed_out = TRUE;
          break;
        }
      n = recv (fd, buf, sizeof buf, 0);
      if (n <= 0)
        break;
      g_string_append_len (in, buf, n);
    }

  split = strstr (in->str, "\r\n\r\n");
  if (split != NULL && sscanf (in->str, "HTTP/1.%*d %d", &r->status) == 1)
    {
      r->head = g_strndup (in->str, split + 2 - in->str);
      r->body = g_strdup (split + 4);
    }
  g_string_free (in, TRUE);
  return !r->timed_out;
}

/* Sends @request as it is and reads the whole response. */
static void
http_raw (const Target *t, const char *request, gsize len, int timeout_ms,
          Reply *r)
{
  int fd = connect_to (t);
  gsize sent = 0;

  memset (r, 0, sizeof *r);
  if (fd < 0)
    return; /* status 0: nobody listens */
  while (sent < len)
    {
      ssize_t n = send (fd, request + sent, len - sent, MSG_NOSIGNAL);

      if (n < 0)
        break; /* refused mid-way: the response may still be there */
      sent += n;
    }
  read_reply (fd, timeout_ms, r);
  close (fd);
}

static void
http (const Target *t, const char *method, const char *path, Reply *r)
{
  g_autofree char *request = g_strdup_printf (
      "%s %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test-health\r\n\r\n",
      method, path);

  http_raw (t, request, strlen (request), HTTP_TIMEOUT_MS, r);
}

/* The value of header @name in @r, or NULL. */
static char *
header (const Reply *r, const char *name)
{
  g_auto (GStrv) lines
      = g_strsplit (r->head != NULL ? r->head : "", "\r\n", -1);

  for (char **l = lines; *l != NULL; l++)
    {
      const char *colon = strchr (*l, ':');

      if (colon != NULL && (gsize)(colon - *l) == strlen (name)
          && g_ascii_strncasecmp (*l, name, colon - *l) == 0)
        return g_strstrip (g_strdup (colon + 1));
    }
  return NULL;
}

static void
assert_generation_header (const Reply *r, guint generation)
{
  g_autofree char *value = header (r, "X-Agentbroker-Generation");
  g_autofree char *expected = g_strdup_printf ("%u", generation);

  g_assert_cmpstr (value, ==, expected);
}

static void
get_expect (const Target *t, const char *path, int status)
{
  Reply r;

  http (t, "GET", path, &r);
  if (r.status != status)
    g_printerr ("GET %s: %d %s\n", path, r.status, r.body ? r.body : "");
  g_assert_cmpint (r.status, ==, status);
  reply_clear (&r);
}

/* ---- a Prometheus text format (0.0.4) parser
 * --------------------------------- */

static gboolean
is_metric_name (const char *s, gsize len)
{
  if (len == 0 || !(g_ascii_isalpha (s[0]) || s[0] == '_' || s[0] == ':'))
    return FALSE;
  for (gsize i = 1; i < len; i++)
    if (!(g_ascii_isalnum (s[i]) || s[i] == '_' || s[i] == ':'))
      return FALSE;
  return TRUE;
}

static gboolean
is_label_name (const char *s, gsize len)
{
  return is_metric_name (s, len) && memchr (s, ':', len) == NULL;
}

static gboolean
parse_float (const char *s, double *value)
{
  char *end = NULL;

  if (g_str_equal (s, "+Inf") || g_str_equal (s, "-Inf")
      || g_str_equal (s, "NaN"))
    return TRUE;
  *value = g_ascii_strtod (s, &end);
  return end != s && *end == '\0';
}

/* The family a sample belongs to: histogram samples carry a suffix. */
static const char *
family_of (GHashTable *types, const char *name, char **stripped)
{
  static const char *const suffixes[] = { "_bucket", "_sum", "_count" };

  if (g_hash_table_contains (types, name))
    return g_hash_table_lookup (types, name);
  for (gsize i = 0; i < G_N_ELEMENTS (suffixes); i++)
    if (g_str_has_suffix (name, suffixes[i]))
      {
        *stripped = g_strndup (name, strlen (name) - strlen (suffixes[i]));
        return g_hash_table_lookup (types, *stripped);
      }
  return NULL;
}

/* Checks every line of @text and returns sample → value, keyed by the
 * sample as written ("name{labels}"). */
static GHashTable *
parse_metrics (const char *text)
{
  GHashTable *samples
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_autoptr (GHashTable) types
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);

  g_assert_true (g_str_has_suffix (text, "\n"));
  for (char **l = lines; *l != NULL; l++)
    {
      const char *line = *l;
      const char *p = line;
      const char *name_end;
      g_autofree char *name = NULL;
      g_autofree char *stripped = NULL;
      g_autofree char *key = NULL;
      const char *type;
      double value = 0;
      g_auto (GStrv) rest = NULL;

      if (line[0] == '\0')
        continue;
      if (line[0] == '#')
        {
          g_auto (GStrv) words = g_strsplit (line, " ", 4);

          if (g_strv_length (words) >= 3
              && (g_str_equal (words[1], "TYPE")
                  || g_str_equal (words[1], "HELP")))
            {
              g_assert_true (is_metric_name (words[2], strlen (words[2])));
              if (g_str_equal (words[1], "TYPE"))
                {
                  g_assert_nonnull (words[3]);
                  g_assert_true (g_strv_contains (
                      (const char *const[]){ "counter", "gauge", "histogram",
                                             "summary", "untyped", NULL },
                      words[3]));
                  g_assert_false (g_hash_table_contains (types, words[2]));
                  g_hash_table_insert (types, g_strdup (words[2]),
                                       g_strdup (words[3]));
                }
            }
          continue;
        }

      /* name{label="value",...} value [timestamp] */
      name_end = p + strcspn (p, "{ ");
      g_assert_true (is_metric_name (p, name_end - p));
      name = g_strndup (p, name_end - p);
      p = name_end;
      if (*p == '{')
        {
          p++;
          while (*p != '}')
            {
              const char *eq = strchr (p, '=');

              g_assert_nonnull (eq);
              g_assert_true (is_label_name (p, eq - p));
              g_assert_cmpint (eq[1], ==, '"');
              for (p = eq + 2; *p != '"'; p++)
                {
                  g_assert_cmpint (*p, !=, '\0');
                  if (*p == '\\')
                    {
                      p++;
                      g_assert_true (*p == '\\' || *p == '"' || *p == 'n');
                    }
                }
              p++;
              if (*p == ',')
                p++;
              else
                g_assert_cmpint (*p, ==, '}');
            }
          p++;
        }
      g_assert_cmpint (*p, ==, ' ');
      key = g_strndup (line, p - line);
      rest = g_strsplit (p + 1, " ", -1);
      g_assert_true (g_strv_length (rest) == 1 || g_strv_length (rest) == 2);
      g_assert_true (parse_float (rest[0], &value));
      type = family_of (types, name, &stripped);
      if (type == NULL)
        g_error ("sample %s has no TYPE line before it", key);
      if (stripped != NULL)
        g_assert_cmpstr (type, ==, "histogram");
      g_assert_false (g_hash_table_contains (samples, key));
      g_hash_table_insert (samples, g_steal_pointer (&key),
                           g_memdup2 (&value, sizeof value));
    }
  return samples;
}

static GHashTable *
fetch_metrics (const Target *t)
{
  Reply r;
  GHashTable *samples;
  g_autofree char *type = NULL;

  http (t, "GET", "/metrics", &r);
  g_assert_cmpint (r.status, ==, 200);
  type = header (&r, "Content-Type");
  g_assert_true (g_str_has_prefix (type, "text/plain; version=0.0.4"));
  samples = parse_metrics (r.body);
  reply_clear (&r);
  return samples;
}

static double
sample (GHashTable *samples, const char *key)
{
  double *value = g_hash_table_lookup (samples, key);

  if (value == NULL)
    g_error ("no sample %s in /metrics", key);
  return *value;
}

/* promtool (Debian's prometheus package) finds nothing to lint in
 * /metrics. */
static void
check_with_promtool (const Target *t)
{
  g_autofree char *promtool = g_find_program_in_path ("promtool");
  g_autoptr (GSubprocess) lint = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *out = NULL;
  Reply r;

  if (promtool == NULL)
    {
      if (g_getenv ("AGENTBROKER_REQUIRE_ALL_TESTS") != NULL)
        g_error ("promtool is missing (Debian package prometheus)");
      g_test_message ("promtool is missing: /metrics not linted");
      return;
    }
  http (t, "GET", "/metrics", &r);
  g_assert_cmpint (r.status, ==, 200);
  lint = g_subprocess_new (G_SUBPROCESS_FLAGS_STDIN_PIPE
                               | G_SUBPROCESS_FLAGS_STDOUT_PIPE
                               | G_SUBPROCESS_FLAGS_STDERR_MERGE,
                           &error, promtool, "check", "metrics", NULL);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (lint, r.body, NULL, &out, NULL, &error);
  g_assert_no_error (error);
  if (!g_subprocess_get_if_exited (lint)
      || g_subprocess_get_exit_status (lint) != 0 || out[0] != '\0')
    g_error ("promtool check metrics: %s", out);
  reply_clear (&r);
}

/* ---- fixture ----------------------------------------------------------------
 */

typedef struct
{
  AbDaemonFixture d;
  Target t;
  guint config_port; /* health.listen, when systemd passes a socket */
  char *sock_path;
} Fixture;

static guint
free_port (void)
{
  struct sockaddr_in sa
      = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t len = sizeof sa;
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  g_assert_cmpint (bind (fd, (struct sockaddr *)&sa, sizeof sa), ==, 0);
  g_assert_cmpint (getsockname (fd, (struct sockaddr *)&sa, &len), ==, 0);
  close (fd);
  return ntohs (sa.sin_port);
}

static char *
config_yaml (guint port, const char *extra)
{
  return g_strdup_printf ("health:\n"
                          "  listen: [\"127.0.0.1:%u\"]\n"
                          "%s",
                          port, extra != NULL ? extra : "");
}

/* The bus name shows before the daemon has heard it owns it: until then
 * it is still "starting". */
static void
wait_ready (const Target *t)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  Reply r;

  for (;;)
    {
      http (t, "GET", "/readyz", &r);
      if (r.status == 200 || g_get_monotonic_time () > deadline)
        break;
      g_assert_cmpstr (r.body, ==,
                       "{\"ready\":false,\"reason\":\"starting\"}\n");
      reply_clear (&r);
      g_usleep (10000);
    }
  g_assert_cmpint (r.status, ==, 200);
  reply_clear (&r);
}

static void
on_alarm (int sig)
{
  static const char msg[] = "test-health: a test took too long\n";

  if (write (STDERR_FILENO, msg, sizeof msg - 1) < 0)
    _exit (99);
  abort ();
}

static void
fixture_up (Fixture *fx, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *yaml = NULL;

  alarm (TEST_ALARM_SECONDS);
  fx->t.port = free_port ();
  yaml = config_yaml (fx->t.port, data);
  ab_daemon_fixture_setup (&fx->d, yaml);
  ab_daemon_fixture_start (&fx->d, &error);
  g_assert_no_error (error);
  wait_ready (&fx->t);
}

static void
fixture_down (Fixture *fx, gconstpointer data)
{
  ab_daemon_fixture_teardown (&fx->d);
  g_free (fx->sock_path);
  alarm (0);
}

static GVariant *
call (Fixture *fx, const char *method, GVariant *params, const char *type)
{
  g_autoptr (GError) error = NULL;
  GVariant *reply = ab_daemon_call (&fx->d, method, params, type, &error);

  g_assert_no_error (error);
  return reply;
}

static guint64
prompt (Fixture *fx, const char *thread, const char *text)
{
  g_autoptr (GVariant) reply = call (
      fx, "Prompt", g_variant_new ("(ssa{sv})", thread, text, NULL), "(t)");
  guint64 turn;

  g_variant_get (reply, "(t)", &turn);
  return turn;
}

/* Polls GetSession until @turn of @thread has ended; returns its reason. */
static char *
wait_turn_end (Fixture *fx, const char *thread, guint64 turn)
{
  gint64 deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;

  while (g_get_monotonic_time () < deadline)
    {
      g_autoptr (GVariant) reply
          = call (fx, "GetSession", g_variant_new ("(s)", thread), "(a{sv})");
      g_autoptr (GVariant) dict = g_variant_get_child_value (reply, 0);
      guint64 last = 0;
      const char *reason = NULL;

      g_variant_lookup (dict, "last_turn", "t", &last);
      if (last >= turn && g_variant_lookup (dict, "last_reason", "&s", &reason))
        return g_strdup (reason);
      g_usleep (20000);
    }
  g_error ("turn %" G_GUINT64_FORMAT " of %s did not end", turn, thread);
  return NULL;
}

/* ---- tests: the endpoints
 * ---------------------------------------------------- */

static void
test_endpoints (Fixture *fx, gconstpointer data)
{
  Reply r;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (GHashTable) samples = NULL;
  JsonObject *o, *sessions;

  http (&fx->t, "GET", "/livez", &r);
  g_assert_cmpint (r.status, ==, 200);
  g_assert_cmpstr (r.body, ==, "ok\n");
  assert_generation_header (&r, 1);
  reply_clear (&r);

  http (&fx->t, "GET", "/readyz", &r);
  g_assert_cmpint (r.status, ==, 200);
  g_assert_cmpstr (r.body, ==, "{\"ready\":true}\n");
  assert_generation_header (&r, 1);
  reply_clear (&r);

  http (&fx->t, "GET", "/healthz", &r);
  g_assert_cmpint (r.status, ==, 200);
  assert_generation_header (&r, 1);
  json_parser_load_from_data (parser, r.body, -1, &error);
  g_assert_no_error (error);
  o = json_node_get_object (json_parser_get_root (parser));
  g_assert_cmpstr (json_object_get_string_member (o, "state"), ==, "running");
  g_assert_true (json_object_get_boolean_member (o, "accepting"));
  g_assert_cmpint (json_object_get_int_member (o, "generation"), ==, 1);
  g_assert_cmpint (json_object_get_int_member (o, "uptime_seconds"), >=, 0);
  sessions = json_object_get_object_member (o, "sessions");
  g_assert_cmpint (json_object_get_int_member (sessions, "total"), ==, 0);
  g_assert_cmpint (json_object_get_int_member (sessions, "running"), ==, 0);
  g_assert_cmpint (json_object_get_int_member (sessions, "busy"), ==, 0);
  reply_clear (&r);

  samples = fetch_metrics (&fx->t);
  g_assert_cmpfloat (sample (samples, "agentbroker_up"), ==, 1);
  g_assert_cmpfloat (sample (samples, "agentbroker_generation"), ==, 1);
  g_assert_cmpfloat (sample (samples, "agentbroker_sessions{state=\"idle\"}"),
                     ==, 0);
  g_assert_cmpfloat (
      sample (samples, "agentbroker_turn_duration_seconds_bucket{le=\"+Inf\"}"),
      ==, 0);
  /* Every series is there from the start, each stop reason of each
   * profile at 0, spelt with underscores. */
  g_assert_cmpfloat (
      sample (samples,
              "agentbroker_turns_total{profile=\"demo\",reason=\"end_turn\"}"),
      ==, 0);
  g_assert_cmpfloat (sample (samples, "agentbroker_turns_total{profile="
                                      "\"demo\",reason=\"agent_exited\"}"),
                     ==, 0);
  g_assert_cmpfloat (sample (samples,
                             "agentbroker_build_info{version=\"" PACKAGE_VERSION
                             "\"}"),
                     ==, 1);
  g_assert_cmpfloat (sample (samples, "process_resident_memory_bytes"), >,
                     1024 * 1024);
  g_assert_cmpfloat (sample (samples, "process_open_fds"), >=, 3);
  g_assert_cmpfloat (sample (samples, "process_cpu_seconds_total"), >=, 0);
  check_with_promtool (&fx->t);

  /* HEAD: the same status and headers, no body. */
  http (&fx->t, "HEAD", "/readyz", &r);
  g_assert_cmpint (r.status, ==, 200);
  g_assert_cmpstr (r.body, ==, "");
  assert_generation_header (&r, 1);
  reply_clear (&r);

  /* Read-only: other methods are not allowed, and say what is. */
  for (const char *const *m
       = (const char *const[]){ "POST", "PUT", "DELETE", "OPTIONS", NULL };
       *m != NULL; m++)
    {
      g_autofree char *allow = NULL;

      http (&fx->t, *m, "/livez", &r);
      g_assert_cmpint (r.status, ==, 405);
      allow = header (&r, "Allow");
      g_assert_cmpstr (allow, ==, "GET, HEAD");
      assert_generation_header (&r, 1);
      reply_clear (&r);
    }

  /* Other paths, dot segments included, are not found. */
  for (const char *const *p
       = (const char *const[]){ "/", "/nope", "/livez/x", "/../livez",
                                "/x/../livez", "/%2e%2e/livez", "/./livez",
                                NULL };
       *p != NULL; p++)
    {
      http (&fx->t, "GET", *p, &r);
      if (r.status != 404)
        g_printerr ("GET %s: %d\n", *p, r.status);
      g_assert_cmpint (r.status, ==, 404);
      assert_generation_header (&r, 1);
      reply_clear (&r);
    }

  /* A query string does not change the resource. */
  get_expect (&fx->t, "/livez?verbose=1", 200);
}

static void
test_unix_socket (Fixture *fx, gconstpointer data)
{
  g_autofree char *yaml = NULL;
  g_autoptr (GError) error = NULL;
  Target unix_target = { 0 };
  Reply r;

  /* Restart the daemon listening on a unix socket and a port. */
  ab_daemon_fixture_stop (&fx->d, SIGTERM);
  fx->sock_path = g_build_filename (fx->d.tmpdir, "health.sock", NULL);
  yaml = g_strdup_printf ("health:\n  listen: [\"127.0.0.1:%u\", \"%s\"]\n",
                          fx->t.port, fx->sock_path);
  ab_daemon_fixture_write_config (&fx->d, yaml);
  ab_daemon_fixture_start (&fx->d, &error);
  g_assert_no_error (error);

  unix_target.path = fx->sock_path;
  wait_ready (&unix_target);
  http (&unix_target, "GET", "/readyz", &r);
  g_assert_cmpint (r.status, ==, 200);
  assert_generation_header (&r, 1);
  reply_clear (&r);
  /* HTTP/1.0 without Host: refused before libsoup sees it. */
  http_raw (&unix_target, "GET /livez HTTP/1.0\r\n\r\n", 23, HTTP_TIMEOUT_MS,
            &r);
  g_assert_cmpint (r.status, ==, 400);
  reply_clear (&r);
  get_expect (&fx->t, "/livez", 200);

  /* The socket file goes with the daemon. */
  ab_daemon_fixture_stop (&fx->d, SIGTERM);
  g_assert_false (g_file_test (fx->sock_path, G_FILE_TEST_EXISTS));
}

/* ---- tests: hostile requests
 * ------------------------------------------------- */

static void
test_oversized (Fixture *fx, gconstpointer data)
{
  g_autoptr (GString) req = g_string_new ("GET /livez HTTP/1.1\r\nHost: x\r\n");
  g_autofree char *under = NULL;
  Reply r;

  /* Just under the limit: answered. */
  under = g_strnfill (8192 - req->len - 13, 'a');
  g_string_append_printf (req, "X-Pad: %s\r\n\r\n", under);
  g_assert_cmpint (req->len, <=, 8192);
  http_raw (&fx->t, req->str, req->len, HTTP_TIMEOUT_MS, &r);
  g_assert_cmpint (r.status, ==, 200);
  reply_clear (&r);

  /* 9 KiB of headers, then 1 MiB: refused, and the daemon lives on. */
  for (gsize size = 9 * 1024; size <= 1024 * 1024; size *= 113)
    {
      g_autofree char *pad = g_strnfill (size, 'b');
      g_autofree char *big = g_strdup_printf (
          "GET /livez HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n", pad);

      http_raw (&fx->t, big, strlen (big), HTTP_TIMEOUT_MS, &r);
      g_assert_false (r.timed_out);
      /* The refusal is sent before the rest is read; a client that is
       * still writing may see the connection reset instead. */
      g_assert_true (r.status == 431 || r.status == 0);
      if (r.status == 431)
        assert_generation_header (&r, 1);
      reply_clear (&r);
    }

  /* A request with a body is refused without reading it. */
  http_raw (&fx->t,
            "GET /livez HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n",
            58, HTTP_TIMEOUT_MS, &r);
  g_assert_cmpint (r.status, ==, 413);
  reply_clear (&r);
  /* Garbage is a bad request. */
  http_raw (&fx->t, "\x01\x02garbage\r\n\r\n", 13, HTTP_TIMEOUT_MS, &r);
  g_assert_cmpint (r.status, ==, 400);
  reply_clear (&r);

  get_expect (&fx->t, "/livez", 200);
}

static void
test_slow_clients (Fixture *fx, gconstpointer data)
{
  int idle = connect_to (&fx->t);
  int slow = connect_to (&fx->t);
  const char *part = "GET /livez HTTP/1.1\r\nHost: x\r\n";
  gint64 start = g_get_monotonic_time ();
  Reply r = { 0 };
  gboolean slow_closed = FALSE;

  g_assert_cmpint (idle, >=, 0);
  g_assert_cmpint (slow, >=, 0);
  /* slowloris: one byte every 200 ms, never finishing the head. */
  for (guint i = 0; i < 60 && !slow_closed; i++)
    {
      if (send (slow, part + (i % strlen (part)), 1, MSG_NOSIGNAL) < 0)
        slow_closed = TRUE;
      else
        {
          struct pollfd p = { .fd = slow, .events = POLLIN };

          if (poll (&p, 1, 200) > 0)
            slow_closed = TRUE;
        }
      /* Meanwhile others are served. */
      if (i % 10 == 0)
        get_expect (&fx->t, "/livez", 200);
    }
  g_assert_true (slow_closed);
  /* Cut within the head timeout (5 s), well before the loop's 12 s. */
  g_assert_cmpint (g_get_monotonic_time () - start, <, 9 * G_USEC_PER_SEC);

  /* The idle one (nothing sent) was closed as well. */
  read_reply (idle, 1000, &r);
  g_assert_false (r.timed_out);
  reply_clear (&r);
  close (idle);
  close (slow);
}

/* 600 connections from one client that never finish a request, half of
 * them silent, half with part of a head: the guard pushes out the oldest
 * unfinished ones, so every probe after them is still answered. */
static void
test_connection_flood (Fixture *fx, gconstpointer data)
{
  const char *part = "GET /livez HTTP/1.1\r\n";
  int fds[600];
  guint closed = 0;

  for (guint i = 0; i < G_N_ELEMENTS (fds); i++)
    {
      fds[i] = connect_to (&fx->t);
      g_assert_cmpint (fds[i], >=, 0);
      if (i % 2 == 1)
        g_assert_cmpint (send (fds[i], part, strlen (part), MSG_NOSIGNAL), ==,
                         (ssize_t)strlen (part));
    }
  for (guint i = 0; i < 20; i++)
    get_expect (&fx->t, "/livez", 200);

  /* What made room: the flood's own oldest connections, closed by the
   * daemon, all but one peer's share of unfinished requests. */
  for (guint i = 0; i < G_N_ELEMENTS (fds); i++)
    {
      struct pollfd p = { .fd = fds[i], .events = POLLIN };
      char byte;

      if (poll (&p, 1, 0) > 0 && recv (fds[i], &byte, 1, MSG_DONTWAIT) <= 0)
        closed++;
      close (fds[i]);
    }
  g_assert_cmpuint (closed, >=, G_N_ELEMENTS (fds) - 64);
}

/* ---- tests: readiness and counters through the lifecycle
 * --------------------- */

static void
expect_ready (Fixture *fx, int status, const char *body, guint generation)
{
  Reply r;

  http (&fx->t, "GET", "/readyz", &r);
  if (r.status != status)
    g_printerr ("/readyz: %d %s\n", r.status, r.body ? r.body : "");
  g_assert_cmpint (r.status, ==, status);
  g_assert_cmpstr (r.body, ==, body);
  assert_generation_header (&r, generation);
  reply_clear (&r);
  get_expect (&fx->t, "/livez", 200);
}

/* expect_ready() once /readyz has answered @status, within 10 s: for
 * states the daemon reaches just after a signal the test waited for (a
 * session turns idle after its TurnEnded is sent). */
static void
expect_ready_soon (Fixture *fx, int status, const char *body, guint generation)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  Reply r;

  for (;;)
    {
      http (&fx->t, "GET", "/readyz", &r);
      if (r.status == status || g_get_monotonic_time () > deadline)
        break;
      reply_clear (&r);
      g_main_context_iteration (NULL, FALSE);
      g_usleep (10000);
    }
  reply_clear (&r);
  expect_ready (fx, status, body, generation);
}

static void
on_drained (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = g_dbus_connection_call_finish (
      G_DBUS_CONNECTION (source), result, &error);

  g_assert_no_error (error);
  *(gboolean *)user_data = TRUE;
}

static void
assert_moved (GHashTable *before, GHashTable *after, const char *key, double by)
{
  double was = sample (before, key), now = sample (after, key);

  if (now - was != by)
    g_printerr ("%s: %g → %g, expected +%g\n", key, was, now, by);
  g_assert_cmpfloat (now - was, ==, by);
}

static void
test_lifecycle (Fixture *fx, gconstpointer data)
{
  g_autoptr (GHashTable) before = fetch_metrics (&fx->t);
  g_autoptr (GHashTable) after = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autofree char *reason = NULL;
  g_autofree char *config = NULL;
  gboolean drained = FALSE;
  gint64 deadline, started, echo_us;
  guint64 turn;
  Reply r;

  expect_ready (fx, 200, "{\"ready\":true}\n", 1);

  /* A prompt that ends normally; the client's view of its length bounds
   * the daemon's, which starts after the call and ends before the signal. */
  started = g_get_monotonic_time ();
  turn = prompt (fx, "cli:health/a", "echo hello");
  reason = wait_turn_end (fx, "cli:health/a", turn);
  echo_us = g_get_monotonic_time () - started;
  g_assert_cmpstr (reason, ==, "end_turn");
  g_clear_pointer (&reason, g_free);

  /* A turn in flight holds the drain in "draining": "hang" ends only when
   * cancelled, so the drain cannot finish before the test looks. */
  turn = prompt (fx, "cli:health/a", "hang");
  started = g_get_monotonic_time ();
  g_dbus_connection_call (fx->d.connection, "org.agentbroker.Broker1",
                          "/org/agentbroker/Broker1", "org.agentbroker.Broker1",
                          "Drain", g_variant_new ("(u)", 60),
                          G_VARIANT_TYPE ("(uu)"), G_DBUS_CALL_FLAGS_NONE,
                          90000, NULL, on_drained, &drained);
  deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  for (;;)
    {
      http (&fx->t, "GET", "/readyz", &r);
      if (r.status == 503 || g_get_monotonic_time () > deadline)
        break;
      reply_clear (&r);
      g_main_context_iteration (NULL, FALSE);
      g_usleep (10000);
    }
  g_assert_cmpint (r.status, ==, 503);
  g_assert_cmpstr (r.body, ==, "{\"ready\":false,\"reason\":\"draining\"}\n");
  reply_clear (&r);
  get_expect (&fx->t, "/livez", 200);

  /* Refused while draining. */
  reply = ab_daemon_call (
      &fx->d, "Prompt",
      g_variant_new ("(ssa{sv})", "cli:health/b", "echo no", NULL), "(t)",
      &error);
  g_assert_null (reply);
  g_assert_nonnull (error);
  g_assert_true (strstr (error->message, "draining") != NULL);
  g_clear_error (&error);

  /* Still draining while the turn runs; it runs at least 1.5 s. */
  while (g_get_monotonic_time () - started < 3 * G_USEC_PER_SEC / 2)
    g_usleep (100000);
  g_assert_false (drained);
  expect_ready (fx, 503, "{\"ready\":false,\"reason\":\"draining\"}\n", 1);
  reply = call (fx, "Cancel", g_variant_new ("(s)", "cli:health/a"), NULL);

  AB_WAIT_FOR (drained, AB_CALL_TIMEOUT_MS);
  reason = wait_turn_end (fx, "cli:health/a", turn);
  g_assert_cmpstr (reason, ==, "cancelled");
  expect_ready (fx, 503, "{\"ready\":false,\"reason\":\"drained\"}\n", 1);

  g_clear_pointer (&reply, g_variant_unref);
  reply = call (fx, "Resume", NULL, NULL);
  expect_ready (fx, 200, "{\"ready\":true}\n", 1);

  /* A reload refuses nothing: ready before and after, a new generation. */
  g_clear_pointer (&reply, g_variant_unref);
  reply = call (fx, "Reload", NULL, NULL);
  expect_ready (fx, 200, "{\"ready\":true}\n", 2);

  /* A reload that fails changes nothing but its counter. */
  g_assert_true (g_file_get_contents (fx->d.config_path, &config, NULL, NULL));
  ab_daemon_fixture_write_config (&fx->d, "pool: {max_sessions: nope}\n");
  g_clear_pointer (&reply, g_variant_unref);
  reply = ab_daemon_call (&fx->d, "Reload", NULL, NULL, &error);
  g_assert_nonnull (error);
  g_clear_error (&error);
  ab_daemon_fixture_write_config (&fx->d, config);
  expect_ready (fx, 200, "{\"ready\":true}\n", 2);

  after = fetch_metrics (&fx->t);
  assert_moved (before, after,
                "agentbroker_turns_total{profile=\"demo\",reason=\"end_turn\"}",
                1);
  /* No turn was cancelled before this one: the series was there at 0. */
  g_assert_cmpfloat (
      sample (before,
              "agentbroker_turns_total{profile=\"demo\",reason=\"cancelled\"}"),
      ==, 0);
  g_assert_cmpfloat (
      sample (after,
              "agentbroker_turns_total{profile=\"demo\",reason=\"cancelled\"}"),
      ==, 1);
  assert_moved (before, after,
                "agentbroker_turn_duration_seconds_bucket{le=\"+Inf\"}", 2);
  assert_moved (before, after, "agentbroker_turn_duration_seconds_count", 2);
  /* The cancelled turn ran over 1.5 s: never in the 1 s bucket.  The echo
   * is in it whenever the client saw it take under a second. */
  if (echo_us < G_USEC_PER_SEC)
    assert_moved (before, after,
                  "agentbroker_turn_duration_seconds_bucket{le=\"1\"}", 1);
  else
    g_assert_cmpfloat (
        sample (after, "agentbroker_turn_duration_seconds_bucket{le=\"1\"}")
            - sample (before,
                      "agentbroker_turn_duration_seconds_bucket{le=\"1\"}"),
        <=, 1);
  g_assert_cmpfloat (sample (after, "agentbroker_turn_duration_seconds_sum"),
                     >=, 1.5);
  assert_moved (before, after,
                "agentbroker_prompts_refused_total{reason=\"draining\"}", 1);
  assert_moved (before, after, "agentbroker_drains_total", 1);
  assert_moved (before, after, "agentbroker_reloads_total", 1);
  assert_moved (before, after, "agentbroker_reload_failures_total", 1);
  g_assert_cmpfloat (sample (after, "agentbroker_generation"), ==, 2);
  g_assert_cmpfloat (sample (after, "agentbroker_sessions{state=\"idle\"}"), ==,
                     1);
}

#define POOL_CONFIG                                                            \
  "pool: {max_sessions: 1}\n"                                                  \
  "default_agent: demo\n"                                                      \
  "agents:\n"                                                                  \
  "  demo: {command: [agentbroker-demo-agent]}\n"                              \
  "  broken: {command: [sh, -c, \"exit 3\"]}\n"

static void
test_pool_exhausted (Fixture *fx, gconstpointer data)
{
  g_autoptr (GHashTable) before = fetch_metrics (&fx->t);
  g_autoptr (GHashTable) after = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autofree char *reason = NULL;
  guint64 turn;

  /* The only slot is busy until its turn is cancelled: no session can
   * start. */
  turn = prompt (fx, "cli:health/a", "hang");
  expect_ready (fx, 503, "{\"ready\":false,\"reason\":\"pool_exhausted\"}\n",
                1);
  reply = ab_daemon_call (
      &fx->d, "Prompt",
      g_variant_new ("(ssa{sv})", "cli:health/b", "echo no", NULL), "(t)",
      &error);
  g_assert_null (reply);
  g_clear_error (&error);

  /* Idle now: a new session would suspend it, so ready again. */
  reply = call (fx, "Cancel", g_variant_new ("(s)", "cli:health/a"), NULL);
  g_clear_pointer (&reply, g_variant_unref);
  reason = wait_turn_end (fx, "cli:health/a", turn);
  g_assert_cmpstr (reason, ==, "cancelled");
  expect_ready_soon (fx, 200, "{\"ready\":true}\n", 1);

  /* An agent that dies in the handshake is a spawn failure. */
  reply = ab_daemon_call (
      &fx->d, "Prompt",
      g_variant_new_parsed (
          "('cli:health/broken', 'hi', {'agent': <'broken'>})"),
      "(t)", &error);
  g_assert_null (reply);
  g_assert_nonnull (error);
  g_clear_error (&error);

  after = fetch_metrics (&fx->t);
  assert_moved (before, after,
                "agentbroker_prompts_refused_total{reason=\"pool_exhausted\"}",
                1);
  assert_moved (before, after,
                "agentbroker_prompts_refused_total{reason=\"agent_failed\"}",
                1);
  assert_moved (before, after, "agentbroker_spawn_failures_total", 1);
  g_assert_cmpfloat (sample (after, "agentbroker_sessions{state=\"failed\"}"),
                     ==, 1);
}

/* ---- tests: a stopped main loop, load
 * ----------------------------------------- */

static void
test_sigstop (Fixture *fx, gconstpointer data)
{
  pid_t pid = atoi (g_subprocess_get_identifier (fx->d.daemon));
  const char *req = "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n";
  Reply r;

  get_expect (&fx->t, "/livez", 200);
  g_assert_cmpint (kill (pid, SIGSTOP), ==, 0);
  /* The kernel still accepts the connection; nobody answers. */
  http_raw (&fx->t, req, strlen (req), 1500, &r);
  g_assert_true (r.timed_out);
  g_assert_cmpint (r.status, ==, 0);
  reply_clear (&r);
  g_assert_cmpint (kill (pid, SIGCONT), ==, 0);
  get_expect (&fx->t, "/livez", 200);
}

#define SEQUENTIAL 10000
#define CONCURRENT 200

typedef struct
{
  Target t;
  guint ok;
  gboolean done;
} Load;

static gpointer
load_thread (gpointer data)
{
  Load *load = data;
  const char *paths[] = { "/livez", "/readyz", "/healthz", "/metrics" };
  int fds[CONCURRENT];

  for (guint i = 0; i < SEQUENTIAL; i++)
    {
      Reply r;

      http (&load->t, "GET", paths[i % G_N_ELEMENTS (paths)], &r);
      load->ok += r.status == 200;
      reply_clear (&r);
    }

  /* All connected and sent before any is read. */
  for (guint i = 0; i < CONCURRENT; i++)
    {
      const char *req = "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n";

      fds[i] = connect_to (&load->t);
      g_assert_cmpint (fds[i], >=, 0);
      g_assert_cmpint (send (fds[i], req, strlen (req), MSG_NOSIGNAL), ==,
                       (gssize)strlen (req));
    }
  for (guint i = 0; i < CONCURRENT; i++)
    {
      Reply r = { 0 };

      read_reply (fds[i], HTTP_TIMEOUT_MS, &r);
      load->ok += r.status == 200;
      reply_clear (&r);
      close (fds[i]);
    }
  g_atomic_int_set (&load->done, TRUE);
  return NULL;
}

static void
test_load (Fixture *fx, gconstpointer data)
{
  Load load = { .t = fx->t };
  g_autoptr (GThread) thread = NULL;
  guint turns = 0;

  thread = g_thread_new ("load", load_thread, &load);
  /* Meanwhile a session streams, turn after turn. */
  while (!g_atomic_int_get (&load.done))
    {
      guint64 turn = prompt (fx, "cli:health/stream", "stream 400 64");
      g_autofree char *reason = wait_turn_end (fx, "cli:health/stream", turn);

      g_assert_cmpstr (reason, ==, "end_turn");
      turns++;
      /* Drop the streamed signals this connection received. */
      while (g_main_context_iteration (NULL, FALSE))
        ;
    }
  g_thread_join (g_steal_pointer (&thread));
  g_assert_cmpuint (load.ok, ==, SEQUENTIAL + CONCURRENT);
  g_assert_cmpuint (turns, >=, 1);
  g_test_message ("%u streamed turns during the load", turns);
  get_expect (&fx->t, "/livez", 200);
}

/* ---- tests: listening
 * ------------------------------------------------------------ */

static void
test_reload_listen (Fixture *fx, gconstpointer data)
{
  guint new_port = free_port ();
  g_autofree char *yaml = config_yaml (new_port, NULL);
  g_autoptr (GVariant) reply = NULL;
  Target old_target = fx->t;

  ab_daemon_fixture_write_config (&fx->d, yaml);
  reply = call (fx, "Reload", NULL, NULL);
  fx->t.port = new_port;
  get_expect (&fx->t, "/livez", 200);
  g_assert_cmpint (connect_to (&old_target), ==, -1);

  /* health.listen emptied: the shim stops. */
  ab_daemon_fixture_write_config (&fx->d, "health: {listen: []}\n");
  g_clear_pointer (&reply, g_variant_unref);
  reply = call (fx, "Reload", NULL, NULL);
  g_assert_cmpint (connect_to (&fx->t), ==, -1);
}

static void
fixture_up_stopped (Fixture *fx, gconstpointer data)
{
  g_autofree char *yaml = NULL;

  alarm (TEST_ALARM_SECONDS);
  fx->t.port = free_port ();
  /* health.listen names another port: a socket from systemd wins. */
  fx->config_port = free_port ();
  yaml = config_yaml (fx->config_port, NULL);
  ab_daemon_fixture_setup (&fx->d, yaml);
}

static void
test_socket_activation (Fixture *fx, gconstpointer data)
{
  g_autofree char *activate
      = g_find_program_in_path ("systemd-socket-activate");
  g_autofree char *daemon = ab_test_program ("agentbrokerd");
  g_autofree char *listen = g_strdup_printf ("127.0.0.1:%u", fx->t.port);
  g_autofree char *log_path
      = g_build_filename (fx->d.tmpdir, "daemon.log", NULL);
  g_autoptr (GSubprocessLauncher) launcher = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) reply = NULL;
  g_autofree char *yaml = NULL;
  Target config_target = { 0 };
  gint64 deadline;
  Reply r;

  if (activate == NULL)
    {
      g_test_skip ("systemd-socket-activate is not installed");
      return;
    }
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_subprocess_launcher_setenv (launcher, "STATE_DIRECTORY", fx->d.state_dir,
                                TRUE);
  g_subprocess_launcher_setenv (launcher, "G_MESSAGES_DEBUG", "all", TRUE);
  g_subprocess_launcher_unsetenv (launcher, "NOTIFY_SOCKET");
  g_subprocess_launcher_set_stderr_file_path (launcher, log_path);
  g_subprocess_launcher_set_stdout_file_path (launcher, "/dev/null");
  fx->d.daemon = g_subprocess_launcher_spawn (
      launcher, &error, activate, "-l", listen, "--fdname=health",
      /* it passes on only the environment it is told to */
      "-E", "DBUS_SESSION_BUS_ADDRESS", "-E", "PATH", "-E", "STATE_DIRECTORY",
      "-E", "G_MESSAGES_DEBUG", daemon, "--session", "--config",
      fx->d.config_path, NULL);
  g_assert_no_error (error);

  /* The first connection starts the daemon, and is answered by it. */
  deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  do
    {
      g_usleep (20000);
      http (&fx->t, "GET", "/livez", &r);
      if (r.status == 200)
        break;
      reply_clear (&r);
    }
  while (g_get_monotonic_time () < deadline);
  g_assert_cmpint (r.status, ==, 200);
  reply_clear (&r);

  /* Ready once the bus name is owned. */
  wait_ready (&fx->t);
  config_target.port = fx->config_port;
  g_assert_cmpint (connect_to (&config_target), ==, -1);
  get_expect (&fx->t, "/healthz", 200);

  /* Through a reload, systemd's socket stays. */
  yaml = config_yaml (free_port (), NULL);
  ab_daemon_fixture_write_config (&fx->d, yaml);
  reply = call (fx, "Reload", NULL, NULL);
  http (&fx->t, "GET", "/readyz", &r);
  g_assert_cmpint (r.status, ==, 200);
  assert_generation_header (&r, 2);
  reply_clear (&r);

  g_assert_cmpint (ab_daemon_fixture_stop (&fx->d, SIGTERM), ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  signal (SIGALRM, on_alarm);
  ab_test_bus_up ();

#define ADD(name, data, func)                                                  \
  g_test_add ("/health/" name, Fixture, data, fixture_up, func, fixture_down)
  ADD ("endpoints", NULL, test_endpoints);
  ADD ("unix-socket", NULL, test_unix_socket);
  ADD ("oversized", NULL, test_oversized);
  ADD ("slow-clients", NULL, test_slow_clients);
  ADD ("connection-flood", NULL, test_connection_flood);
  ADD ("lifecycle", NULL, test_lifecycle);
  ADD ("pool-exhausted", POOL_CONFIG, test_pool_exhausted);
  ADD ("sigstop", NULL, test_sigstop);
  ADD ("load", NULL, test_load);
  ADD ("reload-listen", NULL, test_reload_listen);
#undef ADD
  g_test_add ("/health/socket-activation", Fixture, NULL, fixture_up_stopped,
              test_socket_activation, fixture_down);

  return ab_test_run ();
}
