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

#include <glib/gi18n.h>
#include <glib/gstdio.h>

#include "acp-connection.h"
#include "acp.h"
#include "agent-launcher.h"
#include "error.h"
#include "log.h"
#include "session.h"
#include "store.h"
#include "thread-id.h"

typedef struct
{
  guint64 number;
  char *text;
  char *sender;
  gint64 started; /* monotonic µs; 0 while queued */
  gboolean prompt_sent;
  gint64 duration; /* µs, once ended */
  char *reason;    /* once ended */
  char *message;
  GQueue dropped; /* AbTurn *, queued turns dropped meanwhile: told after */
} AbTurn;

typedef struct
{
  GTask *task;
  char *text;
  char *sender;
} StartWaiter;

typedef struct
{
  AbSession *session; /* unowned */
  char *id;
  JsonNode *rpc_id;
  JsonNode *params;
  guint64 turn;
  guint timeout_source;
} PendingPermission;

/* ListSessions' dictionary of a session (ab_session_to_variant) and
 * the fields it was built from: those that can change after the session
 * is made. */
typedef struct
{
  GVariant *dict;
  AbSessionState state;
  guint pid;
  guint queued;
  gboolean switching;
  guint64 turns;
  guint64 last_turn;
  gint64 created;
  gint64 last_activity;
  char *cwd;
  char *acp_session;
  char *last_reason;
} DictCache;

struct _AbSession
{
  GObject parent_instance;

  char *thread;
  char *agent;
  char *path;
  char *cwd;
  char *state_dir;
  char *store_dir;
  uid_t owner;
  AbConfig *config;
  AbSessionState state;
  gint64 created;
  gint64 last_activity;
  guint64 turns;

  /* the agent, while one runs */
  AbAgentLauncher *launcher;
  AbAcpConnection *conn;    /* the agent serving the session */
  AbAcpConnection *closing; /* the agent being stopped */
  char *acp_session;
  gboolean history_lost;
  gboolean restart_pending; /* the profile changed: new agent next turn */
  guint handshake_source;
  char *failure; /* why the last start or run failed */

  /* prompts */
  GQueue queue;              /* AbTurn *, accepted, not yet started */
  GQueue waiters;            /* StartWaiter *, waiting for the handshake */
  AbTurn *current;           /* the turn in flight */
  const char *cancel_reason; /* static: set once the turn is being cut */
  guint grace_source;
  guint inactivity_source;
  gint64 last_progress;
  guint64 last_turn;
  char *last_reason;
  guint kick_source;

  /* a turn cut off by the previous instance, not yet reported */
  guint64 interrupted_turn;
  gboolean interrupted_reported;

  /* record writes not yet on disk, and the ended turns whose TurnEnded
   * waits for one, oldest first */
  guint writes;
  GQueue endings;
  gboolean suspends_wait; /* the agent is gone; suspends wait for writes */
  /* Turns up to this one were named running by a record on disk: their
   * prompts may go to the agent. */
  guint64 running_recorded;
  /* The turn a prompt waiting for the agent will get, already written as
   * running (record_waiting_prompt), or 0; and which write that was. */
  guint64 waiting_turn;
  guint waiting_seq;

  DictCache dict; /* the last ListSessions dictionary */

  /* updates read but not yet signalled */
  GPtrArray *pending_updates;
  guint64 pending_turn;
  guint flush_source;

  GHashTable *permissions; /* id → PendingPermission */
  guint permission_counter;
  guint64 permissions_over_cap; /* denied at once this turn: too many */

  GPtrArray *suspend_tasks; /* GTask *, completed when the agent is gone */
};

enum
{
  PROP_0,
  PROP_STATE,
  PROP_PID,
  PROP_ACP_SESSION,
  PROP_LAST_ACTIVITY,
  PROP_TURNS,
  PROP_QUEUED,
  PROP_LAST_TURN,
  PROP_LAST_REASON,
  PROP_CWD,
  N_PROPS
};

enum
{
  SIGNAL_UPDATE,
  SIGNAL_TURN_ENDED,
  SIGNAL_PERMISSION_REQUESTED,
  N_SIGNALS
};

