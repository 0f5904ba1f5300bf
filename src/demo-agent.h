/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker-demo-agent — what its files share: the sessions, the turns
 * and their steps, the agent's state, and the functions that cross files
 *
 * demo-agent.c reads the requests and runs the main loop, demo-agent-wire.c
 * writes JSON-RPC, demo-agent-session.c keeps the sessions and their
 * transcripts, demo-agent-turn.c runs a turn step by step, and
 * demo-agent-modes.c plans a turn from the prompt's mode.  Private to the
 * demo agent; nothing of agentbroker includes it.
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define DEMO_NAME "agentbroker-demo-agent"

enum
{
  RPC_PARSE_ERROR = -32700,
  RPC_INVALID_REQUEST = -32600,
  RPC_METHOD_NOT_FOUND = -32601,
  RPC_INVALID_PARAMS = -32602,
  RPC_INTERNAL_ERROR = -32603,
  ACP_RESOURCE_NOT_FOUND = -32002,
};

typedef struct
{
  char *role; /* "user" or "agent" */
  char *text;
} DemoEntry;

typedef struct _DemoTurn DemoTurn;

typedef struct
{
  char *id;
  char *cwd;
  char *log_path;
  GPtrArray *history;    /* of DemoEntry */
  const char *opened_by; /* static: the request that opened it here */
  DemoTurn *turn;        /* the running turn, or NULL */
} DemoSession;

typedef enum
{
  STEP_TEXT,       /* agent_message_chunk with step->text */
  STEP_UPDATE,     /* step->update as is */
  STEP_STREAM,     /* step->n generated chunks ("stream") */
  STEP_PAUSE,      /* only the delay ("sleep") */
  STEP_HANG,       /* stay here; only a cancel ends the turn */
  STEP_GATE,       /* stay here until the file step->text exists */
  STEP_CRASH,      /* _exit (3) */
  STEP_GARBAGE,    /* a line that is not JSON */
  STEP_LONGLINE,   /* one update line of step->n bytes */
  STEP_PERMISSION, /* ask the client, resume when it answers */
  STEP_FLOOD,      /* step->n permission requests, no waiting */
  STEP_FAIL,       /* answer session/prompt with a JSON-RPC error */
} DemoStepKind;

typedef struct
{
  DemoStepKind kind;
  guint delay_ms; /* waited before the step runs */
  char *text;
  JsonObject *update;
  guint64 n;
} DemoStep;

struct _DemoTurn
{
  DemoSession *session;
  JsonNode *request_id;
  GQueue steps; /* of DemoStep */
  guint source_id;
  gboolean ignore_cancel;
  gint64 permission_id; /* our pending request to the client, or 0 */
  char *tool_call_id;
  guint64 stream_next;
  guint stream_bytes;
  guint64 flood_sent;
  char *flood_title;
  gboolean stream_stamp;
  gint64 pace_interval_us; /* between chunks; 0 = as fast as possible */
  gint64 pace_due_us;      /* when the next paced chunk is due (monotonic) */
  int pace_timerfd;        /* -1 until a paced chunk is waited for */
  GString *reply;          /* what we said, for the transcript */
};

typedef struct
{
  GMainLoop *loop;
  GHashTable *sessions; /* id → DemoSession */
  gint64 next_request_id;
  guint tool_calls;
  char *forced_mode; /* prompt mode from the environment, or NULL */
  gboolean refuse_initialize;
  gboolean refuse_load;
  gboolean resume; /* advertise sessionCapabilities.resume */
  gboolean refuse_resume;
  gboolean usage; /* a usage_update at the end of each turn */
  gboolean ignore_stdin_eof;
  guint stdin_source;
  /* ids of "permission-flood" requests, whose answers nobody waits for */
  gint64 flood_first_id;
  gint64 flood_last_id;
} DemoAgent;

/* The one agent of the process (demo-agent.c). */
extern DemoAgent agent;

/* ---- demo-agent.c ---- */

/* One line on stderr, prefixed with the program's name and pid. */
void demo_log (const char *format, ...) G_GNUC_PRINTF (1, 2);

/* ---- demo-agent-wire.c: writing JSON-RPC ---- */

/* Writes @data and a newline to stdout; exits if the client is gone. */
void write_line (const char *data, gsize len);
/* A message with only "jsonrpc": "2.0". */
JsonObject *message_new (void);
/* Takes ownership of object. */
JsonNode *object_node (JsonObject *object);
void send_message (JsonObject *message);
void send_result (JsonNode *id, JsonNode *result);
void send_empty_result (JsonNode *id);
/* id may be NULL for errors about unparseable input; data may be NULL */
void send_error (JsonNode *id, int code, const char *text,
                 const char *data_text);
/* Takes ownership of update. */
void send_update (const char *session_id, JsonObject *update);
JsonObject *text_block_new (const char *text);
/* kind: agent_message_chunk or user_message_chunk */
JsonObject *chunk_update_new (const char *kind, const char *text);
JsonObject *tool_call_new (const char *update_kind, const char *id,
                           const char *title, const char *kind,
                           const char *status);

/* ---- demo-agent-session.c: sessions and their transcript ---- */

void demo_session_free (gpointer data);
/* Session ids become file names, so only a tame alphabet is accepted. */
gboolean session_id_is_valid (const char *id);
DemoSession *session_new (const char *id, const char *cwd);
/* Adds an entry to the history and appends it to the transcript. */
void session_remember (DemoSession *session, const char *role,
                       const char *text);
/* Reads the transcript into the history. */
gboolean session_read_log (DemoSession *session, GError **error);
/* The number of prompts in the history, and the last one (or NULL). */
guint session_count_prompts (DemoSession *session, const char **last_prompt);
/* The session that @params names; if there is none and @id is not NULL,
 * answers @id with an error. */
DemoSession *lookup_session (JsonObject *params, JsonNode *id);

/* ---- demo-agent-turn.c: running a turn ---- */

void demo_step_free (gpointer data);
DemoStep *turn_add_step (DemoTurn *turn, DemoStepKind kind, guint delay_ms);
void turn_add_text (DemoTurn *turn, guint delay_ms, const char *text);
void turn_add_update (DemoTurn *turn, guint delay_ms, JsonObject *update);
/* Answers the prompt with @stop_reason and frees @turn. */
void turn_finish (DemoTurn *turn, const char *stop_reason);
/* The client answered session/request_permission: finish the tool call and
 * say what was chosen. */
void turn_permission_answered (DemoTurn *turn, JsonObject *response);
/* Runs the next steps once the first one's delay has passed. */
void turn_schedule (DemoTurn *turn);
/* session/cancel, unless the turn ignores it. */
void turn_cancel (DemoTurn *turn);

/* ---- demo-agent-modes.c: what a turn does ---- */

/* Chooses what the turn does from the mode text: the prompt, or the mode
 * forced through AGENTBROKER_DEMO_MODE. */
void turn_plan (DemoTurn *turn, const char *mode_text, const char *prompt);
/* The "blocks" mode: one chunk per block of @blocks saying what it
 * holds. */
void turn_plan_blocks (DemoTurn *turn, JsonArray *blocks);

G_END_DECLS
