/* agentbroker — the HTTP health shim
 *
 * A thin, read-only adapter on the broker (DESIGN.md §7): GET or HEAD
 * /livez, /readyz, /healthz and /metrics, served by libsoup on the
 * daemon's own main loop. It listens on the sockets systemd passes under
 * the name "health" (agentbroker-health.socket), else on health.listen,
 * else nowhere.
 *
 * libsoup reads request heads of up to 64 KiB and has no timeout of its
 * own for a server connection, so connections are accepted here and
 * guarded before libsoup sees them: the whole request head must arrive
 * within HEAD_TIMEOUT_SEC and fit in AB_HEALTH_MAX_HEAD_BYTES; it is
 * peeked at (MSG_PEEK), not consumed, and parsed with libsoup's own
 * parser; requests with a body, without Host or with a dot segment in
 * the path are refused; every response closes its connection, so each
 * connection carries exactly one guarded request; and no connection lives
 * longer than CONNECTION_TIMEOUT_SEC.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gunixsocketaddress.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <systemd/sd-daemon.h>

#include "health.h"
#include "metrics.h"

#define HEAD_TIMEOUT_SEC 5
#define CONNECTION_TIMEOUT_SEC 10
/* How long a refused client may go on sending before it is cut off; it
 * is read and discarded meanwhile, so it sees the refusal, not a reset. */
#define LINGER_TIMEOUT_SEC 1
/* A head that came in pieces is looked at again after this long. */
#define REPEEK_MSEC 50
#define MAX_CONNECTIONS 512
/* RFC 6585; libsoup has no name for it. */
#define STATUS_HEADERS_TOO_LARGE 431

typedef struct _Connection Connection;

struct _AbHealth
{
  GObject parent_instance;

  AbBroker *broker;
  AbMetrics *metrics;
  SoupServer *server;
  GSocketService *service; /* NULL while not listening */
  GPtrArray *passed;       /* GSocket *, from systemd; NULL if none */
  char **listen;           /* the health.listen in force, when not passed */
  GPtrArray *unix_paths;   /* char *, socket files to remove */
  GHashTable *connections; /* Connection * → itself */
};

G_DEFINE_TYPE (AbHealth, ab_health, G_TYPE_OBJECT)

/* ---- responses --------------------------------------------------------- */

static const char *
status_phrase (guint status)
{
  if (status == STATUS_HEADERS_TOO_LARGE)
    return "Request Header Fields Too Large";
  return soup_status_get_phrase (status);
}

static void
set_response (SoupServerMessage *msg, guint status, const char *content_type,
              char *body)
{
  soup_server_message_set_status (msg, status, NULL);
  soup_server_message_set_response (msg, content_type, SOUP_MEMORY_TAKE, body,
                                    strlen (body));
}

static void
set_json_error (SoupServerMessage *msg, guint status)
{
  set_response (
      msg, status, "application/json",
      g_strdup_printf ("{\"error\":\"%s\"}\n", status_phrase (status)));
}

/* Why the broker cannot take a new session now, or NULL if it can. */
static const char *
not_ready_reason (AbHealth *self)
{
  AbPool *pool = ab_broker_get_pool (self->broker);
  g_autoptr (GPtrArray) all = NULL;

  if (!ab_broker_get_accepting (self->broker))
    return ab_broker_state_to_string (ab_broker_get_state (self->broker));
  if (ab_pool_get_running_count (pool)
      < ab_broker_get_config (self->broker)->max_sessions)
    return NULL;
  /* Full: a new session would suspend an idle one, if there is one. */
  all = ab_pool_list (pool);
  for (guint i = 0; i < all->len; i++)
    {
      AbSession *s = g_ptr_array_index (all, i);

      if (ab_session_get_state (s) == AB_SESSION_STATE_IDLE
          && ab_session_get_queued (s) == 0)
        return NULL;
    }
  return "pool_exhausted";
}

static void
serve_readyz (AbHealth *self, SoupServerMessage *msg)
{
  const char *reason = not_ready_reason (self);

  if (reason == NULL)
    set_response (msg, SOUP_STATUS_OK, "application/json",
                  g_strdup ("{\"ready\":true}\n"));
  else
    set_response (
        msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "application/json",
        g_strdup_printf ("{\"ready\":false,\"reason\":\"%s\"}\n", reason));
}