static GParamSpec *props[N_PROPS];
static guint signals[N_SIGNALS];

G_DEFINE_TYPE (AbSession, ab_session, G_TYPE_OBJECT)

static void start_agent (AbSession *self);
static void schedule_kick (AbSession *self);
static void teardown (AbSession *self, AbSessionState final_state);
static void switch_agent (AbSession *self);
static void forget_waiting_prompt (AbSession *self);

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

static void
turn_free (AbTurn *turn)
{
  g_queue_clear_full (&turn->dropped, (GDestroyNotify)turn_free);
  g_free (turn->text);
  g_free (turn->sender);
  g_free (turn->reason);
  g_free (turn->message);
  g_free (turn);
}

static void
waiter_free (StartWaiter *waiter)
{
  g_clear_object (&waiter->task);
  g_free (waiter->text);
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

static void
set_state (AbSession *self, AbSessionState state)
{
  if (self->state == state)
    return;
  g_debug ("session %s: %s → %s", self->thread,
           ab_session_state_to_string (self->state),
           ab_session_state_to_string (state));
  self->state = state;
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_STATE]);
}

/* Activity is shown in seconds: notifying it for every streamed update
 * would cost a PropertiesChanged per update. */
static void
touch (AbSession *self)
{
  gint64 now = g_get_real_time ();
  gboolean visible
      = now / G_USEC_PER_SEC != self->last_activity / G_USEC_PER_SEC;

  self->last_activity = now;
  if (visible)
    g_object_notify_by_pspec (G_OBJECT (self), props[PROP_LAST_ACTIVITY]);
}

static void
notify_queued (AbSession *self)
{
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_QUEUED]);
}

static guint
get_pid (AbSession *self)
{
  return self->conn != NULL ? ab_acp_connection_get_pid (self->conn) : 0;
}

static const AbAgentProfile *
profile (AbSession *self)
{
  return ab_config_lookup_agent (self->config, self->agent);
}

/* ---- durability ------------------------------------------------------ */

typedef void (*PersistedFunc) (AbSession *self, gpointer data);

typedef struct
{
  AbSession *self;
  PersistedFunc then;
  gpointer data;
} PersistWait;

static void complete_suspend_tasks (AbSession *self);

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
      complete_suspend_tasks (self);
    }
  g_object_unref (self);
  g_free (w);
}

/* The session's record as it stands. */
static void
fill_record (AbSession *self, AbSessionRecord *record)
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

static char *hold_path;
static GQueue held_writes = G_QUEUE_INIT;

