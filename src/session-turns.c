/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — one session: turns, their queue, the stream and permissions */
#include "config.h"

#include <string.h>

#include "json-text.h"
#include "session-private.h"

/* ---- the stream ------------------------------------------------------ */

/* The title of a session_info_update (ACP: a string, or null to clear
 * it), kept cut to AB_SESSION_MAX_TITLE_BYTES.  Other updates pass by
 * with a search of their text. */
static void
note_title (AbSession *self, const char *json)
{
  g_autoptr (JsonParser) parser = NULL;
  g_autoptr (JsonNode) root = NULL;
  JsonObject *update;
  JsonNode *title;
  g_autofree char *old = NULL;

  if (json == NULL || strstr (json, "session_info_update") == NULL)
    return;
  parser = json_parser_new ();
  root = ab_json_parse_untrusted (parser, json, strlen (json), NULL);
  update = root != NULL && JSON_NODE_HOLDS_OBJECT (root)
               ? json_node_get_object (root)
               : NULL;
  if (update == NULL
      || g_strcmp0 (json_object_get_string_member_with_default (
                        update, "sessionUpdate", NULL),
                    "session_info_update")
             != 0
      || (title = json_object_get_member (update, "title")) == NULL)
    return;
  old = g_steal_pointer (&self->title);
  if (JSON_NODE_HOLDS_VALUE (title)
      && json_node_get_value_type (title) == G_TYPE_STRING)
    {
      const char *text = json_node_get_string (title);
      gsize len = strlen (text);

      if (len > AB_SESSION_MAX_TITLE_BYTES)
        len = (gsize)(g_utf8_find_prev_char (
                          text, text + AB_SESSION_MAX_TITLE_BYTES + 1)
                      - text);
      self->title = g_strndup (text, len);
    }
  /* Kept in the record, so that a restart keeps it too: now during a
   * turn, else with the next record (one written now would not name a
   * prompt waiting for the agent). */
  if (g_strcmp0 (old, self->title) != 0 && self->current != NULL)
    session_persist (self);
}

void
session_flush_updates (AbSession *self)
{
  g_autoptr (GPtrArray) batch = NULL;
  const char *sender = NULL;
  guint64 seq;

  g_clear_handle_id (&self->flush_source, g_source_remove);
  if (self->pending_updates->len == 0)
    return;

  batch = g_steal_pointer (&self->pending_updates);
  self->pending_updates = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < batch->len; i++)
    note_title (self, batch->pdata[i]);
  g_ptr_array_add (batch, NULL);
  if (self->current != NULL && self->current->number == self->pending_turn)
    sender = self->current->sender;
  if (self->transcript != NULL)
    ab_transcript_add_updates (self->transcript, self->pending_turn,
                               (const char *const *)batch->pdata,
                               self->config->transcript_bytes);
  seq = session_stream_update (self, self->pending_turn,
                               (const char *const *)batch->pdata);
  g_signal_emit (self, session_signals[SIGNAL_UPDATE], 0, self->pending_turn,
                 (const char *const *)batch->pdata, sender, seq);
}

static gboolean
on_flush (gpointer user_data)
{
  AbSession *self = user_data;

  self->flush_source = 0;
  session_flush_updates (self);
  return G_SOURCE_REMOVE;
}

/* Updates of one turn leave together (@json: transfer full): the
 * caller flushes them. */
void
session_queue_update (AbSession *self, guint64 turn, char *json)
{
  if (self->pending_updates->len > 0 && self->pending_turn != turn)
    session_flush_updates (self);
  self->pending_turn = turn;
  g_ptr_array_add (self->pending_updates, json);
}

/* An update of the broker's own leaves on the next turn of the loop. */
static void
queue_update_soon (AbSession *self, guint64 turn, char *json)
{
  session_queue_update (self, turn, json);
  if (self->flush_source == 0)
    self->flush_source
        = g_idle_add_full (G_PRIORITY_DEFAULT, on_flush, self, NULL);
}

