/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — what one D-Bus connection sees of the sessions'
 * streams, and Prompt calls that wait for their reply.
 *
 * A collector subscribes to the streaming signals of every session
 * (Update, TurnEnded, PermissionRequested) and to the manager's
 * SessionAdded/SessionRemoved, and keeps them per (session, turn). Every
 * wait runs the main context, so the signals are dispatched meanwhile.
 */
#pragma once

#include <gio/gio.h>

#include "daemon-fixture.h"

G_BEGIN_DECLS

/* Everything one connection saw of one turn of one session. */
typedef struct
{
  char *path; /* the session's object path */
  guint64 turn;
  GPtrArray *updates; /* JSON text of each update, in arrival order */
  GPtrArray *chunks;  /* text of each agent_message_chunk */
  GString *text;      /* the chunks concatenated */
  guint update_signals;
  guint64 first_seq; /* seq of the first signal of this turn */
  gboolean ended;
  guint ended_count; /* TurnEnded signals of this turn (more than 1 fails) */
  guint64 ended_seq;
  char *reason;
  char *message;
} AbTurn;

/* One PermissionRequested signal. */
typedef struct
{
  char *path;
  guint64 turn;
  char *request;
  char *request_json;
} AbPermission;

typedef struct
{
  GDBusConnection *connection;
  guint session_sub;
  guint added_sub;
  guint removed_sub;
  guint64 seq;            /* counts signals and prompt replies, in dispatch
                             order */
  GPtrArray *turns;       /* AbTurn */
  GPtrArray *perms;       /* AbPermission */
  GPtrArray *added;       /* SessionAdded as "thread path" */
  GPtrArray *removed;     /* SessionRemoved as "thread reason" */
  guint session_signals;  /* streaming signals of any session */
  guint turn_ended_count; /* TurnEnded signals of any session */
  GHashTable *stream_seq; /* path → the last stream number (guint64 *) */
} AbCollector;

/* Starts collecting the signals that reach @connection. A signal on a
 * session that is not one of its three streaming signals fails the test,
 * and so does a streaming signal not numbered above the session's one
 * before it. */
AbCollector *ab_collector_new (GDBusConnection *connection);
void ab_collector_free (AbCollector *c);

/* The record of @turn of @thread, or NULL when nothing of it came. */
AbTurn *ab_collector_lookup (AbCollector *c, const char *thread, guint64 turn);
/* Whether @list (c->added, c->removed) holds @entry. */
gboolean ab_collector_has (GPtrArray *list, const char *entry);

gboolean ab_turn_ended (AbCollector *c, const char *thread, guint64 turn);
gboolean ab_turn_has_update (AbCollector *c, const char *thread, guint64 turn);
/* Whether an update of @turn contains @needle (in its JSON text). */
gboolean ab_turn_has_update_with (AbCollector *c, const char *thread,
                                  guint64 turn, const char *needle);

/* Waits for TurnEnded of @turn, at most @ms (a timeout fails the test),
 * and returns its record. */
AbTurn *ab_wait_turn (AbCollector *c, const char *thread, guint64 turn,
                      guint ms);

/* The demo agent's answer to "stream N BYTES": @t ended with end_turn, in
 * @n chunks "1 …", "2 …", … of @bytes bytes each. */
void ab_assert_stream (AbTurn *t, guint n, guint bytes);

/* ---- Prompt ------------------------------------------------------------- */

/* Prompt(thread, text, {agent}) sent without waiting for the reply. */
typedef struct AbPromptCall AbPromptCall;

/* Sends Prompt from @connection. @order, when not NULL, is a collector on
 * the same connection: ab_prompt_finish() then fails the test if a signal
 * of the turn was dispatched before the reply. */
AbPromptCall *ab_prompt_send (GDBusConnection *connection, AbCollector *order,
                              const char *thread, const char *text,
                              const char *agent);
/* Waits for the reply (the main context runs meanwhile): the turn, or 0
 * with @error. */
guint64 ab_prompt_finish (AbPromptCall *p, GError **error);
void ab_prompt_call_free (AbPromptCall *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbPromptCall, ab_prompt_call_free)

/* ab_prompt_send() and ab_prompt_finish(): the turn, or 0 with @error. */
guint64 ab_prompt_on (GDBusConnection *connection, AbCollector *order,
                      const char *thread, const char *text, const char *agent,
                      GError **error);
/* The same with the default agent, asserting that it succeeds. */
guint64 ab_prompt (GDBusConnection *connection, AbCollector *order,
                   const char *thread, const char *text);

G_END_DECLS
