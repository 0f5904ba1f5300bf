/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — one session
 *
 * A conversation thread bound to one ACP agent process (agentbrokerd(8)):
 * the FIFO of prompts, the turn in flight, the order of records and
 * messages, the permission policy, and the agent's death. The agent is
 * started by an AbAgentLauncher, which returns the AbAcpConnection that
 * speaks ACP to it; here its updates, questions and loss are only
 * interpreted.
 *
 * States: starting → idle ⇄ busy → suspended | failed. Signals carry the
 * stream to the D-Bus adapter together with the unique name of the
 * connection that sent the prompt.
 */
#include "config.h"

#include <string.h>

#include <glib/gstdio.h>

#include "session-private.h"
#include "thread-id.h"

GParamSpec *session_props[N_PROPS];
guint session_signals[N_SIGNALS];

G_DEFINE_TYPE (AbSession, ab_session, G_TYPE_OBJECT)

static const char *const state_names[] = {
  [AB_SESSION_STATE_STARTING] = "starting",
  [AB_SESSION_STATE_IDLE] = "idle",
  [AB_SESSION_STATE_BUSY] = "busy",
  [AB_SESSION_STATE_SUSPENDED] = "suspended",
  [AB_SESSION_STATE_FAILED] = "failed",
};

const char *
ab_session_state_to_string (AbSessionState state)
{
  g_return_val_if_fail (state < G_N_ELEMENTS (state_names), "unknown");
  return state_names[state];
}

void
session_turn_free (AbTurn *turn)
{
  g_queue_clear_full (&turn->dropped, (GDestroyNotify)session_turn_free);
  g_free (turn->text);
  g_clear_pointer (&turn->content, json_node_unref);
  g_free (turn->sender);
  g_free (turn->reason);
  g_free (turn->message);
  g_free (turn);
}

void
session_waiter_free (StartWaiter *waiter)
{
  g_clear_object (&waiter->task);
  g_free (waiter->text);
  g_clear_pointer (&waiter->content, json_node_unref);
  g_free (waiter->sender);
  g_free (waiter);
}

static void
permission_free (PendingPermission *p)
{
  g_clear_handle_id (&p->timeout_source, g_source_remove);
  g_free (p->id);
  json_node_unref (p->rpc_id);
  json_node_unref (p->params);
  g_free (p);
}

/* ---- properties ----------------------------------------------------- */

void
session_set_state (AbSession *self, AbSessionState state)
{
  if (self->state == state)
    return;
  g_debug ("session %s: %s → %s", self->thread,
           ab_session_state_to_string (self->state),
           ab_session_state_to_string (state));
  self->state = state;
  g_object_notify_by_pspec (G_OBJECT (self), session_props[PROP_STATE]);
}

/* Activity is shown in seconds: notifying it for every streamed update
 * would cost a PropertiesChanged per update. */
void
session_touch (AbSession *self)
{
  gint64 now = g_get_real_time ();
  gboolean visible
      = now / G_USEC_PER_SEC != self->last_activity / G_USEC_PER_SEC;

  self->last_activity = now;
  if (visible)
    g_object_notify_by_pspec (G_OBJECT (self),
                              session_props[PROP_LAST_ACTIVITY]);
}

void
session_notify_queued (AbSession *self)
{
  self->queued_dirty = TRUE; /* the record's copy is made again */
  g_object_notify_by_pspec (G_OBJECT (self), session_props[PROP_QUEUED]);
}

guint
session_get_pid (AbSession *self)
{
  return self->conn != NULL ? ab_acp_connection_get_pid (self->conn) : 0;
}

const AbAgentProfile *
session_profile (AbSession *self)
{
  return ab_config_lookup_agent (self->config, self->agent);
}

/* ---- public ---------------------------------------------------------- */

void
ab_session_set_launcher (AbSession *self, AbAgentLauncher *launcher)
{
  g_return_if_fail (AB_IS_SESSION (self));
  g_return_if_fail (AB_IS_AGENT_LAUNCHER (launcher));

  g_set_object (&self->launcher, launcher);
}