/* ---- permissions ----------------------------------------------------- */

static void
answer_permission (AbSession *self, PendingPermission *p, const char *option)
{
  if (self->conn != NULL)
    ab_acp_connection_answer_permission (self->conn, p->rpc_id, option);
  g_hash_table_remove (self->permissions, p->id);
}

static void
deny_permission (AbSession *self, PendingPermission *p)
{
  g_autofree char *reject
      = ab_acp_permission_pick (p->params, AB_PERMISSIONS_DENY);

  /* After a cancel the protocol asks for "cancelled", not a choice. */
  answer_permission (self, p, self->cancel_reason != NULL ? NULL : reject);
}

void
session_deny_all_permissions (AbSession *self)
{
  GHashTableIter iter;
  gpointer value;
  g_autoptr (GPtrArray) all = g_ptr_array_new ();

  g_hash_table_iter_init (&iter, self->permissions);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (all, value);
  for (guint i = 0; i < all->len; i++)
    deny_permission (self, g_ptr_array_index (all, i));
}

static gboolean
on_permission_timeout (gpointer user_data)
{
  PendingPermission *p = user_data;

  p->timeout_source = 0;
  g_message ("session %s: permission request %s not answered in time; "
             "denied",
             p->session->thread, p->id);
  deny_permission (p->session, p);
  return G_SOURCE_REMOVE;
}

void
session_on_permission_request (AbAcpConnection *conn, JsonNode *id,
                               JsonNode *params, AbSession *self)
{
  const AbAgentProfile *prof = session_profile (self);
  AbPermissions policy = prof != NULL ? prof->permissions : AB_PERMISSIONS_DENY;
  PendingPermission *p;
  g_autofree char *json = NULL;
  guint64 seq;

  /* An agent asking faster than anyone answers is denied at once, as
   * "permissions: deny" would, rather than piling up questions. */
  if (policy == AB_PERMISSIONS_ASK && self->current != NULL
      && self->cancel_reason == NULL
      && g_hash_table_size (self->permissions)
             >= AB_SESSION_MAX_PENDING_PERMISSIONS)
    {
      if (self->permissions_over_cap++ == 0)
        g_message ("session %s: more than %u permission requests pending; "
                   "denying the rest of turn %" G_GUINT64_FORMAT,
                   self->thread, AB_SESSION_MAX_PENDING_PERMISSIONS,
                   self->current->number);
      policy = AB_PERMISSIONS_DENY;
    }

  if (self->current == NULL || self->cancel_reason != NULL
      || policy != AB_PERMISSIONS_ASK)
    {
      g_autofree char *pick = NULL;

      if (self->current != NULL && self->cancel_reason == NULL)
        pick = ab_acp_permission_pick (params, policy);
      ab_acp_connection_answer_permission (conn, id, pick);
      return;
    }

  p = g_new0 (PendingPermission, 1);
  p->session = self;
  p->id = g_strdup_printf ("%u", ++self->permission_counter);
  p->rpc_id = json_node_ref (id);
  p->params = json_node_ref (params);
  p->turn = self->current->number;
  p->timeout_source
      = g_timeout_add (MAX (self->config->permission_timeout_usec / 1000, 1),
                       on_permission_timeout, p);
  g_hash_table_insert (self->permissions, p->id, p);

  /* Updates sent before the question belong before it. */
  session_flush_updates (self);
  json = json_to_string (params, FALSE);
  seq = session_stream_permission (self, p->turn, p->id, json);
  g_signal_emit (self, session_signals[SIGNAL_PERMISSION_REQUESTED], 0, p->turn,
                 p->id, json, self->current->sender, seq);
}

