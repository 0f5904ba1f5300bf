/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the sessions on D-Bus: their objects, their watchers and
 * their streams */
#pragma once

#include <gio/gio.h>

#include "ab-dbus.h"
#include "broker.h"

G_BEGIN_DECLS

typedef struct _AbBusSessions AbBusSessions;

/* Exports every session of @broker's pool under an object manager at
 * AB_BUS_PATH on @connection and follows the pool: a new session is
 * exported and announced (SessionAdded on @skeleton), a removed one
 * unexported (SessionRemoved). Each session's Update, TurnEnded and
 * PermissionRequested go to its prompter and to the watchers that may see
 * it when they are sent. */
AbBusSessions *ab_bus_sessions_new (AbBroker *broker,
                                    GDBusConnection *connection,
                                    AbDBusBroker1 *skeleton);
void ab_bus_sessions_free (AbBusSessions *self);

/* @caller's connection also receives the stream of @thread ("*": every
 * session) from now on; FALSE with InvalidArgument when it watches too
 * many threads already. Whether it may is the caller's to check first. */
gboolean ab_bus_sessions_watch (AbBusSessions *self, const AbCaller *caller,
                                const char *thread, GError **error);
void ab_bus_sessions_unwatch (AbBusSessions *self, const char *connection,
                              const char *thread);
/* @connection left the bus: its watches go. */
void ab_bus_sessions_forget (AbBusSessions *self, const char *connection);

/* Tells @recipient, if it may see @session, of a turn the previous
 * instance left unfinished (once per session). */
void ab_bus_sessions_report_interrupted (AbBusSessions *self,
                                         AbSession *session,
                                         const AbCaller *recipient);
/* Sends @recipient the streaming signals of @session numbered above
 * @after that it still holds, oldest first; whether none is missing
 * (ab_session_replay()). */
gboolean ab_bus_sessions_replay (AbBusSessions *self, AbSession *session,
                                 const AbCaller *recipient, guint64 after);

G_END_DECLS