void
ab_session_prompt_async (AbSession *self, const char *text, const char *sender,
                         GAsyncReadyCallback callback, gpointer user_data)
{
  ab_session_prompt_content_async (self, text, NULL, sender, callback,
                                   user_data);
}

void
ab_session_prompt_content_async (AbSession *self, const char *text,
                                 JsonNode *content, const char *sender,
                                 GAsyncReadyCallback callback,
                                 gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (self, NULL, callback, user_data);
  guint queued
      = g_queue_get_length (&self->queue) + g_queue_get_length (&self->waiters);
  gboolean occupied
      = self->current != NULL || self->state == AB_SESSION_STATE_STARTING;
  StartWaiter *waiter;

  if (occupied && queued >= self->config->max_queued_prompts)
    {
      g_task_return_new_error (task, AB_ERROR, AB_ERROR_BUSY,
                               _ ("session %s already has %u prompts queued "
                                  "(pool.max_queued_prompts)"),
                               self->thread, queued);
      return;
    }

  if (self->conn != NULL && self->state != AB_SESSION_STATE_STARTING)
    {
      guint64 turn = session_accept_turn (self, text, content, sender);
      g_task_return_pointer (task, g_memdup2 (&turn, sizeof turn), g_free);
      return;
    }

  waiter = g_new0 (StartWaiter, 1);
  waiter->task = g_steal_pointer (&task);
  waiter->text = g_strdup (text);
  waiter->content = content != NULL ? json_node_ref (content) : NULL;
  waiter->sender = g_strdup (sender);
  g_queue_push_tail (&self->waiters, waiter);
  session_notify_queued (self);
  if (self->state != AB_SESSION_STATE_STARTING && self->closing == NULL)
    session_start_agent (self);
  /* The first prompt to wait for the agent is the next turn. */
  if (self->state == AB_SESSION_STATE_STARTING
      && g_queue_get_length (&self->waiters) == 1
      && g_queue_is_empty (&self->queue) && self->current == NULL)
    session_record_waiting_prompt (self, text);
}

static void
on_agent_called (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  AbSession *self = g_task_get_source_object (task);
  g_autoptr (GError) error = NULL;
  JsonNode *reply = ab_acp_connection_session_call_finish (
      AB_ACP_CONNECTION (source), result, &error);

  if (reply != NULL)
    g_task_return_pointer (task, reply, (GDestroyNotify)json_node_unref);
  else
    g_task_return_new_error (
        task, AB_ERROR,
        g_error_matches (error, AB_ACP_CONNECTION_ERROR,
                         AB_ACP_CONNECTION_ERROR_REFUSED)
            ? AB_ERROR_AGENT_FAILED
            : AB_ERROR_FAILED,
        _ ("the agent of session %s did not do %s: %s"), self->thread,
        (const char *)g_task_get_task_data (task), error->message);
}

void
ab_session_agent_call_async (AbSession *self, const char *method,
                             JsonObject *params, GAsyncReadyCallback callback,
                             gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (self, NULL, callback, user_data);

  g_task_set_task_data (task, g_strdup (method), g_free);
  if (self->conn == NULL || self->state == AB_SESSION_STATE_STARTING)
    {
      json_object_unref (params);
      g_task_return_new_error (task, AB_ERROR, AB_ERROR_FAILED,
                               _ ("session %s has no agent running; prompt "
                                  "it first"),
                               self->thread);
      return;
    }
  ab_acp_connection_session_call_async (
      self->conn, method, params, on_agent_called, g_steal_pointer (&task));
}

JsonNode *
ab_session_agent_call_finish (AbSession *self, GAsyncResult *result,
                              GError **error)
{
  return g_task_propagate_pointer (G_TASK (result), error);
}

gboolean
ab_session_prompt_finish (AbSession *self, GAsyncResult *result, guint64 *turn,
                          GError **error)
{
  g_autofree guint64 *value = g_task_propagate_pointer (G_TASK (result), error);

  if (value == NULL)
    return FALSE;
  *turn = *value;
  return TRUE;
}

/* Drain: questions to the operator cannot hold it up. */
void
ab_session_deny_permissions (AbSession *self)
{
  session_deny_all_permissions (self);
}

/* Drain deadline: the turn in flight is cut and the queued ones dropped,
 * all reported interrupted; prompts waiting for the agent are refused. */