static gint
compare_permission_ids (gconstpointer a, gconstpointer b)
{
  guint64 x = g_ascii_strtoull ((*(PendingPermission **)a)->id, NULL, 10);
  guint64 y = g_ascii_strtoull ((*(PendingPermission **)b)->id, NULL, 10);

  return x < y ? -1 : x > y;
}

/* At a restart: the requests waiting for an answer go to the next
 * instance with the turn (the agent still waits for them), unanswered,
 * in the order they came. */
void
session_hand_over_permissions (AbSession *self)
{
  g_autoptr (GPtrArray) all = g_ptr_array_new ();
  g_autoptr (JsonBuilder) b = json_builder_new ();
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, self->permissions);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (all, value);
  if (all->len == 0)
    return;
  g_ptr_array_sort (all, compare_permission_ids);
  json_builder_begin_array (b);
  for (guint i = 0; i < all->len; i++)
    {
      PendingPermission *p = g_ptr_array_index (all, i);
      g_autofree char *rpc_id = json_to_string (p->rpc_id, FALSE);
      g_autofree char *params = json_to_string (p->params, FALSE);

      json_builder_begin_object (b);
      json_builder_set_member_name (b, "rpc_id");
      json_builder_add_string_value (b, rpc_id);
      json_builder_set_member_name (b, "params");
      json_builder_add_string_value (b, params);
      json_builder_end_object (b);
      g_hash_table_remove (self->permissions, p->id);
    }
  json_builder_end_array (b);
  g_clear_pointer (&self->handed_permissions, json_node_unref);
  self->handed_permissions = json_builder_get_root (b);
}

/* One request handed over, asked again; FALSE if it is unreadable. */
static gboolean
ask_handed_permission (AbSession *self, JsonNode *handed)
{
  g_autoptr (JsonParser) id_parser = json_parser_new ();
  g_autoptr (JsonParser) params_parser = json_parser_new ();
  const char *id_json, *params_json;
  JsonNode *id, *params;
  JsonObject *o;

  if (!JSON_NODE_HOLDS_OBJECT (handed))
    return FALSE;
  o = json_node_get_object (handed);
  id_json = json_object_get_string_member_with_default (o, "rpc_id", NULL);
  params_json = json_object_get_string_member_with_default (o, "params", NULL);
  if (id_json == NULL || params_json == NULL || strlen (id_json) > 256
      || strlen (params_json) > 1024 * 1024)
    return FALSE;
  id = ab_json_parse_untrusted (id_parser, id_json, strlen (id_json), NULL);
  params = ab_json_parse_untrusted (params_parser, params_json,
                                    strlen (params_json), NULL);
  if (id == NULL || params == NULL || JSON_NODE_HOLDS_OBJECT (id)
      || JSON_NODE_HOLDS_ARRAY (id) || !JSON_NODE_HOLDS_OBJECT (params))
    return FALSE;
  session_on_permission_request (self->conn, id, params, self);
  return TRUE;
}

/* The requests handed over are asked again, of the prompter, once the
 * clients can hear this instance. */
void
session_ask_handed_permissions (AbSession *self)
{
  g_autoptr (JsonNode) handed = g_steal_pointer (&self->handed_permissions);
  JsonArray *array;

  if (handed == NULL || self->conn == NULL || !JSON_NODE_HOLDS_ARRAY (handed))
    return;
  array = json_node_get_array (handed);
  for (guint i = 0; i < json_array_get_length (array); i++)
    if (!ask_handed_permission (self, json_array_get_element (array, i)))
      g_warning ("session %s: permission request %u handed over is "
                 "unreadable; it stays unanswered",
                 self->thread, i + 1);
}

gboolean
ab_session_answer_permission (AbSession *self, const char *request,
                              const char *option, GError **error)
{
  PendingPermission *p = g_hash_table_lookup (self->permissions, request);

  if (p == NULL)
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("session %s has no pending permission request '%s'"),
                   self->thread, request);
      return FALSE;
    }
  if (option[0] == '\0')
    {
      deny_permission (self, p);
      return TRUE;
    }
  if (!ab_acp_permission_has_option (p->params, option))
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("permission request '%s' of session %s has no option "
                      "'%s'"),
                   request, self->thread, option);
      return FALSE;
    }
  answer_permission (self, p, option);
  return TRUE;
}

