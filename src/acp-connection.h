/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the ACP conversation with one agent, over its JSON-RPC
 * connection
 *
 * ab_acp_connection_start_async() runs the handshake: initialize,
 * authenticate when the profile names a method, then session/load of the
 * conversation to resume when the agent can load one, else session/new.
 * It returns the ACP session id, the agent's advertised capabilities and
 * whether the history was lost (a conversation to resume that the agent
 * could not load).  While session/load runs, the agent replays the
 * history as updates: ab_acp_connection_is_loading() says so, and those
 * updates are not news to anyone.
 *
 * The connection stays the caller's to read, write and close; closing it
 * fails a handshake still running with the connection's error.
 *
 * No signals yet: updates, requests and the loss of the agent still come
 * from the AbJsonRpc.
 */
#pragma once

#include <gio/gio.h>

#include "jsonrpc.h"

G_BEGIN_DECLS

#define AB_ACP_CONNECTION_ERROR (ab_acp_connection_error_quark ())
GQuark ab_acp_connection_error_quark (void);

typedef enum
{
  /* The agent answered a step of the handshake with an error, or with
   * something unusable: the message says which and why.  A failed
   * connection is reported with its own error instead. */
  AB_ACP_CONNECTION_ERROR_REFUSED,
} AbAcpConnectionError;

typedef struct
{
  const char *agent;       /* the profile's name, for messages */
  const char *thread;      /* for log lines */
  const char *cwd;         /* the agent's working directory */
  const char *resume;      /* the ACP session to load, or NULL */
  const char *auth_method; /* ACP authenticate methodId, or NULL */
} AbAcpStartParams;

typedef struct
{
  char *session_id;      /* the ACP session now open */
  gboolean can_load;     /* the agent advertised loadSession */
  char *auth_methods;    /* its advertised auth methods, described */
  gboolean history_lost; /* @resume was given but not loaded */
} AbAcpStarted;

void ab_acp_started_free (AbAcpStarted *started);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbAcpStarted, ab_acp_started_free)

#define AB_TYPE_ACP_CONNECTION (ab_acp_connection_get_type ())
G_DECLARE_FINAL_TYPE (AbAcpConnection, ab_acp_connection, AB, ACP_CONNECTION,
                      GObject)

/* Takes a reference on @rpc. */
AbAcpConnection *ab_acp_connection_new (AbJsonRpc *rpc);
AbJsonRpc *ab_acp_connection_get_rpc (AbAcpConnection *self);
gboolean ab_acp_connection_is_loading (AbAcpConnection *self);

/* Runs the handshake once; @params is copied. */
void ab_acp_connection_start_async (AbAcpConnection *self,
                                    const AbAcpStartParams *params,
                                    GAsyncReadyCallback callback,
                                    gpointer user_data);
AbAcpStarted *ab_acp_connection_start_finish (AbAcpConnection *self,
                                              GAsyncResult *result,
                                              GError **error);

G_END_DECLS
