/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — one agent process: spawn, stderr to the journal, teardown
 *
 * The agent runs in its own process group (pgid == pid) with exactly the
 * environment given, so teardown can signal the agent and everything it
 * started.  stdin/stdout are non-blocking pipes for AbJsonRpc; stderr is
 * read here, logged line by line (journal fields AGENTBROKER_THREAD=,
 * AGENT_PID=; rate-limited) and its last lines kept for error messages.
 *
 * An AbAgentHandle: its "exited" signal is emitted once the child is
 * reaped, with wait_status as from waitpid().
 *
 * Other processes of the group may outlive the agent; only
 * ab_agent_process_terminate_async() waits for the whole group.  Dispose
 * SIGKILLs the group if the agent still runs; the child is then reaped by
 * GLib's child watch on the main loop.
 */
#pragma once

#include <gio/gio.h>

#include "agent-handle.h"

G_BEGIN_DECLS

#define AB_AGENT_STDERR_TAIL_LINES 20
#define AB_AGENT_STDERR_MAX_LINE 4096

#define AB_TYPE_AGENT_PROCESS (ab_agent_process_get_type ())
G_DECLARE_FINAL_TYPE (AbAgentProcess, ab_agent_process, AB, AGENT_PROCESS,
                      GObject)

/* Starts @argv[0] (looked up in @envp's PATH) in @cwd with exactly @envp.
 * Fails with AB_ERROR_AGENT_FAILED ("agent command 'foo' not found: …",
 * "cannot start agent command 'foo': …") or AB_ERROR_INVALID_ARGUMENT.
 * @thread only tags log lines. */
AbAgentProcess *ab_agent_process_spawn (const char *const *argv,
                                        const char *const *envp,
                                        const char *cwd, const char *thread,
                                        GError **error);

GPid ab_agent_process_get_pid (AbAgentProcess *self);
/* transfer none; non-blocking pollable pipes; owned by the process object */
GOutputStream *ab_agent_process_get_stdin (AbAgentProcess *self);
GInputStream *ab_agent_process_get_stdout (AbAgentProcess *self);
/* TRUE until the agent has been reaped */
gboolean ab_agent_process_is_running (AbAgentProcess *self);
/* NULL while running, else "exited with status 3" / "killed by signal 9" */
const char *ab_agent_process_get_exit_description (AbAgentProcess *self);
/* The last AB_AGENT_STDERR_TAIL_LINES stderr lines joined with "\n"
 * (valid UTF-8); "" when there were none. */
char *ab_agent_process_get_stderr_tail (AbAgentProcess *self);

/* Closes stdin, SIGTERMs the process group, SIGKILLs it after
 * @kill_timeout_usec, and completes once the agent is reaped and no
 * process of its group remains (best effort: gives up waiting for stray
 * group members a little after the final SIGKILL).  Cancelling only stops
 * the wait; the teardown goes on.  Never fails except when cancelled. */
void ab_agent_process_terminate_async (AbAgentProcess *self,
                                       gint64 kill_timeout_usec,
                                       GCancellable *cancellable,
                                       GAsyncReadyCallback callback,
                                       gpointer user_data);
gboolean ab_agent_process_terminate_finish (AbAgentProcess *self,
                                            GAsyncResult *result,
                                            GError **error);

/* SIGKILL to the whole process group at once (daemon exit). */
void ab_agent_process_kill_now (AbAgentProcess *self);

/* @signo to the whole process group, at an operator's request; what the
 * agent does about it is seen through the exited signal as usual.  Fails
 * with AB_ERROR_FAILED when no process of the group is left. */
gboolean ab_agent_process_send_signal (AbAgentProcess *self, int signo,
                                       GError **error);

G_END_DECLS