/* ---- turns ------------------------------------------------------------ */

/* The old agent goes; queued prompts start the new one. */
void
session_switch_agent (AbSession *self)
{
  self->restart_pending = FALSE;
  session_teardown (self, AB_SESSION_STATE_SUSPENDED);
}

/* Tells the end of queued turns that never started, and frees them. */
static void
emit_dropped (AbSession *self, GQueue *turns)
{
  AbTurn *turn;

  while ((turn = g_queue_pop_head (turns)) != NULL)
    {
      guint64 seq = session_stream_turn_ended (self, turn->number, turn->reason,
                                               turn->message);

      g_signal_emit (self, session_signals[SIGNAL_TURN_ENDED], 0, turn->number,
                     turn->reason, turn->message, turn->sender, (gint64)-1,
                     seq);
      session_turn_free (turn);
    }
}

/* The record says the turn ended: now its end is told, then those of the
 * queued turns dropped meanwhile, and the session is idle (unless
 * something else happened to it meanwhile). */
static void
on_turn_end_written (AbSession *self, gpointer data)
{
  AbTurn *turn = g_queue_pop_head (&self->endings);
  guint64 seq;

  g_debug ("session %s: turn %" G_GUINT64_FORMAT " ended: %s%s%s", self->thread,
           turn->number, turn->reason, turn->message[0] ? ": " : "",
           turn->message);
  seq = session_stream_turn_ended (self, turn->number, turn->reason,
                                   turn->message);
  g_signal_emit (self, session_signals[SIGNAL_TURN_ENDED], 0, turn->number,
                 turn->reason, turn->message, turn->sender, turn->duration,
                 seq);
  emit_dropped (self, &turn->dropped);
  session_turn_free (turn);

  if (self->state == AB_SESSION_STATE_BUSY && self->current == NULL)
    session_set_state (self, AB_SESSION_STATE_IDLE);
  else
    session_notify_queued (self); /* busy no more: the pool counts again */
  if (self->restart_pending)
    {
      /* An agent already going takes the old profile with it. */
      if (self->conn != NULL)
        session_switch_agent (self);
      else
        self->restart_pending = FALSE;
    }
  session_schedule_kick (self);
}

void
session_end_turn (AbSession *self, const char *reason, const char *message)
{
  AbTurn *turn = self->current;

  if (turn == NULL)
    return;

  /* Its updates go first; its end once the record says so. */
  session_flush_updates (self);
  session_deny_all_permissions (self);
  if (self->permissions_over_cap > 0)
    g_message ("session %s: turn %" G_GUINT64_FORMAT " had %" G_GUINT64_FORMAT
               " permission requests denied over the limit of %u pending",
               self->thread, turn->number, self->permissions_over_cap,
               AB_SESSION_MAX_PENDING_PERMISSIONS);
  self->permissions_over_cap = 0;
  g_clear_handle_id (&self->grace_source, g_source_remove);
  g_clear_handle_id (&self->inactivity_source, g_source_remove);
  self->current = NULL;
  self->cancel_reason = NULL;
  self->last_turn = turn->number;
  g_free (self->last_reason);
  self->last_reason = g_strdup (reason);
  turn->duration = g_get_monotonic_time () - turn->started;
  turn->reason = g_strdup (reason);
  turn->message = g_strdup (message);
  /* Exact at every turn's end, however quick the turn: touch() notifies
   * only when the second changes. */
  self->last_activity = g_get_real_time ();
  g_object_notify_by_pspec (G_OBJECT (self), session_props[PROP_LAST_ACTIVITY]);
  g_object_notify_by_pspec (G_OBJECT (self), session_props[PROP_LAST_TURN]);
  g_object_notify_by_pspec (G_OBJECT (self), session_props[PROP_LAST_REASON]);
  /* Callbacks come in the order of the writes. */
  g_queue_push_tail (&self->endings, turn);
  session_persist_then (self, on_turn_end_written, NULL);
}