guint
ab_session_interrupt (AbSession *self, const GError *refusal, guint *refused)
{
  guint turns = g_queue_get_length (&self->queue)
                + (self->current != NULL && self->cancel_reason == NULL);

  *refused = g_queue_get_length (&self->waiters);
  session_refuse_waiters (self, refusal->code, refusal->message);
  session_drop_queue (self, "interrupted", _ ("interrupted before it started"));
  session_cut_turn (self, "interrupted");
  return turns;
}

void
ab_session_cancel (AbSession *self)
{
  session_drop_queue (self, "cancelled", _ ("cancelled before it started"));
  session_cut_turn (self, "cancelled");
}

void
ab_session_suspend_async (AbSession *self, const char *reason,
                          GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (self, NULL, callback, user_data);

  g_ptr_array_add (self->suspend_tasks, task);
  if (self->current != NULL && self->conn != NULL)
    ab_acp_connection_cancel (self->conn);
  session_fail_waiters (self, reason);
  session_end_turn (self, "cancelled", reason);
  session_drop_queue (self, "cancelled", reason);
  if (self->conn != NULL)
    session_teardown (self, AB_SESSION_STATE_SUSPENDED);
  else if (self->closing == NULL)
    session_finish_suspends (self);
}

gboolean
ab_session_suspend_finish (AbSession *self, GAsyncResult *result,
                           GError **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

void
ab_session_detach_agent (AbSession *self)
{
  g_return_if_fail (AB_IS_SESSION (self));

  g_autoptr (GBytes) unread = NULL;

  if (self->conn == NULL)
    return;
  session_flush_updates (self);
  /* Prompts not yet started go over in the record, as many as fit; the
   * callers of the others hear so. */
  session_drop_unrecorded_queue (self);
  if (self->current != NULL && self->current->prompt_sent
      && ab_acp_connection_get_prompt_id (self->conn) != 0)
    {
      self->handing_over = TRUE;
      self->handed_rpc_id = ab_acp_connection_get_prompt_id (self->conn);
      session_hand_over_permissions (self);
    }
  else if (self->current != NULL)
    session_end_turn (self, "interrupted",
                      _ ("agentbroker restarted before this prompt started"));
  session_deny_all_permissions (self);
  g_signal_handlers_disconnect_by_data (self->conn, self);
  unread = ab_acp_connection_detach (self->conn);
  g_clear_object (&self->conn);
  g_clear_handle_id (&self->grace_source, g_source_remove);
  g_clear_handle_id (&self->inactivity_source, g_source_remove);
  /* The record names the turn handed over, and the last number of the
   * stream; the next instance ends the turn, numbering right after. */
  self->stream_sealed = TRUE;
  session_persist (self);
  g_clear_pointer (&self->current, session_turn_free);
  /* The queued prompts are the next instance's now: none starts here
   * (the record's copy of the queue stays as written). */
  g_queue_clear_full (&self->queue, (GDestroyNotify)session_turn_free);
  g_clear_handle_id (&self->kick_source, g_source_remove);
  g_free (self->handed_text);
  g_free (self->handed_sender);
  g_clear_pointer (&self->handed_permissions, json_node_unref);
  self->handing_over = FALSE;
  session_set_state (self, AB_SESSION_STATE_SUSPENDED);
  g_object_notify_by_pspec (G_OBJECT (self), session_props[PROP_PID]);
}

void
ab_session_forget_handover (AbSession *self)
{
  g_return_if_fail (AB_IS_SESSION (self));

  if (self->handed_turn == 0)
    return;
  self->interrupted_turn = self->handed_turn;
  self->last_turn = self->handed_turn;
  g_free (self->last_reason);
  self->last_reason = g_strdup ("interrupted");
  self->interrupted_reported = FALSE;
  self->handed_turn = 0;
  g_clear_pointer (&self->handed_text, g_free);
  g_clear_pointer (&self->handed_sender, g_free);
  g_clear_pointer (&self->handed_permissions, json_node_unref);
  g_message ("session %s: turn %" G_GUINT64_FORMAT " was handed over, but "
             "its agent is gone: interrupted",
             self->thread, self->interrupted_turn);
  session_persist (self);
}

void
ab_session_reattach (AbSession *self)
{
  g_return_if_fail (AB_IS_SESSION (self));

  if (self->conn != NULL || self->closing != NULL || self->launcher == NULL)
    return;
  session_start_agent (self);
  if (self->conn == NULL)
    {
      ab_session_forget_handover (self);
      return;
    }
  if (self->handed_turn != 0)
    session_adopt_turn (self);
  /* A turn the earlier instance was running when it went: the agent may
   * still be at it, and its answer goes nowhere. */
  else if (self->interrupted_turn != 0 && !self->interrupted_reported)
    ab_acp_connection_cancel (self->conn);
}

void
ab_session_go_on (AbSession *self)
{
  g_return_if_fail (AB_IS_SESSION (self));

  /* Prompts an earlier instance queued start now that their callers
   * can hear of them. */
  if (!g_queue_is_empty (&self->queue))
    session_schedule_kick (self);
  if (self->conn == NULL)
    return;
  ab_acp_connection_go_on (self->conn);
  session_ask_handed_permissions (self);
}

void
ab_session_kill_now (AbSession *self)
{
  if (self->conn != NULL)
    ab_acp_connection_kill_now (self->conn);
  if (self->closing != NULL)
    ab_acp_connection_kill_now (self->closing);
}

gboolean
ab_session_send_signal (AbSession *self, int signo, GError **error)
{
  if (session_get_pid (self) == 0)
    {
      g_set_error (error, AB_ERROR, AB_ERROR_FAILED,
                   _ ("session %s has no agent process to signal"),
                   self->thread);
      return FALSE;
    }
  return ab_acp_connection_send_signal (self->conn, signo, error);
}

/* Settings apply in place. A changed agent profile takes effect on the
 * agent's next start: an idle agent is stopped now, a busy one after its
 * turn, and the next turn runs on a new process through session/load. */
void
ab_session_set_config (AbSession *self, AbConfig *config)
{
  const AbAgentProfile *old = session_profile (self);
  const AbAgentProfile *new = ab_config_lookup_agent (config, self->agent);
  gboolean changed
      = old == NULL || new == NULL || !ab_agent_profile_equal (old, new);

  if (self->config == config)
    return;
  ab_config_unref (self->config);
  self->config = ab_config_ref (config);

  if (!changed || self->conn == NULL)
    return;
  g_message ("session %s: agent profile '%s' changed; switching its agent "
             "after the running turn",
             self->thread, self->agent);
  self->restart_pending = TRUE;
  if (self->current == NULL && self->state != AB_SESSION_STATE_STARTING)
    session_switch_agent (self);
}

const char *
ab_session_get_thread (AbSession *self)
{
  return self->thread;
}

const char *
ab_session_get_agent (AbSession *self)
{
  return self->agent;
}

const char *
ab_session_get_path (AbSession *self)
{
  return self->path;
}

uid_t
ab_session_get_owner (AbSession *self)
{
  return self->owner;
}

AbSessionState
ab_session_get_state (AbSession *self)
{
  return self->state;
}

gboolean
ab_session_is_running (AbSession *self)
{
  return self->conn != NULL || self->closing != NULL;
}

/* A turn in flight, or accepted and waiting for one. */
gboolean
ab_session_is_busy (AbSession *self)
{
  /* Prompts waiting for the agent to start are in flight too: they passed
   * the gate and will run. */
  return self->current != NULL || !g_queue_is_empty (&self->queue)
         || !g_queue_is_empty (&self->waiters)
         || !g_queue_is_empty (&self->endings);
}

gint64
ab_session_get_created (AbSession *self)
{
  return self->created;
}

const char *
ab_session_get_cwd (AbSession *self)
{
  return self->cwd;
}

gint64
ab_session_get_last_activity (AbSession *self)
{
  return self->last_activity;
}

guint
ab_session_get_queued (AbSession *self)
{
  return g_queue_get_length (&self->queue)
         + g_queue_get_length (&self->waiters);
}

guint
ab_session_get_pid (AbSession *self)
{
  return session_get_pid (self);
}

const char *
ab_session_get_unit (AbSession *self)
{
  return self->conn != NULL ? ab_acp_connection_get_unit (self->conn) : NULL;
}

void
ab_session_get_usage (AbSession *self, AbAgentUsage *usage)
{
  if (self->conn != NULL)
    ab_acp_connection_get_usage (self->conn, usage);
  else
    ab_agent_usage_init (usage);
}

const char *
ab_session_get_acp_session (AbSession *self)
{
  return self->acp_session != NULL ? self->acp_session : "";
}

const char *
ab_session_get_title (AbSession *self)
{
  return self->title != NULL ? self->title : "";
}

void
ab_session_get_token_usage (AbSession *self, AbAcpUsage *usage)
{
  *usage = self->token_usage;
}

guint64
ab_session_get_turns (AbSession *self)
{
  return self->turns;
}

guint64
ab_session_get_last_turn (AbSession *self)
{
  return self->last_turn;
}

const char *
ab_session_get_last_reason (AbSession *self)
{
  return self->last_reason;
}

gboolean
ab_session_is_switching (AbSession *self)
{
  return self->restart_pending;
}

/* ---- the session's dictionary ------------------------------------------ *
 *
 * ListSessions over 10,000 sessions built 150,000 dictionary entries per
 * call. Each session keeps its last dictionary and rebuilds it only when
 * a field it shows has changed: the fields are compared at each call
 * rather than invalidated at each change, so no setter can forget to. The
 * dictionary stays in tree form (never g_variant_get_data()): GDBus
 * marshals that twice as fast as a serialised one.
 */

static void
dict_cache_clear (DictCache *k)
{
  g_clear_pointer (&k->dict, g_variant_unref);
  g_clear_pointer (&k->cwd, g_free);
  g_clear_pointer (&k->acp_session, g_free);
  g_clear_pointer (&k->last_reason, g_free);
}

static gboolean
dict_is_current (AbSession *self, const DictCache *k)
{
  return k->dict != NULL && k->state == self->state
         && k->pid == session_get_pid (self)
         && k->queued == ab_session_get_queued (self)
         && k->switching == self->restart_pending && k->turns == self->turns
         && k->last_turn == self->last_turn && k->created == self->created
         && k->last_activity == self->last_activity
         && g_strcmp0 (k->cwd, self->cwd) == 0
         && g_strcmp0 (k->acp_session, self->acp_session) == 0
         && g_strcmp0 (k->last_reason, self->last_reason) == 0;
}

static GVariant *
dict_entry (const char *key, GVariant *value)
{
  return g_variant_new_dict_entry (g_variant_new_string (key),
                                   g_variant_new_variant (value));
}

/* The keys and types ListSessions documents (dbus/), in this order. */
static GVariant *
build_dict (AbSession *self, const DictCache *k)
{
  GVariant *entries[] = {
    dict_entry ("thread", g_variant_new_string (self->thread)),
    dict_entry ("agent", g_variant_new_string (self->agent)),
    dict_entry ("state",
                g_variant_new_string (ab_session_state_to_string (k->state))),
    dict_entry ("owner", g_variant_new_uint32 (self->owner)),
    dict_entry ("cwd", g_variant_new_string (k->cwd != NULL ? k->cwd : "")),
    dict_entry ("pid", g_variant_new_uint32 (k->pid)),
    dict_entry (
        "acp_session",
        g_variant_new_string (k->acp_session != NULL ? k->acp_session : "")),
    dict_entry ("created", g_variant_new_uint64 ((guint64)k->created)),
    dict_entry ("last_activity",
                g_variant_new_uint64 ((guint64)k->last_activity)),
    dict_entry ("turns", g_variant_new_uint32 ((guint32)k->turns)),
    dict_entry ("queued", g_variant_new_uint32 (k->queued)),
    dict_entry ("last_turn", g_variant_new_uint64 (k->last_turn)),
    dict_entry (
        "last_reason",
        g_variant_new_string (k->last_reason != NULL ? k->last_reason : "")),
    dict_entry ("path", g_variant_new_object_path (self->path)),
    dict_entry ("switching", g_variant_new_boolean (k->switching)),
  };

  return g_variant_ref_sink (g_variant_new_array (
      G_VARIANT_TYPE ("{sv}"), entries, G_N_ELEMENTS (entries)));
}

/* The session's a{sv}, owned by the session: valid until it changes, so
 * a caller keeping it takes a reference (g_variant_builder_add_value()
 * and g_variant_new_tuple() do). */
GVariant *
ab_session_to_variant (AbSession *self)
{
  DictCache *k = &self->dict;

  if (dict_is_current (self, k))
    return k->dict;
  dict_cache_clear (k);
  k->state = self->state;
  k->pid = session_get_pid (self);
  k->queued = ab_session_get_queued (self);
  k->switching = self->restart_pending;
  k->turns = self->turns;
  k->last_turn = self->last_turn;
  k->created = self->created;
  k->last_activity = self->last_activity;
  k->cwd = g_strdup (self->cwd);
  k->acp_session = g_strdup (self->acp_session);
  k->last_reason = g_strdup (self->last_reason);
  k->dict = build_dict (self, k);
  return k->dict;
}

/* ---- object ------------------------------------------------------------ */

static void
ab_session_get_property (GObject *object, guint prop_id, GValue *value,
                         GParamSpec *pspec)
{
  AbSession *self = AB_SESSION (object);

  switch (prop_id)
    {
    case PROP_STATE:
      g_value_set_string (value, ab_session_state_to_string (self->state));
      break;
    case PROP_PID:
      g_value_set_uint (value, session_get_pid (self));
      break;
    case PROP_ACP_SESSION:
      g_value_set_string (value,
                          self->acp_session != NULL ? self->acp_session : "");
      break;
    case PROP_LAST_ACTIVITY:
      g_value_set_uint64 (value, (guint64)self->last_activity);
      break;
    case PROP_TURNS:
      g_value_set_uint (value, (guint)self->turns);
      break;
    case PROP_QUEUED:
      g_value_set_uint (value, ab_session_get_queued (self));
      break;
    case PROP_LAST_TURN:
      g_value_set_uint64 (value, self->last_turn);
      break;
    case PROP_LAST_REASON:
      g_value_set_string (value,
                          self->last_reason != NULL ? self->last_reason : "");
      break;
    case PROP_CWD:
      g_value_set_string (value, self->cwd != NULL ? self->cwd : "");
      break;
    case PROP_TOKEN_USAGE:
      g_value_set_uint64 (value, self->token_usage.used);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
ab_session_dispose (GObject *object)
{
  AbSession *self = AB_SESSION (object);

  g_clear_handle_id (&self->kick_source, g_source_remove);
  g_clear_handle_id (&self->flush_source, g_source_remove);
  g_clear_handle_id (&self->grace_source, g_source_remove);
  g_clear_handle_id (&self->inactivity_source, g_source_remove);
  g_clear_handle_id (&self->handshake_source, g_source_remove);
  g_clear_handle_id (&self->usage_source, g_source_remove);
  g_hash_table_remove_all (self->permissions);
  if (self->conn != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->conn, self);
      g_clear_object (&self->conn); /* stops the agent if still alive */
    }
  g_clear_object (&self->closing);

  G_OBJECT_CLASS (ab_session_parent_class)->dispose (object);
}

static void
ab_session_finalize (GObject *object)
{
  AbSession *self = AB_SESSION (object);

  g_queue_clear_full (&self->queue, (GDestroyNotify)session_turn_free);
  g_clear_pointer (&self->queued_node, json_node_unref);
  g_clear_pointer (&self->handed_permissions, json_node_unref);
  g_queue_clear_full (&self->waiters, (GDestroyNotify)session_waiter_free);
  g_queue_clear_full (&self->endings, (GDestroyNotify)session_turn_free);
  g_clear_pointer (&self->current, session_turn_free);
  g_ptr_array_unref (self->pending_updates);
  g_ptr_array_unref (self->suspend_tasks);
  g_hash_table_unref (self->permissions);
  session_stream_clear (self);
  g_clear_object (&self->launcher);
  g_clear_pointer (&self->config, ab_config_unref);
  g_free (self->thread);
  g_free (self->agent);
  g_free (self->path);
  g_free (self->cwd);
  g_free (self->state_dir);
  g_free (self->store_dir);
  ab_transcript_free (self->transcript);
  g_free (self->acp_session);
  g_free (self->title);
  g_free (self->failure);
  g_free (self->last_reason);
  dict_cache_clear (&self->dict);

  G_OBJECT_CLASS (ab_session_parent_class)->finalize (object);
}

static void
ab_session_class_init (AbSessionClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  const GParamFlags flags
      = G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS;

  object_class->get_property = ab_session_get_property;
  object_class->dispose = ab_session_dispose;
  object_class->finalize = ab_session_finalize;

  session_props[PROP_STATE]
      = g_param_spec_string ("state", NULL, NULL, "suspended", flags);
  session_props[PROP_PID]
      = g_param_spec_uint ("pid", NULL, NULL, 0, G_MAXUINT, 0, flags);
  session_props[PROP_ACP_SESSION]
      = g_param_spec_string ("acp-session", NULL, NULL, "", flags);
  session_props[PROP_LAST_ACTIVITY] = g_param_spec_uint64 (
      "last-activity", NULL, NULL, 0, G_MAXUINT64, 0, flags);
  session_props[PROP_TURNS]
      = g_param_spec_uint ("turns", NULL, NULL, 0, G_MAXUINT, 0, flags);
  session_props[PROP_QUEUED]
      = g_param_spec_uint ("queued", NULL, NULL, 0, G_MAXUINT, 0, flags);
  session_props[PROP_LAST_TURN]
      = g_param_spec_uint64 ("last-turn", NULL, NULL, 0, G_MAXUINT64, 0, flags);
  session_props[PROP_LAST_REASON]
      = g_param_spec_string ("last-reason", NULL, NULL, "", flags);
  session_props[PROP_CWD] = g_param_spec_string ("cwd", NULL, NULL, "", flags);
  session_props[PROP_TOKEN_USAGE] = g_param_spec_uint64 (
      "token-usage", NULL, NULL, 0, G_MAXUINT64, AB_ACP_TOKENS_UNKNOWN, flags);
  g_object_class_install_properties (object_class, N_PROPS, session_props);

  /* (turn, updates, recipient, seq): recipient is the prompting
   * connection's unique name, or NULL for updates outside a turn. */
  session_signals[SIGNAL_UPDATE] = g_signal_new (
      "update", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
      NULL, G_TYPE_NONE, 4, G_TYPE_UINT64,
      G_TYPE_STRV | G_SIGNAL_TYPE_STATIC_SCOPE,
      G_TYPE_STRING | G_SIGNAL_TYPE_STATIC_SCOPE, G_TYPE_UINT64);
  /* (turn, reason, message, recipient, duration µs or -1 for a turn
   * dropped before it started, seq) */
  session_signals[SIGNAL_TURN_ENDED] = g_signal_new (
      "turn-ended", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
      NULL, G_TYPE_NONE, 6, G_TYPE_UINT64, G_TYPE_STRING, G_TYPE_STRING,
      G_TYPE_STRING, G_TYPE_INT64, G_TYPE_UINT64);
  session_signals[SIGNAL_PERMISSION_REQUESTED] = g_signal_new (
      "permission-requested", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
      NULL, NULL, NULL, G_TYPE_NONE, 5, G_TYPE_UINT64, G_TYPE_STRING,
      G_TYPE_STRING, G_TYPE_STRING, G_TYPE_UINT64);
  /* (description) */
  session_signals[SIGNAL_AGENT_READY] = g_signal_new (
      "agent-ready", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL,
      NULL, NULL, G_TYPE_NONE, 1, G_TYPE_STRING);
}

static void
ab_session_init (AbSession *self)
{
  self->state = AB_SESSION_STATE_SUSPENDED;
  self->pending_updates = g_ptr_array_new_with_free_func (g_free);
  self->suspend_tasks = g_ptr_array_new_with_free_func (g_object_unref);
  self->permissions = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                             (GDestroyNotify)permission_free);
  g_queue_init (&self->queue);
  g_queue_init (&self->waiters);
  g_queue_init (&self->endings);
  ab_acp_usage_init (&self->token_usage);
}

AbSession *
ab_session_new (const char *thread, const char *agent, uid_t owner,
                AbConfig *config, const char *state_dir)
{
  AbSession *self = g_object_new (AB_TYPE_SESSION, NULL);
  const AbAgentProfile *prof;

  self->thread = g_strdup (thread);
  self->agent = g_strdup (agent);
  self->path = ab_thread_id_to_object_path (thread);
  self->owner = owner;
  self->config = ab_config_ref (config);
  self->state_dir = g_strdup (state_dir);
  self->store_dir = ab_store_dir (state_dir);
  self->transcript = ab_transcript_new (self->store_dir, thread);
  self->created = g_get_real_time ();
  self->last_activity = self->created;
  session_stream_init (self, (guint64)self->created);
  prof = session_profile (self);
  if (prof != NULL)
    self->cwd = ab_agent_expand_working_directory (prof->working_directory,
                                                   thread, state_dir);
  else
    self->cwd = g_strdup ("");
  return self;
}

/* The permission requests a record hands over, as an array of
 * {rpc_id, params} (a record of an earlier version names one). */
static JsonNode *
handed_permissions_of (const AbSessionRecord *record)
{
  g_autoptr (JsonBuilder) b = NULL;

  if (record->permissions != NULL)
    return json_node_copy (record->permissions);
  if (record->permission_rpc_id == NULL || record->permission_params == NULL)
    return NULL;
  b = json_builder_new ();
  json_builder_begin_array (b);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "rpc_id");
  json_builder_add_string_value (b, record->permission_rpc_id);
  json_builder_set_member_name (b, "params");
  json_builder_add_string_value (b, record->permission_params);
  json_builder_end_object (b);
  json_builder_end_array (b);
  return json_builder_get_root (b);
}

