/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — one session: the numbers of its stream, and the latest
 * signals kept for a client that comes back (WatchFrom)
 *
 * Every Update, TurnEnded and PermissionRequested of a session gets the
 * next number of the session's stream.  Numbers only grow, also across
 * restarts and crashes: the record on disk reserves numbers ahead of
 * those given, and the next instance starts above the reservation (or,
 * after a restart that handed the session over, right after the last
 * number given).  A new session starts at its creation time in
 * microseconds, so that the numbers also grow over the removal and
 * reuse of a thread id.
 */
#include "config.h"

#include <string.h>

#include "session-private.h"

/* How far a record reserves numbers ahead of the last one given. */
#define STREAM_RESERVE_AHEAD 4096

static void
stream_event_free (AbStreamEvent *event)
{
  g_strfreev (event->updates);
  g_free (event->first);
  g_free (event->second);
  g_free (event);
}

static gsize
stream_event_size (const AbStreamEvent *event)
{
  gsize size = sizeof *event
               + (event->first != NULL ? strlen (event->first) : 0)
               + (event->second != NULL ? strlen (event->second) : 0);

  for (guint i = 0; event->updates != NULL && event->updates[i] != NULL; i++)
    size += strlen (event->updates[i]) + sizeof (char *);
  return size;
}

void
session_stream_init (AbSession *self, guint64 last)
{
  g_queue_init (&self->replay);
  self->stream_seq = last;
  self->stream_reserved = last;
  self->stream_written = last;
  self->stream_first = last + 1;
}

void
session_stream_clear (AbSession *self)
{
  g_clear_handle_id (&self->replay_expiry, g_source_remove);
  g_queue_clear_full (&self->replay, (GDestroyNotify)stream_event_free);
  self->replay_bytes = 0;
}

/* The number a record written now keeps: the last one given once the
 * stream is sealed (the next instance goes on right after it), else a
 * reservation ahead of it, which a crash cannot overtake. */
guint64
session_stream_reserve (AbSession *self)
{
  if (self->stream_sealed)
    self->stream_written = self->stream_seq;
  else
    {
      self->stream_reserved = MAX (self->stream_reserved,
                                   self->stream_seq + STREAM_RESERVE_AHEAD);
      self->stream_written = self->stream_reserved;
    }
  return self->stream_written;
}

static void
drop_oldest (AbSession *self)
{
  AbStreamEvent *old = g_queue_pop_head (&self->replay);

  self->replay_bytes -= stream_event_size (old);
  stream_event_free (old);
}

static gboolean on_replay_expiry (gpointer user_data);

/* The signals kept longer than AB_SESSION_REPLAY_SECONDS go; a session
 * that streamed once and went quiet holds none for long. */
static void
expire (AbSession *self)
{
  const gint64 window = (gint64)AB_SESSION_REPLAY_SECONDS * G_USEC_PER_SEC;
  gint64 now = g_get_monotonic_time ();
  const AbStreamEvent *oldest;

  while ((oldest = g_queue_peek_head (&self->replay)) != NULL
         && now - oldest->kept >= window)
    drop_oldest (self);
  if (oldest != NULL && self->replay_expiry == 0)
    self->replay_expiry = g_timeout_add_seconds (
        (guint)((oldest->kept + window - now) / G_USEC_PER_SEC) + 1,
        on_replay_expiry, self);
}

static gboolean
on_replay_expiry (gpointer user_data)
{
  AbSession *self = user_data;

  self->replay_expiry = 0;
  expire (self);
  return G_SOURCE_REMOVE;
}

/* Numbers @event, keeps it (dropping the oldest beyond the bounds) and
 * returns its number. */
static guint64
stream_keep (AbSession *self, AbStreamEvent *event)
{
  event->seq = ++self->stream_seq;
  /* Sealed no more: the record reserves again. */
  if (self->stream_sealed)
    {
      self->stream_sealed = FALSE;
      session_persist (self);
    }
  /* Half the reservation used: the next record reserves further.  Only
   * updates write: every turn's start and end write a record anyway. */
  if (event->kind == AB_STREAM_UPDATE
      && self->stream_seq + STREAM_RESERVE_AHEAD / 2 > self->stream_reserved)
    session_persist (self);
  event->kept = g_get_monotonic_time ();
  self->replay_bytes += stream_event_size (event);
  g_queue_push_tail (&self->replay, event);
  while (self->replay.length > AB_SESSION_REPLAY_SIGNALS
         || (self->replay_bytes > AB_SESSION_REPLAY_BYTES
             && self->replay.length > 1))
    drop_oldest (self);
  expire (self);
  return event->seq;
}

/* A new signal of @kind, numbered and kept. */
static guint64
stream_add (AbSession *self, AbStreamKind kind, guint64 turn,
            const char *const *updates, const char *first, const char *second)
{
  AbStreamEvent *event = g_new0 (AbStreamEvent, 1);

  event->kind = kind;
  event->turn = turn;
  event->updates = g_strdupv ((char **)updates);
  event->first = g_strdup (first);
  event->second = g_strdup (second);
  return stream_keep (self, event);
}

guint64
session_stream_update (AbSession *self, guint64 turn,
                       const char *const *updates)
{
  return stream_add (self, AB_STREAM_UPDATE, turn, updates, NULL, NULL);
}

guint64
session_stream_turn_ended (AbSession *self, guint64 turn, const char *reason,
                           const char *message)
{
  return stream_add (self, AB_STREAM_TURN_ENDED, turn, NULL, reason, message);
}

guint64
session_stream_permission (AbSession *self, guint64 turn, const char *request,
                           const char *json)
{
  return stream_add (self, AB_STREAM_PERMISSION_REQUESTED, turn, NULL, request,
                     json);
}

void
ab_session_seal_stream (AbSession *self)
{
  g_return_if_fail (AB_IS_SESSION (self));

  self->stream_sealed = TRUE;
  /* Most sessions did not stream since their record was written. */
  if (self->stream_written != self->stream_seq)
    session_persist (self);
}

guint64
ab_session_get_stream_seq (AbSession *self)
{
  g_return_val_if_fail (AB_IS_SESSION (self), 0);

  return self->stream_seq;
}

gboolean
ab_session_replay (AbSession *self, guint64 after, AbStreamFunc func,
                   gpointer user_data)
{
  g_return_val_if_fail (AB_IS_SESSION (self), FALSE);

  const AbStreamEvent *oldest = g_queue_peek_head (&self->replay);
  gboolean complete;

  /* Held: every number from the oldest kept to the last given; none
   * dropped while the oldest is the first this object gave.  Below that,
   * only a session inherited from a record (an earlier instance) gave
   * numbers, which this one never had. */
  if (after >= self->stream_seq)
    return TRUE;
  complete = oldest != NULL
             && (oldest->seq <= after + 1 || oldest->seq == self->stream_first)
             && (after + 1 >= self->stream_first || !self->stream_inherited);
  for (GList *l = self->replay.head; l != NULL; l = l->next)
    {
      const AbStreamEvent *event = l->data;

      if (event->seq <= after)
        continue;
      /* A question already answered is not asked again. */
      if (event->kind == AB_STREAM_PERMISSION_REQUESTED
          && !g_hash_table_contains (self->permissions, event->first))
        continue;
      func (event, user_data);
    }
  return complete;
}