static gboolean
on_hold_poll (gpointer user_data)
{
  HeldWrite *h;

  if (g_file_test (hold_path, G_FILE_TEST_EXISTS))
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

  if (hold_path == NULL
      || (g_queue_is_empty (&held_writes)
          && !g_file_test (hold_path, G_FILE_TEST_EXISTS)))
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
static void
persist_record (AbSession *self, const AbSessionRecord *record,
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

static void
persist_then (AbSession *self, PersistedFunc then, gpointer data)
{
  AbSessionRecord record;

  fill_record (self, &record);
  persist_record (self, &record, then, data);
}

static void
persist (AbSession *self)
{
  persist_then (self, NULL, NULL);
}

void
ab_session_persist (AbSession *self)
{
  persist (self);
}

/* The turn the previous instance was running when it ended, reported
 * once: to the first connection that prompts or watches. */
gboolean
ab_session_take_interrupted (AbSession *self, guint64 *turn)
{
  if (self->interrupted_turn == 0 || self->interrupted_reported)
    return FALSE;
  *turn = self->interrupted_turn;
  self->interrupted_reported = TRUE;
  persist (self);
  return TRUE;
}

/* ---- the stream ------------------------------------------------------ */

static void
flush_updates (AbSession *self)
{
  g_autoptr (GPtrArray) batch = NULL;
  const char *sender = NULL;

  g_clear_handle_id (&self->flush_source, g_source_remove);
  if (self->pending_updates->len == 0)
    return;

  batch = g_steal_pointer (&self->pending_updates);
  self->pending_updates = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (batch, NULL);
  if (self->current != NULL && self->current->number == self->pending_turn)
    sender = self->current->sender;
  g_signal_emit (self, signals[SIGNAL_UPDATE], 0, self->pending_turn,
                 (const char *const *)batch->pdata, sender);
}

static gboolean
on_flush (gpointer user_data)
{
  AbSession *self = user_data;

  self->flush_source = 0;
  flush_updates (self);
  return G_SOURCE_REMOVE;
}

/* Updates of one turn leave together (@json: transfer full): the
 * caller flushes them. */
static void
queue_update (AbSession *self, guint64 turn, char *json)
{
  if (self->pending_updates->len > 0 && self->pending_turn != turn)
    flush_updates (self);
  self->pending_turn = turn;
  g_ptr_array_add (self->pending_updates, json);
}

/* An update of the broker's own leaves on the next turn of the loop. */
static void
queue_update_soon (AbSession *self, guint64 turn, char *json)
{
  queue_update (self, turn, json);
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

static void
deny_all_permissions (AbSession *self)
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

static void
on_permission_request (AbAcpConnection *conn, JsonNode *id, JsonNode *params,
                       AbSession *self)
{
  const AbAgentProfile *prof = profile (self);
  AbPermissions policy = prof != NULL ? prof->permissions : AB_PERMISSIONS_DENY;
  PendingPermission *p;
  g_autofree char *json = NULL;

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
  flush_updates (self);
  json = json_to_string (params, FALSE);
  g_signal_emit (self, signals[SIGNAL_PERMISSION_REQUESTED], 0, p->turn, p->id,
                 json, self->current->sender);
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
static void
switch_agent (AbSession *self)
{
  self->restart_pending = FALSE;
  teardown (self, AB_SESSION_STATE_SUSPENDED);
}

/* Tells the end of queued turns that never started, and frees them. */
static void
emit_dropped (AbSession *self, GQueue *turns)
{
  AbTurn *turn;

  while ((turn = g_queue_pop_head (turns)) != NULL)
    {
      g_signal_emit (self, signals[SIGNAL_TURN_ENDED], 0, turn->number,
                     turn->reason, turn->message, turn->sender, (gint64)-1);
      turn_free (turn);
    }
}

/* The record says the turn ended: now its end is told, then those of the
 * queued turns dropped meanwhile, and the session is idle (unless
 * something else happened to it meanwhile). */
static void
on_turn_end_written (AbSession *self, gpointer data)
{
  AbTurn *turn = g_queue_pop_head (&self->endings);

  g_debug ("session %s: turn %" G_GUINT64_FORMAT " ended: %s%s%s", self->thread,
           turn->number, turn->reason, turn->message[0] ? ": " : "",
           turn->message);
  g_signal_emit (self, signals[SIGNAL_TURN_ENDED], 0, turn->number,
                 turn->reason, turn->message, turn->sender, turn->duration);
  emit_dropped (self, &turn->dropped);
  turn_free (turn);

  if (self->state == AB_SESSION_STATE_BUSY && self->current == NULL)
    set_state (self, AB_SESSION_STATE_IDLE);
  else
    notify_queued (self); /* busy no more: the pool counts again */
  if (self->restart_pending)
    {
      /* An agent already going takes the old profile with it. */
      if (self->conn != NULL)
        switch_agent (self);
      else
        self->restart_pending = FALSE;
    }
  schedule_kick (self);
}

static void
end_turn (AbSession *self, const char *reason, const char *message)
{
  AbTurn *turn = self->current;

  if (turn == NULL)
    return;

  /* Its updates go first; its end once the record says so. */
  flush_updates (self);
  deny_all_permissions (self);
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
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_LAST_ACTIVITY]);
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_LAST_TURN]);
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_LAST_REASON]);
  /* Callbacks come in the order of the writes. */
  g_queue_push_tail (&self->endings, turn);
  persist_then (self, on_turn_end_written, NULL);
}

/* Queued turns end without having started. They are told after the turn
 * still running (once it ends) or whose end is still being written, so
 * clients see the turns end in order. */