/* Queued turns end without having started. They are told after the turn
 * still running (once it ends) or whose end is still being written, so
 * clients see the turns end in order. */
void
session_drop_queue (AbSession *self, const char *reason, const char *message)
{
  AbTurn *before = self->current;
  GQueue now = G_QUEUE_INIT;
  AbTurn *turn;

  if (g_queue_is_empty (&self->queue))
    return;
  if (before == NULL)
    before = g_queue_peek_tail (&self->endings);
  while ((turn = g_queue_pop_head (&self->queue)) != NULL)
    {
      if (turn->number == self->waiting_turn)
        session_forget_waiting_prompt (self);
      g_free (turn->reason);
      turn->reason = g_strdup (reason);
      g_free (turn->message);
      turn->message = g_strdup (message);
      g_queue_push_tail (before != NULL ? &before->dropped : &now, turn);
    }
  session_notify_queued (self);
  emit_dropped (self, &now);
}

static void
on_prompt_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AbSession) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autofree char *reason = ab_acp_connection_prompt_finish (
      AB_ACP_CONNECTION (source), result, &error);

  /* From an agent that is gone, or a turn already ended; a failed
   * connection is reported once, as the agent lost. */
  if (AB_ACP_CONNECTION (source) != self->conn || self->current == NULL)
    return;
  if (reason == NULL)
    {
      if (g_error_matches (error, AB_ACP_CONNECTION_ERROR,
                           AB_ACP_CONNECTION_ERROR_REFUSED))
        session_end_turn (self,
                          self->cancel_reason != NULL ? self->cancel_reason
                                                      : "agent-error",
                          error->message);
      return;
    }
  session_end_turn (
      self, self->cancel_reason != NULL ? self->cancel_reason : reason, "");
}

static gboolean
on_grace_expired (gpointer user_data)
{
  AbSession *self = user_data;
  const char *reason = self->cancel_reason;

  self->grace_source = 0;
  g_message ("session %s: the agent did not stop turn %" G_GUINT64_FORMAT
             " within %s; stopping it",
             self->thread, self->current != NULL ? self->current->number : 0,
             "timeouts.kill");
  session_end_turn (self, reason != NULL ? reason : "cancelled",
                    _ ("the agent did not stop in time and was stopped"));
  session_teardown (self, AB_SESSION_STATE_SUSPENDED);
  return G_SOURCE_REMOVE;
}

/* Asks the agent to stop the turn in flight; it answers the prompt with
 * stopReason "cancelled", or is stopped after timeouts.kill. */
void
session_cut_turn (AbSession *self, const char *reason)
{
  if (self->current == NULL || self->cancel_reason != NULL)
    return;

  /* A prompt not sent yet (its record is still being written) never will
   * be: the turn ends now, and the agent, which never saw it, stays. */
  if (!self->current->prompt_sent)
    {
      session_end_turn (self, reason, "");
      return;
    }
  self->cancel_reason = reason;
  session_deny_all_permissions (self);
  if (self->conn != NULL)
    ab_acp_connection_cancel (self->conn);
  self->grace_source = g_timeout_add (
      MAX (self->config->kill_timeout_usec / 1000, 1), on_grace_expired, self);
}

static gboolean
on_inactivity (gpointer user_data)
{
  AbSession *self = user_data;
  gint64 limit = self->config->turn_inactivity_usec;
  gint64 quiet = g_get_monotonic_time () - self->last_progress;

  if (quiet < limit)
    {
      /* Progress since: look again when the limit would be reached. */
      g_source_set_ready_time (g_main_current_source (),
                               self->last_progress + limit);
      return G_SOURCE_CONTINUE;
    }
  self->inactivity_source = 0;
  g_message ("session %s: no update for %s; cancelling the turn", self->thread,
             "timeouts.turn_inactivity");
  session_cut_turn (self, "timeout");
  return G_SOURCE_REMOVE;
}

