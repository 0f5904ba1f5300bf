/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the broker: daemon state machine, ingress gate, config
 *
 * Signals (emitted from the main loop):
 *
 *   void prompt_refused (AbBroker *self, const GError *error,
 *                        gpointer user_data);
 *       A prompt was refused, with the error its caller got (AB_ERROR);
 *       the metrics count refusals by error.
 */
#pragma once

#include <glib-object.h>

#include <gio/gio.h>

#include "ab-config.h"
#include "access.h"
#include "pool.h"

G_BEGIN_DECLS

typedef enum
{
  AB_BROKER_STATE_STARTING,
  AB_BROKER_STATE_RUNNING,
  AB_BROKER_STATE_DRAINING,
  AB_BROKER_STATE_DRAINED,
  AB_BROKER_STATE_RELOADING,
  AB_BROKER_STATE_STOPPING,
} AbBrokerState;

/* Who is calling, as a front end tells the broker: the uid its
 * credentials give, the access that uid has, and the connection a
 * session's stream goes to (a D-Bus unique name; not owned). */
typedef struct
{
  uid_t uid;
  AbAccess access;
  const char *connection;
} AbCaller;

#define AB_TYPE_BROKER (ab_broker_get_type ())
G_DECLARE_FINAL_TYPE (AbBroker, ab_broker, AB, BROKER, GObject)

/* A reload that finds @config_path gone, once it has been read, fails
 * instead of falling back to the built-in default. */
AbBroker *ab_broker_new (const char *config_path, AbConfig *config,
                         const char *state_dir);

const char *ab_broker_state_to_string (AbBrokerState state);

AbBrokerState ab_broker_get_state (AbBroker *self);
gboolean ab_broker_get_accepting (AbBroker *self);
guint ab_broker_get_generation (AbBroker *self);
AbConfig *ab_broker_get_config (AbBroker *self);
const char *ab_broker_get_config_path (AbBroker *self);
const char *ab_broker_get_state_dir (AbBroker *self);
const char *ab_broker_get_status (AbBroker *self);
guint64 ab_broker_get_started_at (AbBroker *self);

void ab_broker_start (AbBroker *self);
gboolean ab_broker_check_accepting (AbBroker *self, GError **error);
void ab_broker_count_refusal (AbBroker *self, const GError *error);
gboolean ab_broker_reload (AbBroker *self, GError **error);

/* Whether @caller may see and act on @session: its owner or an admin.
 * Asked for every call on a session and again for every recipient of
 * its stream at the moment of sending, so that a watch registered
 * before the session existed, or before its thread id was reused by
 * another user, never receives someone else's stream. */
gboolean ab_broker_may_see (AbBroker *self, const AbCaller *caller,
                            AbSession *session);
/* The session of @thread for @caller, after checking the thread id and,
 * when @caller is not NULL, that the caller may see the session
 * (AccessDenied, naming @verb when not NULL). A thread without a session
 * is no error: *@session is NULL then. */
gboolean ab_broker_find_session (AbBroker *self, const AbCaller *caller,
                                 const char *thread, const char *verb,
                                 AbSession **session, GError **error);
/* ab_broker_find_session(), and a thread without a session is
 * NoSuchSession. */
AbSession *ab_broker_lookup_session (AbBroker *self, const AbCaller *caller,
                                     const char *thread, const char *verb,
                                     GError **error);

/* Operations on sessions, for every front end: each checks the thread
 * id, whether @caller may act on the session and, for a prompt, the
 * ingress gate; a refused prompt is counted (prompt-refused). */

/* Called once a prompt is accepted, before it is queued, with the
 * session of its thread (NULL when the prompt creates it). */
typedef void (*AbBrokerAcceptedFunc) (AbSession *session,
                                      const AbCaller *caller,
                                      gpointer user_data);
/* @agent: NULL for the thread's agent, or the default one. */
void ab_broker_prompt_async (AbBroker *self, const AbCaller *caller,
                             const char *thread, const char *text,
                             const char *agent, AbBrokerAcceptedFunc accepted,
                             gpointer accepted_data,
                             GAsyncReadyCallback callback, gpointer user_data);
