/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — one session: its record on disk, written in order */
#include "config.h"

#include <string.h>

#include "session-private.h"

/* ---- durability ------------------------------------------------------ */

typedef struct
{
  AbSession *self;
  PersistedFunc then;
  gpointer data;
} PersistWait;

static void
on_persisted (gpointer user_data, const GError *error)
{
  PersistWait *w = user_data;
  AbSession *self = w->self;

  if (error != NULL)
    g_warning ("session %s: cannot save its record: %s", self->thread,
               error->message);
  self->writes--;
  if (w->then != NULL)
    w->then (self, w->data);
  /* A suspend completes once the record says how the session ended. */
  if (self->writes == 0 && self->suspends_wait)
    {
      self->suspends_wait = FALSE;
      session_complete_suspend_tasks (self);
    }
  g_object_unref (self);
  g_free (w);
}

/* The session's record as it stands (and a reservation of stream
 * numbers, which it keeps). */
void
session_fill_record (AbSession *self, AbSessionRecord *record)
{
  *record = (AbSessionRecord){
    .thread = self->thread,
    .agent = self->agent,
    .owner = (guint32)self->owner,
    .cwd = self->cwd,
    .acp_session = self->acp_session,
    .created = self->created,
    .last_activity = self->last_activity,
    .turns = self->turns,
    .last_turn = self->last_turn,
    .last_reason = self->last_reason,
    .running_turn = self->current != NULL ? self->current->number : 0,
    .running_text = self->current != NULL ? self->current->text : NULL,
    .interrupted_turn = self->interrupted_turn,
    .interrupted_reported = self->interrupted_reported,
    .handed_over = self->handing_over && self->current != NULL,
    .running_rpc_id = self->handing_over ? self->handed_rpc_id : 0,
    .running_sender = self->handing_over && self->current != NULL
                          ? self->current->sender
                          : NULL,
    .permission_rpc_id
    = self->handing_over ? self->handed_permission_rpc_id : NULL,
    .permission_params
    = self->handing_over ? self->handed_permission_params : NULL,
    .stream_seq = session_stream_reserve (self),
  };
}

/* ---- a test hook: record writes held back ----------------------------
 *
 * With AGENTBROKER_TEST_HOLD_RECORDS naming a file, no record write
 * starts while that file exists: the writes wait on the main loop, in
 * order, and go to the store once it is gone.  A test can so show that
 * nothing waiting for a record (a prompt, a TurnEnded) goes ahead
 * before the record is on disk, however fast the disk.  Unset, it costs
 * one getenv() at start.
 */

#define HOLD_POLL_MSEC 10

typedef struct
{
  char *store_dir;
  AbSessionRecord *record;
  PersistWait *wait;
} HeldWrite;

static GQueue held_writes = G_QUEUE_INIT;

/* The file named by AGENTBROKER_TEST_HOLD_RECORDS, or NULL. */
static const char *
hold_path (void)
{
  static const char *path;
  static gsize once;

  if (g_once_init_enter (&once))
    {
      path = g_strdup (g_getenv ("AGENTBROKER_TEST_HOLD_RECORDS"));
      g_once_init_leave (&once, 1);
    }
  return path;
}

static gboolean
on_hold_poll (gpointer user_data)
{
  HeldWrite *h;

  if (g_file_test (hold_path (), G_FILE_TEST_EXISTS))
    return G_SOURCE_CONTINUE;
  while ((h = g_queue_pop_head (&held_writes)) != NULL)
    {
      ab_store_save_async (h->store_dir, h->record, on_persisted, h->wait);
      g_free (h->store_dir);
      ab_session_record_free (h->record);
      g_free (h);
    }
  return G_SOURCE_REMOVE;
}

/* Whether the write of @record was held back (then @w waits for it). */
static gboolean
hold_write (const char *store_dir, const AbSessionRecord *record,
            PersistWait *w)
{
  g_autofree char *json = NULL;
  HeldWrite *h;

  if (hold_path () == NULL
      || (g_queue_is_empty (&held_writes)
          && !g_file_test (hold_path (), G_FILE_TEST_EXISTS)))
    return FALSE;
  json = ab_session_record_to_json (record);
  h = g_new0 (HeldWrite, 1);
  h->store_dir = g_strdup (store_dir);
  h->record = ab_session_record_parse (json, strlen (json), NULL);
  h->wait = w;
  g_assert (h->record != NULL);
  if (g_queue_is_empty (&held_writes))
    g_timeout_add (HOLD_POLL_MSEC, on_hold_poll, NULL);
  g_queue_push_tail (&held_writes, h);
  return TRUE;
}

/* Written at every change a restart must not lose (agentbrokerd(8)), on the
 * store's worker threads: the main loop does not wait for the disk. What
 * a client must not learn before the record says it (a turn running, a
 * turn ended) waits instead, in @then. */
void
session_persist_record (AbSession *self, const AbSessionRecord *record,
                        PersistedFunc then, gpointer data)
{
  PersistWait *w;

  if (self->store_dir == NULL)
    {
      if (then != NULL)
        then (self, data);
      return;
    }
  w = g_new0 (PersistWait, 1);
  w->self = g_object_ref (self);
  w->then = then;
  w->data = data;
  self->writes++;
  if (!hold_write (self->store_dir, record, w))
    ab_store_save_async (self->store_dir, record, on_persisted, w);
}

void
session_persist_then (AbSession *self, PersistedFunc then, gpointer data)
{
  AbSessionRecord record;

  session_fill_record (self, &record);
  session_persist_record (self, &record, then, data);
}

void
session_persist (AbSession *self)
{
  session_persist_then (self, NULL, NULL);
}

void
ab_session_persist (AbSession *self)
{
  session_persist (self);
}

/* The turn the previous instance was running when it ended, reported
 * once: to the first connection that prompts or watches. */
const AbStreamEvent *
ab_session_take_interrupted (AbSession *self)
{
  if (self->interrupted_turn == 0 || self->interrupted_reported)
    return NULL;
  self->interrupted_reported = TRUE;
  session_stream_turn_ended (
      self, self->interrupted_turn, "interrupted",
      _ ("agentbroker stopped while this turn was running"));
  session_persist (self);
  return g_queue_peek_tail (&self->replay);
}
