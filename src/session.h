/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — one session: a thread bound to one ACP agent process
 *
 * Signals (all emitted from the main loop; @recipient is the unique bus
 * name of the connection that sent the turn's prompt, or NULL):
 *
 *   void update (AbSession *self, guint64 turn, const char *const *updates,
 *                const char *recipient, guint64 seq, gpointer user_data);
 *       A batch of the agent's session/update payloads (JSON text), in
 *       the order the agent sent them; @turn is 0 and @recipient NULL for
 *       updates outside any turn.
 *
 *   void turn_ended (AbSession *self, guint64 turn, const char *reason,
 *                    const char *message, const char *recipient,
 *                    gint64 duration_usec, guint64 seq, gpointer user_data);
 *       The end of every accepted turn, run or dropped from the queue,
 *       once the record says so; @reason is an ACP stop reason or one of
 *       the broker's (cancelled, timeout, agent-error, …), @message ""
 *       or why; @duration_usec how long it ran, or -1 for a turn dropped
 *       before it started.
 *
 *   void permission_requested (AbSession *self, guint64 turn,
 *                              const char *request, const char *json,
 *                              const char *recipient, guint64 seq,
 *                              gpointer user_data);
 *       A "permissions: ask" request waiting for
 *       ab_session_answer_permission (@request); @json is the agent's
 *       session/request_permission parameters.  At most
 *       AB_SESSION_MAX_PENDING_PERMISSIONS wait at a time.
 *
 *   @seq, in the three above, is the signal's number in the session's
 *   stream (session-stream.c): numbers only grow, and may skip.
 *
 *   void agent_ready (AbSession *self, const char *description,
 *                     gpointer user_data);
 *       An agent of the session finished its handshake; @description is
 *       what its initialize answer says of it (ab_acp_describe_agent()).
 *
 * Properties, read-only, notified on change: "state" (as
 * ab_session_state_to_string()), "pid" (0 while no agent runs),
 * "acp-session", "last-activity", "turns", "queued"; "token-usage"
 * (the tokens in use, read the rest with ab_session_get_token_usage()),
 * notified at most once a second, the last change always.
 */
#pragma once

#include <sys/types.h>

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "acp-usage.h"
#include "agent-usage.h"

#include "ab-config.h"
#include "agent-launcher.h"
#include "store.h"

G_BEGIN_DECLS

typedef enum
{
  AB_SESSION_STATE_STARTING,
  AB_SESSION_STATE_IDLE,
  AB_SESSION_STATE_BUSY,
  AB_SESSION_STATE_SUSPENDED,
  AB_SESSION_STATE_FAILED,
} AbSessionState;

#define AB_TYPE_SESSION (ab_session_get_type ())
G_DECLARE_FINAL_TYPE (AbSession, ab_session, AB, SESSION, GObject)

/* Longest prompt text accepted, in bytes. */
#define AB_SESSION_MAX_PROMPT_BYTES (1024 * 1024)

/* The latest streaming signals a session keeps for ab_session_replay():
 * at most this many, and this many bytes. */
#define AB_SESSION_REPLAY_SIGNALS 1024u
#define AB_SESSION_REPLAY_BYTES (256 * 1024)
/* …and none older than this many seconds. */
#define AB_SESSION_REPLAY_SECONDS 300

/* One streaming signal of a session, as ab_session_replay() gives it. */
typedef enum
{
  AB_STREAM_UPDATE,
  AB_STREAM_TURN_ENDED,
  AB_STREAM_PERMISSION_REQUESTED,
} AbStreamKind;

typedef struct
{
  AbStreamKind kind;
  guint64 seq;
  guint64 turn;
  char **updates; /* AB_STREAM_UPDATE */
  char *first;    /* the reason, or the request id */
  char *second;   /* the message, or the request's JSON */
  gint64 kept;    /* monotonic µs when kept */
} AbStreamEvent;

typedef void (*AbStreamFunc) (const AbStreamEvent *event, gpointer user_data);

/* Permission requests of one session waiting for an answer under
 * "permissions: ask"; the agent's further requests are denied at once. */
#define AB_SESSION_MAX_PENDING_PERMISSIONS 8u

AbSession *ab_session_new (const char *thread, const char *agent, uid_t owner,
                           AbConfig *config, const char *state_dir);

AbSession *ab_session_new_from_record (const AbSessionRecord *record,
                                       AbConfig *config, const char *state_dir);
void ab_session_persist (AbSession *self);
/* How the session starts its agents from now on; by default an
 * AbDirectLauncher of its own. */
void ab_session_set_launcher (AbSession *self, AbAgentLauncher *launcher);
/* The end of the turn the previous instance was running when it ended,
 * numbered in the stream, the first time it is asked for; NULL after. */
const AbStreamEvent *ab_session_take_interrupted (AbSession *self);

const char *ab_session_state_to_string (AbSessionState state);

const char *ab_session_get_thread (AbSession *self);
const char *ab_session_get_agent (AbSession *self);
const char *ab_session_get_path (AbSession *self);
uid_t ab_session_get_owner (AbSession *self);
AbSessionState ab_session_get_state (AbSession *self);
gboolean ab_session_is_running (AbSession *self);
gboolean ab_session_is_busy (AbSession *self);
gint64 ab_session_get_created (AbSession *self);
const char *ab_session_get_cwd (AbSession *self);
gint64 ab_session_get_last_activity (AbSession *self);
guint ab_session_get_queued (AbSession *self);
guint ab_session_get_pid (AbSession *self);
/* The systemd unit of the session's agent, or NULL (none runs, or the
 * direct launcher started it); what that unit uses, read now. */
const char *ab_session_get_unit (AbSession *self);
void ab_session_get_usage (AbSession *self, AbAgentUsage *usage);
const char *ab_session_get_acp_session (AbSession *self);
/* The title the agent last gave the session (ACP session_info_update),
 * at most AB_SESSION_MAX_TITLE_BYTES, UTF-8; "" if none (kept in the
 * record). */
#define AB_SESSION_MAX_TITLE_BYTES 256
const char *ab_session_get_title (AbSession *self);
/* What the agent's last usage_update said: its tokens and the cost of the
 * session (unknown values as acp-usage.h says).  Kept while the daemon
 * runs, across the session's agents. */
void ab_session_get_token_usage (AbSession *self, AbAcpUsage *usage);
guint64 ab_session_get_turns (AbSession *self);
/* The number and reason of the last turn that ended; 0 and NULL before
 * the first. */
guint64 ab_session_get_last_turn (AbSession *self);
const char *ab_session_get_last_reason (AbSession *self);
/* A reload changed the profile: the agent is replaced after this turn. */
gboolean ab_session_is_switching (AbSession *self);
/* The session's a{sv} for ListSessions and GetSession; owned by the
 * session and kept until it changes: take a reference to hold it. */
GVariant *ab_session_to_variant (AbSession *self);

void ab_session_set_config (AbSession *self, AbConfig *config);

/* At the daemon's end (a stop, or a restart handing the agent over):
 * the record keeps the last number given, not a reservation, so that
 * the next instance numbers right after it and can vouch for what came
 * before.  A later signal undoes it. */
void ab_session_seal_stream (AbSession *self);
/* The number of the session's last streaming signal. */
guint64 ab_session_get_stream_seq (AbSession *self);
/* Calls @func for each streaming signal numbered above @after that the
 * session still holds, oldest first, leaving out permission requests no
 * longer waiting.  Returns whether every signal numbered above @after
 * was among them (FALSE: some were dropped, or given by an earlier
 * instance). */
gboolean ab_session_replay (AbSession *self, guint64 after, AbStreamFunc func,
                            gpointer user_data);

void ab_session_prompt_async (AbSession *self, const char *text,
                              const char *sender, GAsyncReadyCallback callback,
                              gpointer user_data);
/* A prompt of ACP content blocks: @content, a validated array
 * (ab_acp_content_parse(); a reference is taken), goes to the agent as
 * it is; @text is what the record keeps of it (the prompt that
 * resend_interrupted sends again). */
void ab_session_prompt_content_async (AbSession *self, const char *text,
                                      JsonNode *content, const char *sender,
                                      GAsyncReadyCallback callback,
                                      gpointer user_data);
gboolean ab_session_prompt_finish (AbSession *self, GAsyncResult *result,
                                   guint64 *turn, GError **error);

/* @method of the ACP session (session/set_mode,
 * session/set_config_option) with @params (transfer full) to the running
 * agent; its result (transfer full), or NULL with AB_ERROR_FAILED when
 * no agent runs and AB_ERROR_AGENT_FAILED when the agent refused. */
void ab_session_agent_call_async (AbSession *self, const char *method,
                                  JsonObject *params,
                                  GAsyncReadyCallback callback,
                                  gpointer user_data);
JsonNode *ab_session_agent_call_finish (AbSession *self, GAsyncResult *result,
                                        GError **error);

void ab_session_cancel (AbSession *self);
/* Ends everything in flight: the running turn and the queued ones are
 * interrupted, prompts still waiting for the agent get @refusal (their
 * number in @refused). Returns the number of turns interrupted. */
guint ab_session_interrupt (AbSession *self, const GError *refusal,
                            guint *refused);
void ab_session_deny_permissions (AbSession *self);
gboolean ab_session_answer_permission (AbSession *self, const char *request,
                                       const char *option, GError **error);

/* Stops the agent; the session stays, suspended, and resumes through
 * session/load on its next prompt. A running turn is cancelled with
 * @reason. */
void ab_session_suspend_async (AbSession *self, const char *reason,
                               GAsyncReadyCallback callback,
                               gpointer user_data);
gboolean ab_session_suspend_finish (AbSession *self, GAsyncResult *result,
                                    GError **error);
/* Lets go of the agent without stopping it (it is a unit, left for the
 * daemon's next instance): the session is suspended, its record written. */
void ab_session_detach_agent (AbSession *self);
/* Starts the agent now rather than at the next prompt: the launcher has
 * the agent an earlier instance left running for this thread.  Its output
 * is not read before ab_session_go_on(). */
void ab_session_reattach (AbSession *self);
/* A reattached agent's output is read from now on: once the daemon owns
 * its bus name, so that the updates reach the clients following it. */
void ab_session_go_on (AbSession *self);
/* A turn handed over by the previous instance whose agent did not
 * survive: it is reported interrupted. */
void ab_session_forget_handover (AbSession *self);
void ab_session_kill_now (AbSession *self);
/* @signo to the agent's process group; the session stays.  Fails with
 * AB_ERROR_FAILED when the session has no agent process. */
gboolean ab_session_send_signal (AbSession *self, int signo, GError **error);

G_END_DECLS
