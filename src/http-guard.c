/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the guard in front of the health shim's HTTP server
 *
 * libsoup reads request heads of up to 64 KiB and has no timeout of its
 * own for a server connection, so connections are accepted here and
 * guarded before libsoup sees them: the whole request head must arrive
 * within HEAD_TIMEOUT_SEC and fit in AB_HTTP_MAX_HEAD_BYTES; it is
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

#include <gio/gunixsocketaddress.h>

#include "http-guard.h"

#define HEAD_TIMEOUT_SEC 5
#define CONNECTION_TIMEOUT_SEC 10
/* How long a refused client may go on sending before it is cut off; it
 * is read and discarded meanwhile, so it sees the refusal, not a reset. */
#define LINGER_TIMEOUT_SEC 1
/* A head that came in pieces is looked at again after this long. */
#define REPEEK_MSEC 50
#define MAX_CONNECTIONS 512
#define MAX_UNFINISHED_PER_PEER 32
/* RFC 6585; libsoup has no name for it. */
#define STATUS_HEADERS_TOO_LARGE 431

typedef struct _Connection Connection;

struct _AbHttpGuard
{
  SoupServer *server;
  AbBroker *broker;        /* for X-Agentbroker-Generation on refusals */
  GHashTable *connections; /* Connection * → itself */
  GQueue unfinished;       /* of Connection *, whose head has not come yet,
                              oldest first */
};

const char *
ab_http_status_phrase (guint status)
{
  if (status == STATUS_HEADERS_TOO_LARGE)
    return "Request Header Fields Too Large";
  return soup_status_get_phrase (status);
}

struct _Connection
{
  AbHttpGuard *guard;
  GSocketConnection *stream; /* owned until handed to libsoup */
  GObject *handed;           /* the stream libsoup owns; a weak pointer */
  GSocket *socket;           /* the stream's */
  guint watch;               /* readable, or the next peek */
  guint deadline;            /* head, lingering or whole connection */
  gboolean handed_over;
  gboolean lingering;
  char *peer;            /* "uid N" or an address: who opened it */
  GList unfinished_link; /* in guard->unfinished while data != NULL */
  char head[AB_HTTP_MAX_HEAD_BYTES + 1];
};

/* The connection's request head is complete, refused or abandoned: it no
 * longer counts against its peer, nor is it pushed out for a newer one. */
static void
connection_finished (Connection *c)
{
  if (c->unfinished_link.data == NULL)
    return;
  g_queue_unlink (&c->guard->unfinished, &c->unfinished_link);
  c->unfinished_link.data = NULL;
}