/* The record names the turn in flight, so a crash from now on reports it
 * interrupted: the agent gets the prompt. */
static void
send_prompt (AbSession *self)
{
  AbTurn *turn = self->current;
  JsonNode *prompt;

  if (self->cancel_reason != NULL)
    {
      session_end_turn (self, self->cancel_reason, "");
      return;
    }
  turn->prompt_sent = TRUE;
  if (self->history_lost)
    {
      self->history_lost = FALSE;
      queue_update_soon (self, turn->number,
                         ab_acp_text_update (_ ("[agentbroker: the agent "
                                                "could not restore this "
                                                "conversation; it starts "
                                                "afresh]\n")));
    }

  prompt = turn->content != NULL ? json_node_copy (turn->content)
                                 : ab_acp_text_prompt (turn->text);
  if (self->transcript != NULL && self->config->transcript_bytes > 0)
    {
      g_autofree char *content = json_to_string (prompt, FALSE);

      ab_transcript_add_prompt (self->transcript, turn->number, content,
                                self->config->transcript_bytes);
    }
  ab_acp_connection_prompt_async (self->conn, prompt, on_prompt_done,
                                  g_object_ref (self));
}

/* A record naming turns up to @number as running is on disk. */
static void
running_recorded (AbSession *self, guint64 number)
{
  AbTurn *turn = self->current;

  self->running_recorded = MAX (self->running_recorded, number);
  if (turn != NULL && !turn->prompt_sent
      && turn->number <= self->running_recorded && self->conn != NULL)
    send_prompt (self);
}

static void
on_turn_start_written (AbSession *self, gpointer data)
{
  running_recorded (self, GPOINTER_TO_SIZE (data));
}

static void
on_waiting_prompt_written (AbSession *self, gpointer data)
{
  if (GPOINTER_TO_UINT (data) == self->waiting_seq && self->waiting_turn != 0)
    running_recorded (self, self->waiting_turn);
}

/* The first prompt waiting for its agent to start will be the next turn:
 * the record names it running now, so that this write overlaps the
 * agent's start-up instead of following it. A crash meanwhile reports
 * that prompt interrupted, as it would a moment later. */
void
session_record_waiting_prompt (AbSession *self, const char *text)
{
  AbSessionRecord record;

  session_fill_record (self, &record);
  self->waiting_turn = self->turns + 1;
  self->waiting_seq++;
  record.turns = self->waiting_turn;
  record.running_turn = self->waiting_turn;
  record.running_text = (char *)text;
  session_persist_record (self, &record, on_waiting_prompt_written,
                          GUINT_TO_POINTER (self->waiting_seq));
}

/* That prompt will not run: the record is written again without it. */
void
session_forget_waiting_prompt (AbSession *self)
{
  self->waiting_turn = 0;
  self->waiting_seq++;
  /* Numbers above turns were never accepted, and will be again. */
  self->running_recorded = MIN (self->running_recorded, self->turns);
  session_persist (self);
}

/* The turn the previous instance handed over goes on: its prompt is the
 * agent's, in flight; its answer ends it here. */