static void
serve_healthz (AbHealth *self, SoupServerMessage *msg)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;
  AbPool *pool = ab_broker_get_pool (self->broker);
  guint counts[AB_METRICS_N_SESSION_STATES];
  gint64 uptime
      = (g_get_real_time () - (gint64)ab_broker_get_started_at (self->broker))
        / G_USEC_PER_SEC;
  const char *reason = not_ready_reason (self);

  ab_metrics_count_sessions (pool, counts);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "state");
  json_builder_add_string_value (
      b, ab_broker_state_to_string (ab_broker_get_state (self->broker)));
  json_builder_set_member_name (b, "accepting");
  json_builder_add_boolean_value (b, ab_broker_get_accepting (self->broker));
  json_builder_set_member_name (b, "ready");
  json_builder_add_boolean_value (b, reason == NULL);
  json_builder_set_member_name (b, "generation");
  json_builder_add_int_value (b, ab_broker_get_generation (self->broker));
  json_builder_set_member_name (b, "version");
  json_builder_add_string_value (b, PACKAGE_VERSION);
  json_builder_set_member_name (b, "uptime_seconds");
  json_builder_add_int_value (b, MAX (uptime, 0));
  json_builder_set_member_name (b, "sessions");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "total");
  json_builder_add_int_value (b, ab_pool_get_session_count (pool));
  json_builder_set_member_name (b, "running");
  json_builder_add_int_value (b, ab_pool_get_running_count (pool));
  json_builder_set_member_name (b, "max");
  json_builder_add_int_value (
      b, ab_broker_get_config (self->broker)->max_sessions);
  for (guint i = 0; i < AB_METRICS_N_SESSION_STATES; i++)
    {
      json_builder_set_member_name (b, ab_session_state_to_string (i));
      json_builder_add_int_value (b, counts[i]);
    }
  json_builder_end_object (b);
  json_builder_end_object (b);

  root = json_builder_get_root (b);
  set_response (msg, SOUP_STATUS_OK, "application/json",
                g_strconcat (json_to_string (root, FALSE), "\n", NULL));
}

static void
on_request (SoupServer *server, SoupServerMessage *msg, const char *path,
            GHashTable *query, gpointer user_data)
{
  AbHealth *self = user_data;
  SoupMessageHeaders *headers = soup_server_message_get_response_headers (msg);
  const char *method = soup_server_message_get_method (msg);
  g_autofree char *generation
      = g_strdup_printf ("%u", ab_broker_get_generation (self->broker));

  soup_message_headers_replace (headers, "X-Agentbroker-Generation",
                                generation);
  soup_message_headers_replace (headers, "Cache-Control", "no-store");
  soup_message_headers_replace (headers, "Connection", "close");

  if (!g_str_equal (path, "/livez") && !g_str_equal (path, "/readyz")
      && !g_str_equal (path, "/healthz") && !g_str_equal (path, "/metrics"))
    set_json_error (msg, SOUP_STATUS_NOT_FOUND);
  else if (method != SOUP_METHOD_GET && method != SOUP_METHOD_HEAD)
    {
      soup_message_headers_replace (headers, "Allow", "GET, HEAD");
      set_json_error (msg, SOUP_STATUS_METHOD_NOT_ALLOWED);
    }
  else if (g_str_equal (path, "/livez"))
    /* Reaching this line is the whole check: the main loop answers. */
    set_response (msg, SOUP_STATUS_OK, "text/plain; charset=utf-8",
                  g_strdup ("ok\n"));
  else if (g_str_equal (path, "/readyz"))
    serve_readyz (self, msg);
  else if (g_str_equal (path, "/healthz"))
    serve_healthz (self, msg);
  else
    set_response (msg, SOUP_STATUS_OK,
                  "text/plain; version=0.0.4; charset=utf-8",
                  ab_metrics_render (self->metrics));
}

/* ---- guarding connections ------------------------------------------------ */

struct _Connection
{
  AbHealth *health;
  GSocketConnection *stream; /* owned until handed to libsoup */
  GObject *handed;           /* the stream libsoup owns; a weak pointer */
  GSocket *socket;           /* the stream's */
  guint watch;               /* readable, or the next peek */
  guint deadline;            /* head, lingering or whole connection */
  gboolean handed_over;
  gboolean lingering;
  char head[AB_HEALTH_MAX_HEAD_BYTES + 1];
};

