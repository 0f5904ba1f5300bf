/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the HTTP health shim
 *
 * A thin, read-only adapter on the broker (agentbrokerd(8)): GET or HEAD
 * /livez, /readyz, /healthz and /metrics, served by libsoup on the
 * daemon's own main loop. It listens on the sockets systemd passes under
 * the name "health" (agentbroker-health.socket), else on health.listen,
 * else nowhere.
 *
 * Connections reach libsoup only through the guard in http-guard.c.
 */
#include "config.h"

#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gunixsocketaddress.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <systemd/sd-daemon.h>

#include "health.h"
#include "http-guard.h"
#include "metrics.h"

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
  AbHttpGuard *guard;
};

G_DEFINE_TYPE (AbHealth, ab_health, G_TYPE_OBJECT)

/* ---- responses --------------------------------------------------------- */

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
      g_strdup_printf ("{\"error\":\"%s\"}\n", ab_http_status_phrase (status)));
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
  g_autofree char *json = NULL;
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
  json = json_to_string (root, FALSE);
  set_response (msg, SOUP_STATUS_OK, "application/json",
                g_strconcat (json, "\n", NULL));
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

static gboolean
on_incoming (GSocketService *service, GSocketConnection *stream,
             GObject *source_object, AbHealth *self)
{
  ab_http_guard_accept (self->guard, stream);
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
  g_clear_pointer (&self->guard, ab_http_guard_free);
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
}

AbHealth *
ab_health_new (AbBroker *broker)
{
  AbHealth *self = g_object_new (AB_TYPE_HEALTH, NULL);

  self->broker = g_object_ref (broker);
  self->metrics = ab_metrics_new (broker);
  self->server = soup_server_new ("server-header", NULL, NULL);
  soup_server_add_handler (self->server, NULL, on_request, self, NULL);
  self->guard = ab_http_guard_new (self->server, broker);
  self->passed = take_passed_sockets ();
  self->listen = g_strdupv (ab_broker_get_config (broker)->health_listen);
  g_signal_connect (broker, "notify::generation", G_CALLBACK (on_generation),
                    self);
  start_listening (self);
  return self;
}