static void
drop_queue (AbSession *self, const char *reason, const char *message)
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
        forget_waiting_prompt (self);
      g_free (turn->reason);
      turn->reason = g_strdup (reason);
      g_free (turn->message);
      turn->message = g_strdup (message);
      g_queue_push_tail (before != NULL ? &before->dropped : &now, turn);
    }
  notify_queued (self);
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
        end_turn (self,
                  self->cancel_reason != NULL ? self->cancel_reason
                                              : "agent-error",
                  error->message);
      return;
    }
  end_turn (self, self->cancel_reason != NULL ? self->cancel_reason : reason,
            "");
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
  end_turn (self, reason != NULL ? reason : "cancelled",
            _ ("the agent did not stop in time and was stopped"));
  teardown (self, AB_SESSION_STATE_SUSPENDED);
  return G_SOURCE_REMOVE;
}

/* Asks the agent to stop the turn in flight; it answers the prompt with
 * stopReason "cancelled", or is stopped after timeouts.kill. */
static void
cut_turn (AbSession *self, const char *reason)
{
  if (self->current == NULL || self->cancel_reason != NULL)
    return;

  /* A prompt not sent yet (its record is still being written) never will
   * be: the turn ends now, and the agent, which never saw it, stays. */
  if (!self->current->prompt_sent)
    {
      end_turn (self, reason, "");
      return;
    }
  self->cancel_reason = reason;
  deny_all_permissions (self);
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
  cut_turn (self, "timeout");
  return G_SOURCE_REMOVE;
}

/* The record names the turn in flight, so a crash from now on reports it
 * interrupted: the agent gets the prompt. */
static void
send_prompt (AbSession *self)
{
  AbTurn *turn = self->current;

  if (self->cancel_reason != NULL)
    {
      end_turn (self, self->cancel_reason, "");
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

  ab_acp_connection_prompt_async (self->conn, ab_acp_text_prompt (turn->text),
                                  on_prompt_done, g_object_ref (self));
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
static void
record_waiting_prompt (AbSession *self, const char *text)
{
  AbSessionRecord record;

  fill_record (self, &record);
  self->waiting_turn = self->turns + 1;
  self->waiting_seq++;
  record.turns = self->waiting_turn;
  record.running_turn = self->waiting_turn;
  record.running_text = (char *)text;
  persist_record (self, &record, on_waiting_prompt_written,
                  GUINT_TO_POINTER (self->waiting_seq));
}

/* That prompt will not run: the record is written again without it. */
static void
forget_waiting_prompt (AbSession *self)
{
  self->waiting_turn = 0;
  self->waiting_seq++;
  /* Numbers above turns were never accepted, and will be again. */
  self->running_recorded = MIN (self->running_recorded, self->turns);
  persist (self);
}

static void
start_turn (AbSession *self)
{
  AbTurn *turn = g_queue_pop_head (&self->queue);

  /* Current before anyone hears of the shorter queue: the session never
   * looks idle between the two, or a drain waiting for it would end. */
  self->current = turn;
  notify_queued (self);
  turn->started = g_get_monotonic_time ();
  self->cancel_reason = NULL;
  set_state (self, AB_SESSION_STATE_BUSY);
  touch (self);
  self->last_progress = g_get_monotonic_time ();
  self->inactivity_source = g_timeout_add (
      MAX (self->config->turn_inactivity_usec / 1000, 1), on_inactivity, self);
  persist_then (self, on_turn_start_written,
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
        start_agent (self);
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
static void
schedule_kick (AbSession *self)
{
  if (self->kick_source == 0)
    self->kick_source
        = g_idle_add_full (G_PRIORITY_DEFAULT, on_kick, self, NULL);
}

static guint64
accept_turn (AbSession *self, const char *text, const char *sender)
{
  AbTurn *turn = g_new0 (AbTurn, 1);

  turn->number = ++self->turns;
  turn->text = g_strdup (text);
  turn->sender = g_strdup (sender);
  g_queue_push_tail (&self->queue, turn);
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_TURNS]);
  notify_queued (self);
  schedule_kick (self);
  return turn->number;
}

/* ---- the agent's messages ---------------------------------------------- */

/* Updates read together leave together, as soon as the connection has
 * them: a slow agent's update leaves alone, without waiting for another
 * turn of the main loop. Those about the session go as turn 0. */
static void
on_update (AbAcpConnection *conn, const AbAcpUpdate *updates, guint n_updates,
           AbSession *self)
{
  self->last_progress = g_get_monotonic_time ();
  touch (self);
  for (guint i = 0; i < n_updates; i++)
    queue_update (self,
                  self->current != NULL && !updates[i].session_level
                      ? self->current->number
                      : 0,
                  g_strdup (updates[i].json));
  flush_updates (self);
}

static void
complete_suspend_tasks (AbSession *self)
{
  g_autoptr (GPtrArray) tasks = g_steal_pointer (&self->suspend_tasks);

  self->suspend_tasks = g_ptr_array_new_with_free_func (g_object_unref);
  for (guint i = 0; i < tasks->len; i++)
    g_task_return_boolean (g_ptr_array_index (tasks, i), TRUE);
}

/* The agent is gone: suspends complete, once the record is written. */
static void
finish_suspends (AbSession *self)
{
  if (self->writes > 0)
    {
      self->suspends_wait = TRUE;
      return;
    }
  complete_suspend_tasks (self);
}

static void
on_closed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AbSession) self = user_data;

  ab_acp_connection_close_finish (AB_ACP_CONNECTION (source), result);
  if (self->closing == AB_ACP_CONNECTION (source))
    {
      g_clear_object (&self->closing);
      /* The pool counts the agent gone now. */
      g_object_notify_by_pspec (G_OBJECT (self), props[PROP_PID]);
    }
  finish_suspends (self);
  schedule_kick (self);
}