static void
connection_free (Connection *c)
{
  g_clear_handle_id (&c->watch, g_source_remove);
  g_clear_handle_id (&c->deadline, g_source_remove);
  if (c->stream != NULL)
    {
      g_io_stream_close (G_IO_STREAM (c->stream), NULL, NULL);
      g_clear_object (&c->stream);
    }
  g_free (c);
}

static void
connection_drop (Connection *c)
{
  g_hash_table_remove (c->health->connections, c);
}

/* libsoup let go of a connection it was given. */
static void
on_stream_finalized (gpointer user_data, GObject *where_the_object_was)
{
  Connection *c = user_data;

  c->handed = NULL;
  c->socket = NULL;
  connection_drop (c);
}

/* Frees a connection's bookkeeping, when the table lets go of it. */
static void
connection_forget (gpointer data)
{
  Connection *c = data;

  if (c->handed != NULL)
    {
      /* Still libsoup's: cut it, and hear no more about it. */
      g_socket_shutdown (c->socket, TRUE, TRUE, NULL);
      g_object_weak_unref (c->handed, on_stream_finalized, c);
    }
  connection_free (c);
}

static gboolean
on_deadline (gpointer user_data)
{
  Connection *c = user_data;

  c->deadline = 0;
  if (!c->handed_over)
    {
      if (!c->lingering)
        g_debug ("health: a client sent no complete request in %d s; "
                 "closing",
                 HEAD_TIMEOUT_SEC);
      connection_drop (c);
    }
  else
    {
      /* libsoup still holds it: make it see the end of the stream. */
      g_debug ("health: a connection outlived %d s; closing",
               CONNECTION_TIMEOUT_SEC);
      g_socket_shutdown (c->socket, TRUE, TRUE, NULL);
    }
  return G_SOURCE_REMOVE;
}

static gboolean
on_linger_readable (GSocket *socket, GIOCondition condition, gpointer user_data)
{
  Connection *c = user_data;
  char scratch[16384];
  ssize_t n
      = recv (g_socket_get_fd (socket), scratch, sizeof scratch, MSG_DONTWAIT);

  if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
    return G_SOURCE_CONTINUE;
  c->watch = 0;
  connection_drop (c);
  return G_SOURCE_REMOVE;
}

static guint
add_socket_watch (GSocket *socket, GSocketSourceFunc func, gpointer data)
{
  g_autoptr (GSource) source
      = g_socket_create_source (socket, G_IO_IN | G_IO_HUP | G_IO_ERR, NULL);

  g_source_set_callback (source, (GSourceFunc)(GCallback)func, data, NULL);
  return g_source_attach (source, NULL);
}

/* Answers without libsoup, which never saw the request, then reads and
 * discards what the client still sends until it closes or
 * LINGER_TIMEOUT_SEC passes. */