/* A session of the previous instance, suspended until its next prompt. */
AbSession *
ab_session_new_from_record (const AbSessionRecord *record, AbConfig *config,
                            const char *state_dir)
{
  AbSession *self = ab_session_new (record->thread, record->agent,
                                    (uid_t)record->owner, config, state_dir);
  const AbAgentProfile *prof = session_profile (self);

  g_free (self->cwd);
  self->cwd = g_strdup (record->cwd);
  self->acp_session = g_strdup (record->acp_session);
  self->created = record->created;
  self->last_activity = record->last_activity;
  self->turns = record->turns;
  self->last_turn = record->last_turn;
  self->last_reason = g_strdup (record->last_reason);
  self->title = g_strdup (record->title);
  self->interrupted_turn = record->interrupted_turn;
  self->interrupted_reported = record->interrupted_reported;
  /* A record without numbers predates them: the creation time does. */
  if (record->stream_seq != 0)
    session_stream_init (self, record->stream_seq);
  self->stream_inherited = TRUE;
  session_take_queued (self, record);

  if (record->running_turn != 0 && record->handed_over)
    {
      /* Handed over at a restart: it goes on if the agent is still
       * there (ab_session_reattach), else it was interrupted
       * (ab_session_forget_handover). */
      self->handed_turn = record->running_turn;
      self->handed_text = g_strdup (record->running_text);
      self->handed_sender = g_strdup (record->running_sender);
      self->handed_rpc_id = record->running_rpc_id;
      self->handed_permissions = handed_permissions_of (record);
    }
  else if (record->running_turn != 0)
    {
      /* It was in flight when the previous instance ended. */
      self->interrupted_turn = record->running_turn;
      self->last_turn = record->running_turn;
      g_free (self->last_reason);
      self->last_reason = g_strdup ("interrupted");
      self->interrupted_reported = FALSE;
      ab_log_event (AB_LOG_TURN_INTERRUPTED, G_LOG_LEVEL_MESSAGE, self->thread,
                    AB_LOG_NO_CALLER,
                    "session %s: turn %" G_GUINT64_FORMAT
                    " was interrupted by the end of the previous instance",
                    self->thread, record->running_turn);
      if (prof != NULL && prof->resend_interrupted
          && record->running_text != NULL)
        {
          g_message ("session %s: re-sending the interrupted prompt "
                     "(resend_interrupted)",
                     self->thread);
          session_accept_turn (self, record->running_text, NULL, NULL);
        }
      session_persist (self);
    }
  return self;
}