/* Prompts waiting for the agent get @code with @message: none was
 * accepted. */
static void
refuse_waiters (AbSession *self, int code, const char *message)
{
  StartWaiter *waiter;

  if (self->waiting_turn > self->turns && !g_queue_is_empty (&self->waiters))
    forget_waiting_prompt (self);
  while ((waiter = g_queue_pop_head (&self->waiters)) != NULL)
    {
      g_task_return_new_error (waiter->task, AB_ERROR, code, "%s", message);
      waiter_free (waiter);
    }
  notify_queued (self);
}

static void
fail_waiters (AbSession *self, const char *message)
{
  refuse_waiters (self, AB_ERROR_AGENT_FAILED, message);
}

/* Stops the agent process group; the session ends in @final_state. */
static void
teardown (AbSession *self, AbSessionState final_state)
{
  g_clear_handle_id (&self->handshake_source, g_source_remove);
  flush_updates (self);
  deny_all_permissions (self);

  if (self->conn == NULL)
    {
      set_state (self, final_state);
      if (self->closing == NULL)
        finish_suspends (self);
      return;
    }
  g_signal_handlers_disconnect_by_data (self->conn, self);
  self->closing = g_steal_pointer (&self->conn);
  set_state (self, final_state);
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_PID]);
  ab_acp_connection_close_async (self->closing, self->config->kill_timeout_usec,
                                 on_closed, g_object_ref (self));
}

/* The agent died or broke the protocol. Whoever waits hears why; the
 * session is failed and the next prompt starts a new agent. */
static void
agent_lost (AbSession *self, const char *reason, const char *why)
{
  g_autofree char *tail = NULL;
  g_autofree char *message = NULL;

  if (self->conn == NULL)
    return;

  tail = ab_acp_connection_get_stderr_tail (self->conn);
  if (tail != NULL && tail[0] != '\0')
    message = g_strdup_printf ("%s; agent stderr:\n%s", why, tail);
  else
    message = g_strdup (why);

  ab_log_event (AB_LOG_AGENT_LOST, G_LOG_LEVEL_WARNING, self->thread,
                AB_LOG_NO_CALLER, "session %s: agent lost: %s", self->thread,
                why);
  g_free (self->failure);
  self->failure = g_strdup (message);

  fail_waiters (self, message);
  end_turn (self, reason, message);
  teardown (self, AB_SESSION_STATE_FAILED);
}

static void
on_lost (AbAcpConnection *conn, const char *reason, const char *why,
         AbSession *self)
{
  agent_lost (self, reason, why);
}