static void
refuse (Connection *c, guint status, gboolean head_only)
{
  g_autofree char *body
      = g_strdup_printf ("{\"error\":\"%s\"}\n", status_phrase (status));
  g_autofree char *response = g_strdup_printf (
      "HTTP/1.1 %u %s\r\n"
      "Content-Type: application/json\r\n"
      "Content-Length: %zu\r\n"
      "Connection: close\r\n"
      "Cache-Control: no-store\r\n"
      "X-Agentbroker-Generation: %u\r\n"
      "\r\n%s",
      status, status_phrase (status), strlen (body),
      ab_broker_get_generation (c->health->broker), head_only ? "" : body);
  int fd = g_socket_get_fd (c->socket);

  g_debug ("health: refusing a request: %u %s", status, status_phrase (status));
  /* A few hundred bytes into an empty send buffer: one call. */
  if (send (fd, response, strlen (response), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
    g_debug ("health: cannot send the refusal: %s", g_strerror (errno));
  shutdown (fd, SHUT_WR);

  c->lingering = TRUE;
  g_clear_handle_id (&c->watch, g_source_remove);
  g_clear_handle_id (&c->deadline, g_source_remove);
  c->watch = add_socket_watch (c->socket, on_linger_readable, c);
  c->deadline = g_timeout_add_seconds (LINGER_TIMEOUT_SEC, on_deadline, c);
}

/* "/", "/a/b": no "." or ".." segment, also not percent-encoded. */
static gboolean
path_is_plain (const char *path)
{
  g_auto (GStrv) segments = NULL;

  if (path[0] != '/')
    return FALSE;
  segments = g_strsplit (path, "/", -1);
  for (char **s = segments; *s != NULL; s++)
    {
      g_autofree char *query_cut = g_strndup (*s, strcspn (*s, "?#"));
      g_autofree char *decoded = g_uri_unescape_string (query_cut, NULL);

      if (decoded == NULL || g_str_equal (decoded, ".")
          || g_str_equal (decoded, ".."))
        return FALSE;
    }
  return TRUE;
}

static void
hand_over (Connection *c)
{
  AbHealth *self = c->health;
  g_autoptr (GSocketAddress) local = NULL;
  g_autoptr (GSocketAddress) remote = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocketConnection) stream = g_steal_pointer (&c->stream);

  local = g_socket_connection_get_local_address (stream, NULL);
  remote = g_socket_connection_get_remote_address (stream, NULL);
  /* A unix socket's peer may be unnamed; libsoup needs some address. */
  if (local == NULL)
    local = g_unix_socket_address_new_with_type (
        "", 0, G_UNIX_SOCKET_ADDRESS_ANONYMOUS);
  if (remote == NULL)
    remote = g_unix_socket_address_new_with_type (
        "", 0, G_UNIX_SOCKET_ADDRESS_ANONYMOUS);

  c->handed_over = TRUE;
  c->handed = G_OBJECT (stream);
  g_object_weak_ref (c->handed, on_stream_finalized, c);
  g_clear_handle_id (&c->deadline, g_source_remove);
  c->deadline = g_timeout_add_seconds (CONNECTION_TIMEOUT_SEC, on_deadline, c);
  /* From here on @c may be gone: libsoup may drop the stream at once. */
  if (!soup_server_accept_iostream (self->server, G_IO_STREAM (stream), local,
                                    remote, &error))
    g_debug ("health: libsoup refused a connection: %s", error->message);
}

/* Looks at what has arrived so far without taking it off the socket. */
static gboolean
peek_head (Connection *c)
{
  g_autoptr (SoupMessageHeaders) headers = NULL;
  g_autofree char *method = NULL;
  g_autofree char *path = NULL;
  ssize_t n = recv (g_socket_get_fd (c->socket), c->head,
                    AB_HEALTH_MAX_HEAD_BYTES + 1, MSG_PEEK | MSG_DONTWAIT);
  const char *end;
  gsize head_len;
  guint status;
  gboolean head_only;

  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return FALSE;
  if (n <= 0)
    {
      connection_drop (c);
      return TRUE;
    }
  c->head[n] = '\0';

  end = g_strstr_len (c->head, n, "\n\r\n");
  if (end == NULL)
    end = g_strstr_len (c->head, n, "\n\n");
  if (end == NULL || end + 1 - c->head > AB_HEALTH_MAX_HEAD_BYTES)
    {
      if (n > AB_HEALTH_MAX_HEAD_BYTES)
        {
          refuse (c, STATUS_HEADERS_TOO_LARGE, FALSE);
          return TRUE;
        }
      return FALSE; /* not all there yet */
    }

  head_len = end + 1 - c->head;
  headers = soup_message_headers_new (SOUP_MESSAGE_HEADERS_REQUEST);
  status = soup_headers_parse_request (c->head, head_len, headers, &method,
                                       &path, NULL);
  head_only = g_strcmp0 (method, "HEAD") == 0;
  if (status != SOUP_STATUS_OK)
    refuse (c, status, head_only);
  else if (soup_message_headers_get_one (headers, "Host") == NULL)
    refuse (c, SOUP_STATUS_BAD_REQUEST, head_only);
  else if (!path_is_plain (path))
    refuse (c, SOUP_STATUS_NOT_FOUND, head_only);
  else if (soup_message_headers_get_encoding (headers) == SOUP_ENCODING_CHUNKED
           || soup_message_headers_get_content_length (headers) > 0)
    refuse (c, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, head_only);
  else
    hand_over (c);
  return TRUE;
}

/* The bytes peeked at stay queued, so the socket stays readable: until
 * the head is complete, look again on a timer instead. peek_head() may
 * free @c when it returns TRUE. */
static gboolean
on_repeek (gpointer user_data)
{
  Connection *c = user_data;

  c->watch = 0;
  if (!peek_head (c))
    c->watch = g_timeout_add (REPEEK_MSEC, on_repeek, c);
  return G_SOURCE_REMOVE;
}

static gboolean
on_readable (GSocket *socket, GIOCondition condition, gpointer user_data)
{
  return on_repeek (user_data);
}

static gboolean
on_incoming (GSocketService *service, GSocketConnection *stream,
             GObject *source_object, AbHealth *self)
{
  Connection *c;

  if (g_hash_table_size (self->connections) >= MAX_CONNECTIONS)
    {
      g_debug ("health: %d connections open; closing a new one",
               MAX_CONNECTIONS);
      g_io_stream_close (G_IO_STREAM (stream), NULL, NULL);
      return TRUE;
    }

  c = g_new0 (Connection, 1);
  c->health = self;
  c->stream = g_object_ref (stream);
  c->socket = g_socket_connection_get_socket (stream);
  g_hash_table_add (self->connections, c);
  c->watch = add_socket_watch (c->socket, on_readable, c);
  c->deadline = g_timeout_add_seconds (HEAD_TIMEOUT_SEC, on_deadline, c);
  return TRUE;
}

/* ---- listening ------------------------------------------------------------
 */

static GSocketAddress *
parse_listen_address (const char *text, GError **error)
{
  g_autofree char *host = NULL;
  const char *port;
  GSocketAddress *address;

  if (text[0] == '/')
    return g_unix_socket_address_new (text);
  if (text[0] == '[')
    {
      const char *close = strchr (text, ']');

      if (close == NULL || close[1] != ':')
        goto invalid;
      host = g_strndup (text + 1, close - text - 1);
      port = close + 2;
    }
  else
    {
      const char *colon = strrchr (text, ':');

      if (colon == NULL)
        goto invalid;
      host = g_strndup (text, colon - text);
      port = colon + 1;
    }
  address = g_inet_socket_address_new_from_string (
      host, (guint)g_ascii_strtoull (port, NULL, 10));
  if (address != NULL)
    return address;

invalid:
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
               "“%s” is not HOST:PORT, [IPv6]:PORT or an absolute path", text);
  return NULL;
}