/* A prompt of ACP content blocks: @content is their JSON text, checked
 * here (ab_acp_content_parse()) before anything else; finished with
 * ab_broker_prompt_finish(). */
void ab_broker_prompt_content_async (
    AbBroker *self, const AbCaller *caller, const char *thread,
    const char *content, const char *agent, AbBrokerAcceptedFunc accepted,
    gpointer accepted_data, GAsyncReadyCallback callback, gpointer user_data);
/* A session for @caller on @thread, which has none (the ingress gate
 * applies); @agent: NULL for the default profile. */
gboolean ab_broker_create_session (AbBroker *self, const AbCaller *caller,
                                   const char *thread, const char *agent,
                                   GError **error);
gboolean ab_broker_prompt_finish (AbBroker *self, GAsyncResult *result,
                                  guint64 *turn, GError **error);
/* Every session @caller may list (users may read every session), sorted
 * by thread id, each with a reference. */
GPtrArray *ab_broker_list_sessions (AbBroker *self, const AbCaller *caller);
/* Whether @caller may watch @thread ("*": every session, admins only);
 * *@session is the thread's session if there is one. */
gboolean ab_broker_check_watch (AbBroker *self, const AbCaller *caller,
                                const char *thread, AbSession **session,
                                GError **error);
/* @method of the ACP session of @thread (ab_session_agent_call_async())
 * for its owner or an admin; @verb names the call in a refusal. */
void ab_broker_agent_call_async (AbBroker *self, const AbCaller *caller,
                                 const char *thread, const char *verb,
                                 const char *method, JsonObject *params,
                                 GAsyncReadyCallback callback,
                                 gpointer user_data);
JsonNode *ab_broker_agent_call_finish (AbBroker *self, GAsyncResult *result,
                                       GError **error);
/* The transcript of @thread's session (transcript.h) as its lines, for
 * its owner or an admin. */
char *ab_broker_get_transcript (AbBroker *self, const AbCaller *caller,
                                const char *thread, GError **error);
gboolean ab_broker_cancel (AbBroker *self, const AbCaller *caller,
                           const char *thread, GError **error);
/* Sends @signal_name (a name such as "TERM" or a number) to the
 * agent's processes; the session stays. */
gboolean ab_broker_kill_session (AbBroker *self, const AbCaller *caller,
                                 const char *thread, const char *signal_name,
                                 GError **error);
gboolean ab_broker_answer_permission (AbBroker *self, const AbCaller *caller,
                                      const char *thread, const char *request,
                                      const char *option, GError **error);
void ab_broker_remove_async (AbBroker *self, const AbCaller *caller,
                             const char *thread, GAsyncReadyCallback callback,
                             gpointer user_data);
gboolean ab_broker_remove_finish (AbBroker *self, GAsyncResult *result,
                                  GError **error);
AbPool *ab_broker_get_pool (AbBroker *self);
/* How agents start from now on: @launcher, called @name ("direct" or
 * "systemd"); "direct" until set. */
void ab_broker_set_launcher (AbBroker *self, AbAgentLauncher *launcher,
                             const char *name);
const char *ab_broker_get_launcher (AbBroker *self);
void ab_broker_drain_async (AbBroker *self, guint timeout_seconds,
                            const char *reason, GAsyncReadyCallback callback,
                            gpointer user_data);
gboolean ab_broker_drain_finish (AbBroker *self, GAsyncResult *result,
                                 guint *finished, guint *interrupted,
                                 GError **error);
gboolean ab_broker_resume (AbBroker *self, GError **error);
/* Drains, then stops every agent; with @keep_agents (a restart, the
 * agents being units) hands them over as they are, turns in flight
 * included, for the next instance to go on with: no drain. */
void ab_broker_stop_async (AbBroker *self, gboolean keep_agents,
                           GAsyncReadyCallback callback, gpointer user_data);
gboolean ab_broker_stop_finish (AbBroker *self, GAsyncResult *result,
                                GError **error);

G_END_DECLS
