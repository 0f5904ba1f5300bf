/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — log output: the journal when stderr is the journal
 *
 * ab_log_event() writes the entries an operator searches for as
 * structured journal entries: MESSAGE_ID (described in
 * data/agentbroker.catalog, for journalctl -x), AGENTBROKER_THREAD= the
 * session's thread, AGENTBROKER_CALLER_UID= the uid of the D-Bus caller
 * who asked for it, SYSLOG_IDENTIFIER=agentbrokerd.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum
{
  AB_LOG_SESSION_CREATED,
  AB_LOG_SESSION_REMOVED,
  AB_LOG_AGENT_LOST,
  AB_LOG_AGENT_START_FAILED,
  AB_LOG_TURN_INTERRUPTED,
  AB_LOG_DRAIN,
  AB_LOG_RELOAD,
  AB_LOG_CONFIG_REFUSED,
  AB_LOG_REQUEST, /* a caller's Cancel, RemoveSession, Drain, … */
  AB_LOG_N_EVENTS
} AbLogEvent;

/* @caller_uid when no caller asked */
#define AB_LOG_NO_CALLER ((gint64)-1)

/* @thread may be NULL (no session); @caller_uid a uid or AB_LOG_NO_CALLER.
 * @level: G_LOG_LEVEL_MESSAGE for events, G_LOG_LEVEL_WARNING for
 * failures. */
void ab_log_event (AbLogEvent event, GLogLevelFlags level, const char *thread,
                   gint64 caller_uid, const char *format, ...)
    G_GNUC_PRINTF (5, 6);

/* The MESSAGE_ID of @event: 32 lower-case hex digits. */
const char *ab_log_event_id (AbLogEvent event);

/* Installs the writer: the journal when stderr is connected to it, plain
 * lines otherwise, every field as NAME=value lines when the environment
 * has AGENTBROKER_LOG_FIELDS=1 (for tests and debugging).  Debug and
 * info only with @verbose or G_MESSAGES_DEBUG. */
void ab_log_init (gboolean verbose);

G_END_DECLS