/* A stale socket file from an earlier run is replaced; anything else at
 * that path is left alone, and binding fails. */
static void
remove_stale_socket (const char *path)
{
  struct stat st;

  if (lstat (path, &st) == 0 && S_ISSOCK (st.st_mode))
    unlink (path);
}

static void
stop_listening (AbHealth *self)
{
  if (self->service != NULL)
    {
      g_socket_service_stop (self->service);
      g_socket_listener_close (G_SOCKET_LISTENER (self->service));
      g_signal_handlers_disconnect_by_data (self->service, self);
      g_clear_object (&self->service);
    }
  for (guint i = 0; i < self->unix_paths->len; i++)
    unlink (g_ptr_array_index (self->unix_paths, i));
  g_ptr_array_set_size (self->unix_paths, 0);
}

static void
start_listening (AbHealth *self)
{
  GSocketListener *listener;
  guint listening = 0;

  self->service = g_socket_service_new ();
  listener = G_SOCKET_LISTENER (self->service);
  /* GLib's default of 10 drops bursts of probes and scrapes. */
  g_socket_listener_set_backlog (listener, 128);
  if (self->passed != NULL)
    {
      for (guint i = 0; i < self->passed->len; i++)
        {
          g_autoptr (GError) error = NULL;

          if (g_socket_listener_add_socket (
                  listener, g_ptr_array_index (self->passed, i), NULL, &error))
            listening++;
          else
            g_warning ("health: cannot use a socket from systemd: %s",
                       error->message);
        }
      if (listening > 0)
        g_message ("health: serving on %u socket(s) from systemd", listening);
    }
  else
    {
      for (char **text = self->listen; *text != NULL; text++)
        {
          g_autoptr (GError) error = NULL;
          g_autoptr (GSocketAddress) address
              = parse_listen_address (*text, &error);

          if (address != NULL && G_IS_UNIX_SOCKET_ADDRESS (address))
            remove_stale_socket (*text);
          if (address == NULL
              || !g_socket_listener_add_address (
                  listener, address, G_SOCKET_TYPE_STREAM,
                  G_SOCKET_PROTOCOL_DEFAULT, NULL, NULL, &error))
            {
              g_warning ("health: cannot listen on %s (health.listen): %s",
                         *text, error->message);
              continue;
            }
          if (G_IS_UNIX_SOCKET_ADDRESS (address))
            g_ptr_array_add (self->unix_paths, g_strdup (*text));
          g_message ("health: serving on %s", *text);
          listening++;
        }
    }

  if (listening == 0)
    {
      g_clear_object (&self->service);
      return;
    }
  g_signal_connect (self->service, "incoming", G_CALLBACK (on_incoming), self);
  g_socket_service_start (self->service);
}

