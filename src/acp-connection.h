/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the ACP conversation with one agent
 *
 * An AbAcpConnection owns the agent: its JSON-RPC connection and the
 * AbAgentHandle that stops it.  It speaks ACP and
 * nothing else: turns, queues, records and the permission policy are
 * the session's.
 *
 * ab_acp_connection_start_async() runs the handshake: initialize,
 * authenticate when the profile names a method, then, with a conversation
 * to go on with, session/resume when the agent advertises
 * sessionCapabilities.resume, else (or when the resume fails)
 * session/load when it advertises loadSession, else (or when that fails)
 * session/new.  It returns the ACP session id, the agent's advertised
 * capabilities and whether the history was lost (a conversation to go on
 * with that the agent could neither resume nor load).  The updates
 * session/load replays are history, not news: they are dropped here, and
 * so is anything an agent sends before it answers session/resume.
 *
 * Signals (emitted from the main loop, never from inside an
 * ab_acp_connection_*() call, and never after
 * ab_acp_connection_close_async()):
 *
 *   void update (AbAcpConnection *self, GArray *updates,
 *                gpointer user_data);
 *       The session/update payloads (AbAcpUpdate) of the open ACP session
 *       that arrived together, in order: all those of one read from the
 *       agent, however each was parsed.  The updates that came before an
 *       answer, a request or the loss of the agent are emitted before it.
 *       A handler may take an update's text, leaving NULL in its place.
 *
 *   void permission_request (AbAcpConnection *self, JsonNode *id,
 *                            JsonNode *params, gpointer user_data);
 *       The agent asks session/request_permission: answer @id (keep it
 *       with json_node_ref()) with ab_acp_connection_answer_permission().
 *
 *   void lost (AbAcpConnection *self, const char *reason, const char *why,
 *              gpointer user_data);
 *       The agent exited, closed its output or broke the protocol;
 *       @reason is "agent-exited" or "agent-error".  Emitted once; every
 *       call in flight has failed by then.
 */
#pragma once

#include <gio/gio.h>

#include "agent-handle.h"
#include "jsonrpc.h"

G_BEGIN_DECLS

#define AB_ACP_CONNECTION_ERROR (ab_acp_connection_error_quark ())
GQuark ab_acp_connection_error_quark (void);

typedef enum
{
  /* The agent answered a step of the handshake or a prompt with an
   * error, or with something unusable: the message says which and why.
   * A failed connection is reported with its own error instead (and the
   * "lost" signal). */
  AB_ACP_CONNECTION_ERROR_REFUSED,
} AbAcpConnectionError;

typedef struct
{
  const char *agent;       /* the profile's name, for messages */
  const char *thread;      /* for log lines */
  const char *cwd;         /* the agent's working directory */
  const char *resume;      /* the ACP session to go on with, or NULL */
  const char *auth_method; /* ACP authenticate methodId, or NULL */
} AbAcpStartParams;

typedef struct
{
  char *session_id;      /* the ACP session now open */
  gboolean can_load;     /* the agent advertised loadSession */
  gboolean can_resume;   /* and sessionCapabilities.resume */
  gboolean resumed;      /* @resume was resumed: nothing was replayed */
  char *auth_methods;    /* its advertised auth methods, described */
  char *agent;           /* ab_acp_describe_agent() of its initialize */
  gboolean history_lost; /* @resume was given but not loaded */
} AbAcpStarted;

void ab_acp_started_free (AbAcpStarted *started);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbAcpStarted, ab_acp_started_free)

/* One session/update payload: the "update" object as JSON text. */
typedef struct
{
  char *json;
  /* About the session rather than a turn (available commands, the
   * current mode): agents send these right after session/new, racing
   * the first prompt. */
  gboolean session_level;
  /* A usage_update (ab_acp_read_usage() reads it). */
  gboolean usage;
} AbAcpUpdate;

#define AB_TYPE_ACP_CONNECTION (ab_acp_connection_get_type ())
G_DECLARE_FINAL_TYPE (AbAcpConnection, ab_acp_connection, AB, ACP_CONNECTION,
                      GObject)

/* Takes @rpc, not yet started, and starts reading it; and @agent, the
 * agent whose stdin and stdout @rpc writes and reads (NULL: a test's
 * agent, with nothing to stop).  References are taken on both. */
AbAcpConnection *ab_acp_connection_new (AbJsonRpc *rpc, AbAgentHandle *agent);

/* Runs the handshake once; @params is copied. */
void ab_acp_connection_start_async (AbAcpConnection *self,
                                    const AbAcpStartParams *params,
                                    GAsyncReadyCallback callback,
                                    gpointer user_data);
