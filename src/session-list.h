/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — ListSessions: a caller's filter and the compact reply */
#pragma once

#include <sys/types.h>

#include <gio/gio.h>

#include "session.h"

G_BEGIN_DECLS

/* One struct per session, fields in the order dbus/ documents:
 * thread, agent, state, pid, owner, cwd, created, last_activity, turns,
 * queued, last_turn, last_reason, switching, path. */
#define AB_SESSION_LIST_ENTRY_TYPE "(sssuusttuutsbosttt)"
#define AB_SESSION_LIST_TYPE "a" AB_SESSION_LIST_ENTRY_TYPE

/* The names of those fields, GetSession()'s keys, NULL-terminated. */
extern const char *const ab_session_list_fields[];

/* Longest "profile" accepted in the options, in bytes. */
#define AB_SESSION_LIST_MAX_PROFILE 256
/* Most entries accepted in "states". */
#define AB_SESSION_LIST_MAX_STATES 16

typedef struct
{
  guint states;  /* bit (1 << AbSessionState) per state shown; 0: all */
  char *profile; /* only sessions of this agent profile; NULL: any */
  gboolean by_owner;
  uid_t owner;  /* only this uid's sessions, if by_owner */
  gboolean own; /* "own": the caller's; its front end sets owner */
} AbSessionFilter;

/* Reads ListSessions' a{sv} @options ("states" as, "profile" s, "owner"
 * u, "own" b) into @filter; an unknown key, a wrong type, an unknown state or
 * an over-long value is InvalidArgument. */
gboolean ab_session_filter_parse (AbSessionFilter *filter, GVariant *options,
                                  GError **error);
void ab_session_filter_clear (AbSessionFilter *filter);
gboolean ab_session_filter_match (const AbSessionFilter *filter,
                                  AbSession *session);

/* The struct of one session (floating). */
GVariant *ab_session_list_entry (AbSession *session);
/* The AB_SESSION_LIST_TYPE array of the @sessions (AbSession *) that
 * @filter matches, in their order (floating). */
/* GetSession()'s dictionary: the session's own (ab_session_to_variant())
 * and what its unit uses, read now.  Floating. */
GVariant *ab_session_details (AbSession *session);
GVariant *ab_session_list_build (GPtrArray *sessions,
                                 const AbSessionFilter *filter);

/* Each struct of a ListSessions() reply as an a{sv} keyed by
 * ab_session_list_fields (fields beyond those are left out): a
 * GPtrArray of owned GVariants. */
GPtrArray *ab_session_list_to_dicts (GVariant *sessions);

G_END_DECLS