static void
connection_free (Connection *c)
{
  connection_finished (c);
  g_free (c->peer);
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
  g_hash_table_remove (c->guard->connections, c);
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
  g_autofree char *body = g_strdup_printf ("{\"error\":\"%s\"}\n",
                                           ab_http_status_phrase (status));
  g_autofree char *response = g_strdup_printf (
      "HTTP/1.1 %u %s\r\n"
      "Content-Type: application/json\r\n"
      "Content-Length: %zu\r\n"
      "Connection: close\r\n"
      "Cache-Control: no-store\r\n"
      "X-Agentbroker-Generation: %u\r\n"
      "\r\n%s",
      status, ab_http_status_phrase (status), strlen (body),
      ab_broker_get_generation (c->guard->broker), head_only ? "" : body);
  int fd = g_socket_get_fd (c->socket);

  g_debug ("health: refusing a request: %u %s", status,
           ab_http_status_phrase (status));
  /* A few hundred bytes into an empty send buffer: one call. */
  if (send (fd, response, strlen (response), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
    g_debug ("health: cannot send the refusal: %s", g_strerror (errno));
  shutdown (fd, SHUT_WR);

  c->lingering = TRUE;
  connection_finished (c);
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
  AbHttpGuard *self = c->guard;
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
  connection_finished (c);
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
                    AB_HTTP_MAX_HEAD_BYTES + 1, MSG_PEEK | MSG_DONTWAIT);
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
  if (end == NULL || end + 1 - c->head > AB_HTTP_MAX_HEAD_BYTES)
    {
      if (n > AB_HTTP_MAX_HEAD_BYTES)
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

/* Who is at the other end: a uid on a unix socket, else an address. */
static char *
peer_of (GSocketConnection *stream)
{
  GSocket *socket = g_socket_connection_get_socket (stream);
  g_autoptr (GCredentials) credentials = NULL;
  g_autoptr (GSocketAddress) remote = NULL;

  if (g_socket_get_family (socket) == G_SOCKET_FAMILY_UNIX)
    {
      credentials = g_socket_get_credentials (socket, NULL);
      if (credentials != NULL)
        return g_strdup_printf (
            "uid %u", (guint)g_credentials_get_unix_user (credentials, NULL));
      return g_strdup ("an unknown local peer");
    }
  remote = g_socket_connection_get_remote_address (stream, NULL);
  if (G_IS_INET_SOCKET_ADDRESS (remote))
    return g_inet_address_to_string (
        g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (remote)));
  return g_strdup ("an unknown peer");
}

/* Makes room for a connection from @peer: pushes out that peer's oldest
 * unfinished request if it has too many, and the oldest of all when the
 * guard is full. FALSE if every connection is past its head. */
static gboolean
make_room (AbHttpGuard *self, const char *peer)
{
  Connection *oldest_of_peer = NULL;
  guint of_peer = 0;

  for (GList *l = self->unfinished.head; l != NULL; l = l->next)
    {
      Connection *c = l->data;

      if (g_str_equal (c->peer, peer) && of_peer++ == 0)
        oldest_of_peer = c;
    }
  if (of_peer >= MAX_UNFINISHED_PER_PEER)
    {
      g_debug ("health: %s has %u unfinished requests; dropping its oldest",
               peer, of_peer);
      connection_drop (oldest_of_peer);
    }
  if (g_hash_table_size (self->connections) < MAX_CONNECTIONS)
    return TRUE;
  if (g_queue_is_empty (&self->unfinished))
    return FALSE;
  g_debug ("health: %d connections open; dropping the oldest unfinished "
           "request",
           MAX_CONNECTIONS);
  connection_drop (g_queue_peek_head (&self->unfinished));
  return TRUE;
}

void
ab_http_guard_accept (AbHttpGuard *self, GSocketConnection *stream)
{
  g_autofree char *peer = peer_of (stream);
  Connection *c;

  if (!make_room (self, peer))
    {
      g_debug ("health: %d requests in progress; closing a new connection",
               MAX_CONNECTIONS);
      g_io_stream_close (G_IO_STREAM (stream), NULL, NULL);
      return;
    }

  c = g_new0 (Connection, 1);
  c->guard = self;
  c->stream = g_object_ref (stream);
  c->socket = g_socket_connection_get_socket (stream);
  c->peer = g_steal_pointer (&peer);
  c->unfinished_link.data = c;
  g_queue_push_tail_link (&self->unfinished, &c->unfinished_link);
  g_hash_table_add (self->connections, c);
  c->watch = add_socket_watch (c->socket, on_readable, c);
  c->deadline = g_timeout_add_seconds (HEAD_TIMEOUT_SEC, on_deadline, c);
}

AbHttpGuard *
ab_http_guard_new (SoupServer *server, AbBroker *broker)
{
  AbHttpGuard *self = g_new0 (AbHttpGuard, 1);

  self->server = g_object_ref (server);
  self->broker = g_object_ref (broker);
  self->connections
      = g_hash_table_new_full (NULL, NULL, connection_forget, NULL);
  return self;
}

/* Cuts every connection still open. */
void
ab_http_guard_free (AbHttpGuard *self)
{
  g_hash_table_unref (self->connections);
  g_object_unref (self->server);
  g_object_unref (self->broker);
  g_free (self);
}