static gboolean
strv_equal (char **a, char **b)
{
  if (a == NULL || b == NULL)
    return a == b;
  return g_strv_equal ((const char *const *)a, (const char *const *)b);
}

/* A reload may change health.listen; sockets from systemd stay. */
static void
on_generation (AbBroker *broker, GParamSpec *pspec, AbHealth *self)
{
  char **listen = ab_broker_get_config (broker)->health_listen;

  if (self->passed != NULL || strv_equal (listen, self->listen))
    return;
  g_message ("health: health.listen changed; listening again");
  stop_listening (self);
  g_strfreev (self->listen);
  self->listen = g_strdupv (listen);
  start_listening (self);
}

/* The listening stream sockets systemd passed as "health". */
static GPtrArray *
take_passed_sockets (void)
{
  g_auto (GStrv) names = NULL;
  GPtrArray *sockets = NULL;
  int n = sd_listen_fds_with_names (TRUE, &names);

  for (int i = 0; i < n; i++)
    {
      int fd = SD_LISTEN_FDS_START + i;
      g_autoptr (GError) error = NULL;
      GSocket *socket;

      if (names == NULL || g_strcmp0 (names[i], "health") != 0)
        continue;
      if (sd_is_socket (fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0)
        {
          g_warning ("health: passed descriptor %d is not a listening stream "
                     "socket; ignoring it",
                     fd);
          close (fd);
          continue;
        }
      socket = g_socket_new_from_fd (fd, &error);
      if (socket == NULL)
        {
          g_warning ("health: cannot use passed descriptor %d: %s", fd,
                     error->message);
          close (fd);
          continue;
        }
      if (sockets == NULL)
        sockets = g_ptr_array_new_with_free_func (g_object_unref);
      g_ptr_array_add (sockets, socket);
    }
  return sockets;
}

/* ---- object
 * ------------------------------------------------------------------ */

gboolean
ab_health_is_listening (AbHealth *self)
{
  return self->service != NULL;
}

static void
ab_health_dispose (GObject *object)
{
  AbHealth *self = AB_HEALTH (object);

  if (self->unix_paths != NULL)
    stop_listening (self);
  g_clear_pointer (&self->connections, g_hash_table_unref);
  if (self->server != NULL)
    soup_server_disconnect (self->server);
  g_clear_object (&self->server);
  if (self->broker != NULL)
    g_signal_handlers_disconnect_by_data (self->broker, self);
  g_clear_object (&self->metrics);
  g_clear_object (&self->broker);

  G_OBJECT_CLASS (ab_health_parent_class)->dispose (object);
}

static void
ab_health_finalize (GObject *object)
{
  AbHealth *self = AB_HEALTH (object);

  g_clear_pointer (&self->passed, g_ptr_array_unref);
  g_clear_pointer (&self->unix_paths, g_ptr_array_unref);
  g_strfreev (self->listen);

  G_OBJECT_CLASS (ab_health_parent_class)->finalize (object);
}

static void
ab_health_class_init (AbHealthClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = ab_health_dispose;
  object_class->finalize = ab_health_finalize;
}

static void
ab_health_init (AbHealth *self)
{
  self->unix_paths = g_ptr_array_new_with_free_func (g_free);
  self->connections
      = g_hash_table_new_full (NULL, NULL, connection_forget, NULL);
}

AbHealth *
ab_health_new (AbBroker *broker)
{
  AbHealth *self = g_object_new (AB_TYPE_HEALTH, NULL);

  self->broker = g_object_ref (broker);
  self->metrics = ab_metrics_new (broker);
  self->server = soup_server_new ("server-header", NULL, NULL);
  soup_server_add_handler (self->server, NULL, on_request, self, NULL);
  self->passed = take_passed_sockets ();
  self->listen = g_strdupv (ab_broker_get_config (broker)->health_listen);
  g_signal_connect (broker, "notify::generation", G_CALLBACK (on_generation),
                    self);
  start_listening (self);
  return self;
}
