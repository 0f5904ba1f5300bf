/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — a scripted ACP agent in the test's own process, and
 * the launcher that hands a session connections to such agents
 *
 * No process and no bus: each launch makes a socketpair, gives the
 * session an AbAcpConnection on one end and plays the agent on the other
 * with an AbJsonRpc of its own.  The agent answers the handshake by
 * itself (it can load sessions, and resume them when told to advertise
 * it), keeps each session/prompt until the test
 * answers it, and logs what it was sent, one line per message:
 *
 *   "initialize", "session/new", "session/load ID", "session/resume ID",
 *   "session/prompt TEXT (record: running N)", "session/cancel",
 *   "permission selected OPTION", "permission cancelled"
 *
 * where N is the running turn of the thread's record on disk when the
 * prompt arrived (0: none).
 */
#pragma once

#include "agent-launcher.h"

G_BEGIN_DECLS

typedef struct _AbFakeAgent AbFakeAgent;

#define AB_TYPE_FAKE_LAUNCHER (ab_fake_launcher_get_type ())
G_DECLARE_FINAL_TYPE (AbFakeLauncher, ab_fake_launcher, AB, FAKE_LAUNCHER,
                      GObject)

AbFakeLauncher *ab_fake_launcher_new (void);
/* The next launch fails with @message (AB_ERROR_AGENT_FAILED). */
void ab_fake_launcher_fail_next (AbFakeLauncher *self, const char *message);
/* The agents launched from now on are "units": named fake-THREAD.service
 * and using @usage (NULL: plain agents again). */
void ab_fake_launcher_set_usage (AbFakeLauncher *self,
                                 const AbAgentUsage *usage);
/* The agents launched from now on advertise sessionCapabilities.resume. */
void ab_fake_launcher_set_resume (AbFakeLauncher *self, gboolean can_resume);
guint ab_fake_launcher_get_launches (AbFakeLauncher *self);
/* The agent of launch @i (0: the first); owned by the launcher. */
AbFakeAgent *ab_fake_launcher_get_agent (AbFakeLauncher *self, guint i);

/* Everything the agent was sent so far, one line each, joined by "\n". */
char *ab_fake_agent_get_log (AbFakeAgent *agent);
/* Whether the agent has a line equal to @line in its log. */
gboolean ab_fake_agent_has_logged (AbFakeAgent *agent, const char *line);
/* Prompts waiting for an answer. */
guint ab_fake_agent_get_pending_prompts (AbFakeAgent *agent);
/* Whether the broker closed its end. */
gboolean ab_fake_agent_is_closed (AbFakeAgent *agent);

/* An agent_message_chunk of @text in the open session. */
void ab_fake_agent_send_text (AbFakeAgent *agent, const char *text);
/* A session/update in the open session with @update (JSON text) as it
 * is. */
void ab_fake_agent_send_update (AbFakeAgent *agent, const char *update);
/* Answers the oldest waiting prompt with @stop_reason. */
void ab_fake_agent_finish_prompt (AbFakeAgent *agent, const char *stop_reason);
/* session/request_permission with the options "yes" (allow_once) and
 * "no" (reject_once); the answer is logged. */
void ab_fake_agent_ask_permission (AbFakeAgent *agent);
/* Closes the agent's end: the broker reads the end of its output. */
void ab_fake_agent_exit (AbFakeAgent *agent);

G_END_DECLS