/* ---- start-up: spawn and handshake -------------------------------------- */

static void
handshake_done (AbSession *self)
{
  StartWaiter *waiter;

  g_clear_handle_id (&self->handshake_source, g_source_remove);
  g_clear_pointer (&self->failure, g_free);
  set_state (self, AB_SESSION_STATE_IDLE);
  g_message ("session %s: agent '%s' ready (pid %u, ACP session %s)",
             self->thread, self->agent, get_pid (self), self->acp_session);

  while ((waiter = g_queue_pop_head (&self->waiters)) != NULL)
    {
      guint64 turn = accept_turn (self, waiter->text, waiter->sender);
      g_task_return_pointer (waiter->task, g_memdup2 (&turn, sizeof turn),
                             g_free);
      waiter_free (waiter);
    }
  schedule_kick (self);
}

static void
set_acp_session (AbSession *self, char *id)
{
  if (g_strcmp0 (self->acp_session, id) == 0)
    {
      g_free (id);
      return;
    }
  g_free (self->acp_session);
  self->acp_session = id;
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_ACP_SESSION]);
  /* A prompt waiting for the handshake starts its turn right away, and
   * that write carries the ACP session too. */
  if (g_queue_is_empty (&self->waiters) && g_queue_is_empty (&self->queue))
    persist (self);
}

/* The handshake is over: the ACP session is open, or the agent refused
 * (a failed connection is reported once, as the agent lost). */
static void
on_started (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AbSession) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (AbAcpStarted) started = ab_acp_connection_start_finish (
      AB_ACP_CONNECTION (source), result, &error);

  if (AB_ACP_CONNECTION (source) != self->conn)
    return;
  if (started == NULL)
    {
      if (g_error_matches (error, AB_ACP_CONNECTION_ERROR,
                           AB_ACP_CONNECTION_ERROR_REFUSED))
        agent_lost (self, "agent-error", error->message);
      return;
    }
  if (started->history_lost)
    self->history_lost = TRUE;
  set_acp_session (self, g_steal_pointer (&started->session_id));
  handshake_done (self);
}

static gboolean
on_handshake_timeout (gpointer user_data)
{
  AbSession *self = user_data;

  self->handshake_source = 0;
  agent_lost (self, "agent-error",
              _ ("the agent did not complete the ACP handshake within "
                 "timeouts.handshake"));
  return G_SOURCE_REMOVE;
}

/* Starts the agent and its handshake; NULL, or why it failed. */
static char *
spawn_agent (AbSession *self)
{
  const AbAgentProfile *prof = profile (self);
  g_autoptr (GError) error = NULL;
  char *cwd = NULL;

  if (prof == NULL)
    return g_strdup_printf (_ ("agent profile '%s' is not configured"),
                            self->agent);

  self->conn = ab_agent_launcher_launch (
      self->launcher, prof, self->thread, self->state_dir,
      self->config->max_message_bytes, &cwd, &error);
  if (cwd != NULL)
    {
      gboolean changed = g_strcmp0 (cwd, self->cwd) != 0;

      g_free (self->cwd);
      self->cwd = cwd;
      if (changed)
        g_object_notify_by_pspec (G_OBJECT (self), props[PROP_CWD]);
    }
  if (self->conn == NULL)
    return g_strdup (error->message);
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_PID]);
  g_signal_connect (self->conn, "update", G_CALLBACK (on_update), self);
  g_signal_connect (self->conn, "permission-request",
                    G_CALLBACK (on_permission_request), self);
  g_signal_connect (self->conn, "lost", G_CALLBACK (on_lost), self);

  self->handshake_source
      = g_timeout_add (MAX (self->config->handshake_timeout_usec / 1000, 1),
                       on_handshake_timeout, self);
  ab_acp_connection_start_async (
      self->conn,
      &(AbAcpStartParams){ .agent = self->agent,
                           .thread = self->thread,
                           .cwd = self->cwd,
                           .resume = self->acp_session,
                           .auth_method = prof->auth_method },
      on_started, g_object_ref (self));
  return NULL;
}

