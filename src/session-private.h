/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the inside of one session, shared by its files
 *
 * session.c holds the object, its properties and its public calls;
 * session-turns.c the turns, their queue, the stream of updates and the
 * permission policy; session-record.c the order in which the record goes
 * to disk; session-agent.c the agent's start, messages and end.  Nothing
 * outside these files includes this header.
 */
#pragma once

#include <glib/gi18n.h>

#include "acp-connection.h"
#include "acp-usage.h"
#include "acp.h"
#include "agent-launcher.h"
#include "error.h"
#include "log.h"
#include "session.h"
#include "store.h"
#include "transcript.h"

G_BEGIN_DECLS

typedef struct
{
  guint64 number;
  char *text;
  JsonNode *content; /* ACP content blocks, or NULL: @text alone */
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
  JsonNode *content;
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
  AbTranscript *transcript; /* NULL without a store */
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
  char *title; /* session_info_update's, or NULL */
  gboolean history_lost;
  gboolean restart_pending; /* the profile changed: new agent next turn */
  guint handshake_source;
  char *failure; /* why the last start or run failed */

  /* prompts */
  GQueue queue;              /* AbTurn *, accepted, not yet started */
  JsonNode *queued_node;     /* the queue as the record keeps it */
  guint queued_kept;         /* how many prompts of the queue it holds */
  gboolean queued_dirty;     /* the queue changed since */
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
  /* A turn the previous instance handed over at a restart, its agent
   * still at work on it, to go on with once the agent is reattached;
   * and, in the instance handing it over, the request id to name. */
  guint64 handed_turn;
  char *handed_text;
  char *handed_sender;
  gint64 handed_rpc_id;
  gboolean handing_over;
  /* the permission requests of that turn waiting for an answer: an
   * array of {rpc_id, params}, each JSON text, or NULL */
  JsonNode *handed_permissions;

  /* record writes not yet on disk, and the ended turns whose TurnEnded
   * waits for one, oldest first */
  guint writes;
  GQueue endings;
  gboolean suspends_wait; /* the agent is gone; suspends wait for writes */
  /* Turns up to this one were named running by a record on disk: their
   * prompts may go to the agent. */
  guint64 running_recorded;
  /* The turn a prompt waiting for the agent will get, already written as
   * running (session_record_waiting_prompt), or 0; and which write that was. */
  guint64 waiting_turn;
  guint waiting_seq;

  DictCache dict; /* the last ListSessions dictionary */

  /* updates read but not yet signalled */
  GPtrArray *pending_updates;
  guint64 pending_turn;
  guint flush_source;

  /* the stream's numbers (session-stream.c): the last given, the
   * highest a record on disk reserved, the first this object gave; and
   * the latest signals, oldest first, for WatchFrom */
  guint64 stream_seq;
  guint64 stream_reserved;
  guint64 stream_written; /* what the last record written keeps */
  guint64 stream_first;
  gboolean stream_inherited; /* from a record: an earlier instance's */
  gboolean stream_sealed;    /* the record keeps the last number given */
  GQueue replay;             /* AbStreamEvent * */
  gsize replay_bytes;
  guint replay_expiry; /* drops the signals kept too long */

  GHashTable *permissions; /* id → PendingPermission */
  guint permission_counter;
  guint64 permissions_over_cap; /* denied at once this turn: too many */

  GPtrArray *suspend_tasks; /* GTask *, completed when the agent is gone */

  /* what the agent's usage_update said last, and when "token-usage" was
   * notified (monotonic µs) or will be */
  AbAcpUsage token_usage;
  gint64 usage_notified;
  guint usage_source;
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
  PROP_TOKEN_USAGE,
  N_PROPS
};

enum
{
  SIGNAL_UPDATE,
  SIGNAL_TURN_ENDED,
  SIGNAL_PERMISSION_REQUESTED,
  SIGNAL_AGENT_READY,
  N_SIGNALS
};

extern GParamSpec *session_props[N_PROPS];
extern guint session_signals[N_SIGNALS];

/* Runs once the record written before it is on disk. */
typedef void (*PersistedFunc) (AbSession *self, gpointer data);

/* session.c: the parts of the object */
guint session_get_pid (AbSession *self);
void session_notify_queued (AbSession *self);
const AbAgentProfile *session_profile (AbSession *self);
void session_set_state (AbSession *self, AbSessionState state);
void session_touch (AbSession *self);
void session_turn_free (AbTurn *turn);
void session_adopt_turn (AbSession *self);
void session_hand_over_permissions (AbSession *self);
void session_ask_handed_permissions (AbSession *self);
void session_waiter_free (StartWaiter *waiter);

/* session-record.c: the record on disk */
void session_fill_record (AbSession *self, AbSessionRecord *record);
void session_persist (AbSession *self);
void session_persist_record (AbSession *self, const AbSessionRecord *record,
                             PersistedFunc then, gpointer data);
void session_persist_then (AbSession *self, PersistedFunc then, gpointer data);
void session_drop_unrecorded_queue (AbSession *self);
void session_take_queued (AbSession *self, const AbSessionRecord *record);

/* session-turns.c: turns, their queue, the stream and permissions */
guint64 session_accept_turn (AbSession *self, const char *text,
                             JsonNode *content, const char *sender);
void session_cut_turn (AbSession *self, const char *reason);
void session_deny_all_permissions (AbSession *self);
void session_drop_queue (AbSession *self, const char *reason,
                         const char *message);
void session_end_turn (AbSession *self, const char *reason,
                       const char *message);
void session_flush_updates (AbSession *self);
void session_forget_waiting_prompt (AbSession *self);
void session_on_permission_request (AbAcpConnection *conn, JsonNode *id,
                                    JsonNode *params, AbSession *self);
void session_queue_update (AbSession *self, guint64 turn, char *json);
void session_record_waiting_prompt (AbSession *self, const char *text);
void session_schedule_kick (AbSession *self);
void session_switch_agent (AbSession *self);

/* session-stream.c: the stream's numbers and the signals kept */
void session_stream_init (AbSession *self, guint64 last);
void session_stream_clear (AbSession *self);
guint64 session_stream_reserve (AbSession *self);
guint64 session_stream_update (AbSession *self, guint64 turn,
                               const char *const *updates);
guint64 session_stream_turn_ended (AbSession *self, guint64 turn,
                                   const char *reason, const char *message);
guint64 session_stream_permission (AbSession *self, guint64 turn,
                                   const char *request, const char *json);

/* session-agent.c: the agent, its start and its end */
void session_complete_suspend_tasks (AbSession *self);
void session_fail_waiters (AbSession *self, const char *message);
void session_finish_suspends (AbSession *self);
void session_refuse_waiters (AbSession *self, int code, const char *message);
void session_start_agent (AbSession *self);
void session_teardown (AbSession *self, AbSessionState final_state);

G_END_DECLS
