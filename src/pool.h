/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the pool: every session, capacity and expiry
 *
 * Signals (emitted from the main loop):
 *
 *   void session_added (AbPool *self, AbSession *session,
 *                       gpointer user_data);
 *       A session was created by a prompt or restored from its record.
 *
 *   void session_removed (AbPool *self, AbSession *session,
 *                         const char *reason, gpointer user_data);
 *       A session is gone for good, its agent stopped and its record
 *       deleted: removed by a caller ("removed") or expired
 *       ("expired").
 *
 * Properties, read-only, notified on change: "session-count",
 * "running-count" (sessions with an agent), "busy-count" (sessions with
 * a turn in flight or waiting).
 */
#pragma once

#include <sys/types.h>

#include <gio/gio.h>

#include "ab-config.h"
#include "session.h"

G_BEGIN_DECLS

#define AB_TYPE_POOL (ab_pool_get_type ())
G_DECLARE_FINAL_TYPE (AbPool, ab_pool, AB, POOL, GObject)

/* The sessions' agents are started with an AbDirectLauncher until
 * ab_pool_set_launcher() says otherwise. */
AbPool *ab_pool_new (AbConfig *config, const char *state_dir);
/* The launcher of every session's next agent. */
void ab_pool_set_launcher (AbPool *self, AbAgentLauncher *launcher);
void ab_pool_set_config (AbPool *self, AbConfig *config);
void ab_pool_restore (AbPool *self);

AbSession *ab_pool_lookup (AbPool *self, const char *thread);
GPtrArray *ab_pool_list (AbPool *self);
guint ab_pool_get_session_count (AbPool *self);
guint ab_pool_get_running_count (AbPool *self);
guint ab_pool_get_busy_count (AbPool *self);
/* What the last agent of @profile to start said of itself in its
 * initialize answer (ab_acp_describe_agent()), and when (*@when, µs
 * since the epoch), kept in the state directory across restarts; NULL
 * and 0 when none ever started. */
const char *ab_pool_get_agent_seen (AbPool *self, const char *profile,
                                    gint64 *when);

void ab_pool_prompt_async (AbPool *self, const char *thread, const char *text,
                           const char *agent, uid_t caller, const char *sender,
                           GAsyncReadyCallback callback, gpointer user_data);
/* ab_pool_prompt_async() of the ACP content blocks @content (a validated
 * array, ab_acp_content_parse(); a reference is taken), @text being what
 * the record keeps of it. */
void ab_pool_prompt_content_async (AbPool *self, const char *thread,
                                   const char *text, JsonNode *content,
                                   const char *agent, uid_t caller,
                                   const char *sender,
                                   GAsyncReadyCallback callback,
                                   gpointer user_data);
/* A session of @caller on @thread, which has none, with the profile
 * @agent (NULL: the default); suspended, its agent starts with its first
 * prompt. */
gboolean ab_pool_create_session (AbPool *self, const char *thread,
                                 const char *agent, uid_t caller,
                                 GError **error);
gboolean ab_pool_prompt_finish (AbPool *self, GAsyncResult *result,
                                guint64 *turn, GError **error);

void ab_pool_remove_async (AbPool *self, const char *thread, const char *reason,
                           GAsyncReadyCallback callback, gpointer user_data);
gboolean ab_pool_remove_finish (AbPool *self, GAsyncResult *result,
                                GError **error);

void ab_pool_kill_all (AbPool *self);

G_END_DECLS