static void
start_agent (AbSession *self)
{
  g_autofree char *message = NULL;

  g_return_if_fail (self->conn == NULL && self->closing == NULL);
  g_return_if_fail (self->launcher != NULL);

  /* The new agent runs the current profile: a switch asked for the old
   * one is done (a turn ending later must not stop this agent). */
  self->restart_pending = FALSE;
  set_state (self, AB_SESSION_STATE_STARTING);
  message = spawn_agent (self);
  if (message == NULL)
    return;

  ab_log_event (AB_LOG_AGENT_START_FAILED, G_LOG_LEVEL_WARNING, self->thread,
                AB_LOG_NO_CALLER, "session %s: cannot start agent: %s",
                self->thread, message);
  g_free (self->failure);
  self->failure = g_strdup (message);
  fail_waiters (self, message);
  drop_queue (self, "agent-error", message);
  set_state (self, AB_SESSION_STATE_FAILED);
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
      guint64 turn = accept_turn (self, text, sender);
      g_task_return_pointer (task, g_memdup2 (&turn, sizeof turn), g_free);
      return;
    }

  waiter = g_new0 (StartWaiter, 1);
  waiter->task = g_steal_pointer (&task);
  waiter->text = g_strdup (text);
  waiter->sender = g_strdup (sender);
  g_queue_push_tail (&self->waiters, waiter);
  notify_queued (self);
  if (self->state != AB_SESSION_STATE_STARTING && self->closing == NULL)
    start_agent (self);
  /* The first prompt to wait for the agent is the next turn. */
  if (self->state == AB_SESSION_STATE_STARTING
      && g_queue_get_length (&self->waiters) == 1
      && g_queue_is_empty (&self->queue) && self->current == NULL)
    record_waiting_prompt (self, text);
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
  deny_all_permissions (self);
}

/* Drain deadline: the turn in flight is cut and the queued ones dropped,
 * all reported interrupted; prompts waiting for the agent are refused. */
guint
ab_session_interrupt (AbSession *self, const GError *refusal, guint *refused)
{
  guint turns = g_queue_get_length (&self->queue)
                + (self->current != NULL && self->cancel_reason == NULL);

  *refused = g_queue_get_length (&self->waiters);
  refuse_waiters (self, refusal->code, refusal->message);
  drop_queue (self, "interrupted", _ ("interrupted before it started"));
  cut_turn (self, "interrupted");
  return turns;
}

void
ab_session_cancel (AbSession *self)
{
  drop_queue (self, "cancelled", _ ("cancelled before it started"));
  cut_turn (self, "cancelled");
}

void
ab_session_suspend_async (AbSession *self, const char *reason,
                          GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (self, NULL, callback, user_data);

  g_ptr_array_add (self->suspend_tasks, task);
  if (self->current != NULL && self->conn != NULL)
    ab_acp_connection_cancel (self->conn);
  fail_waiters (self, reason);
  end_turn (self, "cancelled", reason);
  drop_queue (self, "cancelled", reason);
  if (self->conn != NULL)
    teardown (self, AB_SESSION_STATE_SUSPENDED);
  else if (self->closing == NULL)
    finish_suspends (self);
}

gboolean
ab_session_suspend_finish (AbSession *self, GAsyncResult *result,
                           GError **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
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
  if (get_pid (self) == 0)
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
  const AbAgentProfile *old = profile (self);
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
    switch_agent (self);
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
  return get_pid (self);
}