void
session_adopt_turn (AbSession *self)
{
  AbTurn *turn = g_new0 (AbTurn, 1);

  turn->number = self->handed_turn;
  turn->text = g_steal_pointer (&self->handed_text);
  turn->sender = g_steal_pointer (&self->handed_sender);
  turn->started = g_get_monotonic_time ();
  turn->prompt_sent = TRUE;
  g_queue_init (&turn->dropped);
  self->current = turn;
  self->handed_turn = 0;
  self->running_recorded = MAX (self->running_recorded, turn->number);
  self->cancel_reason = NULL;
  session_set_state (self, AB_SESSION_STATE_BUSY);
  self->last_progress = g_get_monotonic_time ();
  self->inactivity_source = g_timeout_add (
      MAX (self->config->turn_inactivity_usec / 1000, 1), on_inactivity, self);
  g_message ("session %s: turn %" G_GUINT64_FORMAT " goes on where the "
             "previous instance left it",
             self->thread, turn->number);
  ab_acp_connection_adopt_prompt_async (self->conn, self->handed_rpc_id,
                                        on_prompt_done, g_object_ref (self));
  self->handed_rpc_id = 0;
}

static void
start_turn (AbSession *self)
{
  AbTurn *turn = g_queue_pop_head (&self->queue);

  /* Current before anyone hears of the shorter queue: the session never
   * looks idle between the two, or a drain waiting for it would end. */
  self->current = turn;
  session_notify_queued (self);
  turn->started = g_get_monotonic_time ();
  self->cancel_reason = NULL;
  session_set_state (self, AB_SESSION_STATE_BUSY);
  session_touch (self);
  self->last_progress = g_get_monotonic_time ();
  self->inactivity_source = g_timeout_add (
      MAX (self->config->turn_inactivity_usec / 1000, 1), on_inactivity, self);
  session_persist_then (self, on_turn_start_written,
                        GSIZE_TO_POINTER ((gsize)turn->number));
  /* Already named running while the agent started: no need to wait. */
  if (turn->number <= self->running_recorded)
    send_prompt (self);
  if (!turn->prompt_sent)
    g_debug ("session %s: turn %" G_GUINT64_FORMAT " waits for its record "
             "before the prompt goes out",
             self->thread, turn->number);
}

static gboolean
on_kick (gpointer user_data)
{
  AbSession *self = user_data;

  self->kick_source = 0;
  if (g_queue_is_empty (&self->queue) && g_queue_is_empty (&self->waiters))
    return G_SOURCE_REMOVE;

  switch (self->state)
    {
    case AB_SESSION_STATE_IDLE:
      start_turn (self);
      break;
    case AB_SESSION_STATE_SUSPENDED:
    case AB_SESSION_STATE_FAILED:
      if (self->closing == NULL)
        session_start_agent (self);
      break;
    case AB_SESSION_STATE_STARTING:
    case AB_SESSION_STATE_BUSY:
      break;
    }
  return G_SOURCE_REMOVE;
}

/* At the priority of agent output, so a session streaming flat out does
 * not hold back other sessions' turns. A prompt's reply still precedes
 * the turn's signals: those only come from the agent's answer to
 * session/prompt, read on a later pass of the main loop. */
void
session_schedule_kick (AbSession *self)
{
  if (self->kick_source == 0)
    self->kick_source
        = g_idle_add_full (G_PRIORITY_DEFAULT, on_kick, self, NULL);
}

guint64
session_accept_turn (AbSession *self, const char *text, JsonNode *content,
                     const char *sender)
{
  AbTurn *turn = g_new0 (AbTurn, 1);

  turn->number = ++self->turns;
  turn->text = g_strdup (text);
  turn->content = content != NULL ? json_node_ref (content) : NULL;
  turn->sender = g_strdup (sender);
  g_queue_push_tail (&self->queue, turn);
  g_object_notify_by_pspec (G_OBJECT (self), session_props[PROP_TURNS]);
  session_notify_queued (self);
  /* Queued behind a running turn: on disk, so that a restart or a crash
   * runs it all the same.  Without one, the turn about to start writes
   * the queue with it; a record written now would not name the prompt
   * that may be waiting for the agent (session_record_waiting_prompt()),
   * which the agent may see meanwhile. */
  if (self->current != NULL)
    session_persist (self);
  session_schedule_kick (self);
  return turn->number;
}
