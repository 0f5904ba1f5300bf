/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — one session: its record on disk, written in order */
#include "config.h"

#include <string.h>

#include "acp-content.h"
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

/* ---- the queued prompts in the record ---------------------------------- */

/* One queued turn as the record keeps it. */
static JsonNode *
queued_turn_node (const AbTurn *turn)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "turn");
  json_builder_add_int_value (b, (gint64)turn->number);
  json_builder_set_member_name (b, "text");
  json_builder_add_string_value (b, turn->text);
  if (turn->content != NULL)
    {
      json_builder_set_member_name (b, "content");
      json_builder_add_value (b, json_node_copy (turn->content));
    }
  if (turn->sender != NULL)
    {
      json_builder_set_member_name (b, "sender");
      json_builder_add_string_value (b, turn->sender);
    }
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

/* The queue as the record keeps it, oldest first, as far as
 * AB_STORE_MAX_QUEUED_BYTES go (@kept: how many); NULL when empty.
 * Made again only when the queue changed. */
static JsonNode *
session_queued_node (AbSession *self, guint *kept)
{
  JsonArray *array;
  gsize bytes = 0;

  if (self->queued_dirty)
    {
      self->queued_dirty = FALSE;
      g_clear_pointer (&self->queued_node, json_node_unref);
      self->queued_kept = 0;
      array = json_array_new ();
      for (GList *l = self->queue.head; l != NULL; l = l->next)
        {
          JsonNode *node = queued_turn_node (l->data);
          g_autofree char *json = json_to_string (node, FALSE);

          bytes += strlen (json);
          if (bytes > AB_STORE_MAX_QUEUED_BYTES
              || self->queued_kept >= AB_STORE_MAX_QUEUED)
            {
              json_node_unref (node);
              break;
            }
          json_array_add_element (array, node);
          self->queued_kept++;
        }
      if (self->queued_kept > 0)
        self->queued_node = json_node_init_array (json_node_alloc (), array);
      json_array_unref (array);
    }
  if (kept != NULL)
    *kept = self->queued_kept;
  return self->queued_node;
}

/* At a restart: the prompts the record cannot hold end interrupted. */
void
session_drop_unrecorded_queue (AbSession *self)
{
  GQueue kept_turns = G_QUEUE_INIT;
  AbTurn *turn, *running;
  guint kept;

  session_queued_node (self, &kept);
  if (g_queue_get_length (&self->queue) <= kept)
    return;
  g_message ("session %s: %u queued prompts do not fit in its record; "
             "they end interrupted",
             self->thread, g_queue_get_length (&self->queue) - kept);
  /* The kept ones step aside while the rest is dropped. */
  for (guint i = 0; i < kept; i++)
    g_queue_push_tail (&kept_turns, g_queue_pop_head (&self->queue));
  /* Told now: the running turn they would wait for goes on in the next
   * instance. */
  running = g_steal_pointer (&self->current);
  session_drop_queue (self, "interrupted",
                      _ ("too many prompts were queued to hand them over "
                         "at agentbroker's restart"));
  self->current = running;
  while ((turn = g_queue_pop_tail (&kept_turns)) != NULL)
    g_queue_push_head (&self->queue, turn);
  session_notify_queued (self);
}

/* One queued prompt of a record, checked: NULL (with a warning) if it is
 * not one the earlier instance could have written after @after. */
static AbTurn *
queued_turn_from_node (AbSession *self, JsonNode *node, guint64 after,
                       guint64 turns)
{
  JsonObject *o;
  JsonNode *member;
  g_autoptr (JsonNode) content = NULL;
  const char *text, *sender = NULL;
  gint64 number;
  AbTurn *turn;

  if (!JSON_NODE_HOLDS_OBJECT (node))
    return NULL;
  o = json_node_get_object (node);
  member = json_object_get_member (o, "turn");
  if (member == NULL || !JSON_NODE_HOLDS_VALUE (member)
      || json_node_get_value_type (member) != G_TYPE_INT64)
    return NULL;
  number = json_node_get_int (member);
  member = json_object_get_member (o, "text");
  if (number <= (gint64)after || (guint64)number > turns || member == NULL
      || !JSON_NODE_HOLDS_VALUE (member)
      || json_node_get_value_type (member) != G_TYPE_STRING)
    return NULL;
  text = json_node_get_string (member);
  if (strlen (text) > AB_SESSION_MAX_PROMPT_BYTES
      || !g_utf8_validate (text, -1, NULL))
    return NULL;
  member = json_object_get_member (o, "sender");
  if (member != NULL)
    {
      if (!JSON_NODE_HOLDS_VALUE (member)
          || json_node_get_value_type (member) != G_TYPE_STRING
          || !g_dbus_is_unique_name (json_node_get_string (member)))
        return NULL;
      sender = json_node_get_string (member);
    }
  member = json_object_get_member (o, "content");
  if (member != NULL)
    {
      g_autofree char *json = json_to_string (member, FALSE);
      g_autofree char *ignored = NULL;

      /* The same checks as PromptContent()'s. */
      content = ab_acp_content_parse (json, strlen (json), 0, &ignored, NULL);
      if (content == NULL)
        return NULL;
    }
  turn = g_new0 (AbTurn, 1);
  turn->number = (guint64)number;
  turn->text = g_strdup (text);
  turn->content = g_steal_pointer (&content);
  turn->sender = g_strdup (sender);
  g_queue_init (&turn->dropped);
  return turn;
}

/* The prompts an earlier instance had queued, queued again; they start
 * once the daemon owns its bus name (ab_session_go_on()). */
void
session_take_queued (AbSession *self, const AbSessionRecord *record)
{
  JsonArray *array;
  guint64 after = MAX (record->last_turn, record->running_turn);

  if (record->queued == NULL)
    return;
  array = json_node_get_array (record->queued);
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      AbTurn *turn = queued_turn_from_node (
          self, json_array_get_element (array, i), after, record->turns);

      if (turn == NULL)
        {
          g_warning ("session %s: queued prompt %u of its record is not "
                     "valid; it and those after it are not run",
                     self->thread, i + 1);
          break;
        }
      after = turn->number;
      g_queue_push_tail (&self->queue, turn);
    }
  session_notify_queued (self);
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
    .title = self->title,
    .running_turn = self->current != NULL ? self->current->number : 0,
    .running_text = self->current != NULL ? self->current->text : NULL,
    .interrupted_turn = self->interrupted_turn,
    .interrupted_reported = self->interrupted_reported,
    .handed_over = self->handing_over && self->current != NULL,
    .running_rpc_id = self->handing_over ? self->handed_rpc_id : 0,
    .running_sender = self->handing_over && self->current != NULL
                          ? self->current->sender
                          : NULL,
    .permissions = self->handing_over ? self->handed_permissions : NULL,
    .stream_seq = session_stream_reserve (self),
    .queued = session_queued_node (self, NULL),
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