const char *
ab_session_get_acp_session (AbSession *self)
{
  return self->acp_session != NULL ? self->acp_session : "";
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
  return k->dict != NULL && k->state == self->state && k->pid == get_pid (self)
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
  k->pid = get_pid (self);
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
      g_value_set_uint (value, get_pid (self));
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

  g_queue_clear_full (&self->queue, (GDestroyNotify)turn_free);
  g_queue_clear_full (&self->waiters, (GDestroyNotify)waiter_free);
  g_queue_clear_full (&self->endings, (GDestroyNotify)turn_free);
  g_clear_pointer (&self->current, turn_free);
  g_ptr_array_unref (self->pending_updates);
  g_ptr_array_unref (self->suspend_tasks);
  g_hash_table_unref (self->permissions);
  g_clear_object (&self->launcher);
  g_clear_pointer (&self->config, ab_config_unref);
  g_free (self->thread);
  g_free (self->agent);
  g_free (self->path);
  g_free (self->cwd);
  g_free (self->state_dir);
  g_free (self->store_dir);
  g_free (self->acp_session);
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

  hold_path = g_strdup (g_getenv ("AGENTBROKER_TEST_HOLD_RECORDS"));

  object_class->get_property = ab_session_get_property;
  object_class->dispose = ab_session_dispose;
  object_class->finalize = ab_session_finalize;

  props[PROP_STATE]
      = g_param_spec_string ("state", NULL, NULL, "suspended", flags);
  props[PROP_PID]
      = g_param_spec_uint ("pid", NULL, NULL, 0, G_MAXUINT, 0, flags);
  props[PROP_ACP_SESSION]
      = g_param_spec_string ("acp-session", NULL, NULL, "", flags);
  props[PROP_LAST_ACTIVITY] = g_param_spec_uint64 ("last-activity", NULL, NULL,
                                                   0, G_MAXUINT64, 0, flags);
  props[PROP_TURNS]
      = g_param_spec_uint ("turns", NULL, NULL, 0, G_MAXUINT, 0, flags);
  props[PROP_QUEUED]
      = g_param_spec_uint ("queued", NULL, NULL, 0, G_MAXUINT, 0, flags);
  props[PROP_LAST_TURN]
      = g_param_spec_uint64 ("last-turn", NULL, NULL, 0, G_MAXUINT64, 0, flags);
  props[PROP_LAST_REASON]
      = g_param_spec_string ("last-reason", NULL, NULL, "", flags);
  props[PROP_CWD] = g_param_spec_string ("cwd", NULL, NULL, "", flags);
  g_object_class_install_properties (object_class, N_PROPS, props);

  /* (turn, updates, recipient): recipient is the prompting connection's
   * unique name, or NULL for updates outside a turn. */
  signals[SIGNAL_UPDATE] = g_signal_new (
      "update", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
      NULL, G_TYPE_NONE, 3, G_TYPE_UINT64, G_TYPE_STRV, G_TYPE_STRING);
  /* (turn, reason, message, recipient, duration µs or -1 for a turn
   * dropped before it started) */
  signals[SIGNAL_TURN_ENDED] = g_signal_new (
      "turn-ended", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
      NULL, G_TYPE_NONE, 5, G_TYPE_UINT64, G_TYPE_STRING, G_TYPE_STRING,
      G_TYPE_STRING, G_TYPE_INT64);
  signals[SIGNAL_PERMISSION_REQUESTED] = g_signal_new (
      "permission-requested", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
      NULL, NULL, NULL, G_TYPE_NONE, 4, G_TYPE_UINT64, G_TYPE_STRING,
      G_TYPE_STRING, G_TYPE_STRING);
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
  self->created = g_get_real_time ();
  self->last_activity = self->created;
  prof = profile (self);
  if (prof != NULL)
    self->cwd = ab_agent_expand_working_directory (prof->working_directory,
                                                   thread, state_dir);
  else
    self->cwd = g_strdup ("");
  return self;
}

/* A session of the previous instance, suspended until its next prompt. */
AbSession *
ab_session_new_from_record (const AbSessionRecord *record, AbConfig *config,
                            const char *state_dir)
{
  AbSession *self = ab_session_new (record->thread, record->agent,
                                    (uid_t)record->owner, config, state_dir);
  const AbAgentProfile *prof = profile (self);

  g_free (self->cwd);
  self->cwd = g_strdup (record->cwd);
  self->acp_session = g_strdup (record->acp_session);
  self->created = record->created;
  self->last_activity = record->last_activity;
  self->turns = record->turns;
  self->last_turn = record->last_turn;
  self->last_reason = g_strdup (record->last_reason);
  self->interrupted_turn = record->interrupted_turn;
  self->interrupted_reported = record->interrupted_reported;

  if (record->running_turn != 0)
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
          accept_turn (self, record->running_text, NULL);
        }
      persist (self);
    }
  return self;
}