/* A connection to an agent an earlier instance of the daemon started
 * and handed on, with @unread (or NULL), what that instance had read of
 * its output but not handled: start_async() opens no session but goes
 * on with the one it is given to resume (and fails without one); answers
 * to the earlier instance's requests are dropped unless adopted.  Nothing
 * is read until ab_acp_connection_go_on(). */
AbAcpConnection *ab_acp_connection_new_adopted (AbJsonRpc *rpc,
                                                AbAgentHandle *agent,
                                                GBytes *unread);
/* The earlier instance's session/prompt @id, still in flight, as if sent
 * here: @callback gets its stop reason (ab_acp_connection_prompt_finish).
 * Before ab_acp_connection_go_on(). */
void ab_acp_connection_adopt_prompt_async (AbAcpConnection *self, gint64 id,
                                           GAsyncReadyCallback callback,
                                           gpointer user_data);
/* Starts reading an adopted agent (what was unread first); nothing for
 * any other. */
void ab_acp_connection_go_on (AbAcpConnection *self);
/* The request id of the session/prompt in flight, or 0. */
gint64 ab_acp_connection_get_prompt_id (AbAcpConnection *self);
/* Lets go of the agent without stopping it, for the next instance of the
 * daemon to adopt: nothing is read from or sent to it any more.  Returns
 * what was read but not handled (the start of a line), which the agent
 * handle keeps for the next instance too. */
GBytes *ab_acp_connection_detach (AbAcpConnection *self);
AbAcpStarted *ab_acp_connection_start_finish (AbAcpConnection *self,
                                              GAsyncResult *result,
                                              GError **error);

/* session/prompt of the ACP content blocks @prompt (a JSON array,
 * transfer full) in the open session.  Returns the agent's stop reason,
 * or NULL with AB_ACP_CONNECTION_ERROR_REFUSED (the agent answered with
 * an error) or the connection's failure. */
void ab_acp_connection_prompt_async (AbAcpConnection *self, JsonNode *prompt,
                                     GAsyncReadyCallback callback,
                                     gpointer user_data);
char *ab_acp_connection_prompt_finish (AbAcpConnection *self,
                                       GAsyncResult *result, GError **error);

/* @method (session/set_mode, session/set_config_option) of the open
 * session with @params (an object, transfer full; its sessionId is set
 * here).  Returns the agent's result (transfer full), or NULL with
 * AB_ACP_CONNECTION_ERROR_REFUSED or the connection's failure. */
void ab_acp_connection_session_call_async (AbAcpConnection *self,
                                           const char *method,
                                           JsonObject *params,
                                           GAsyncReadyCallback callback,
                                           gpointer user_data);
JsonNode *ab_acp_connection_session_call_finish (AbAcpConnection *self,
                                                 GAsyncResult *result,
                                                 GError **error);

/* session/cancel of the open session: the prompt in flight should end
 * with stopReason "cancelled".  Does nothing before the handshake. */
void ab_acp_connection_cancel (AbAcpConnection *self);

/* Answers the permission request @id: the option @option_id, or
 * "cancelled" when it is NULL. */
void ab_acp_connection_answer_permission (AbAcpConnection *self, JsonNode *id,
                                          const char *option_id);

/* Stops talking to the agent (no signal follows) and stops the agent:
 * SIGTERM to its process group, SIGKILL after @kill_timeout_usec.
 * Completes once it is gone.  Idempotent: later calls complete with the
 * first. */
void ab_acp_connection_close_async (AbAcpConnection *self,
                                    gint64 kill_timeout_usec,
                                    GAsyncReadyCallback callback,
                                    gpointer user_data);
void ab_acp_connection_close_finish (AbAcpConnection *self,
                                     GAsyncResult *result);

/* The agent's process id, or 0 when none is known or it is being
 * stopped. */
guint ab_acp_connection_get_pid (AbAcpConnection *self);
/* The last lines the agent wrote to stderr; NULL when none are known. */
/* The unit the agent runs as, or NULL; what it uses (every value
 * unknown when it is no unit or is being stopped). */
const char *ab_acp_connection_get_unit (AbAcpConnection *self);
void ab_acp_connection_get_usage (AbAcpConnection *self, AbAgentUsage *usage);
char *ab_acp_connection_get_stderr_tail (AbAcpConnection *self);
/* @signo to the agent's process group (agentctl kill). */
gboolean ab_acp_connection_send_signal (AbAcpConnection *self, int signo,
                                        GError **error);
/* SIGKILL to the agent's process group at once (the daemon exits). */
void ab_acp_connection_kill_now (AbAcpConnection *self);

G_END_DECLS
