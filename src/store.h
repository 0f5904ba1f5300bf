/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — durable session records in the state directory */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* Largest record file read back; a record holds the running prompt and
 * queued ones up to AB_STORE_MAX_QUEUED_BYTES. */
#define AB_STORE_MAX_RECORD_BYTES (8 * 1024 * 1024)
#define AB_STORE_MAX_QUEUED_BYTES (3 * 1024 * 1024)
#define AB_STORE_MAX_QUEUED 10000
#define AB_STORE_MAX_PERMISSIONS 8
/* A title longer than this is refused (the session keeps 256 bytes). */
#define AB_STORE_MAX_TITLE_BYTES 1024

typedef struct
{
  char *thread;
  char *agent;
  guint32 owner;
  char *cwd;
  char *acp_session; /* NULL until the agent named one */
  gint64 created;
  gint64 last_activity;
  guint64 turns;
  guint64 last_turn;
  char *last_reason;        /* NULL if no turn ended yet */
  char *title;              /* the agent's title for it, or NULL */
  guint64 running_turn;     /* the turn in flight when written, or 0 */
  char *running_text;       /* its prompt, for resend_interrupted */
  guint64 interrupted_turn; /* cut off by an earlier instance, or 0 */
  gboolean interrupted_reported;
  /* A restart handed the running turn over to the next instance: the
   * agent still works on it, and the answer to request running_rpc_id is
   * its end; its updates go to running_sender too. */
  gboolean handed_over;
  gint64 running_rpc_id;
  char *running_sender;
  /* A permission request of that turn waiting for its answer: the agent's
   * request id and params, as JSON. */
  char *permission_rpc_id;
  char *permission_params;
  /* The stream's numbers: the last one given, or a reservation above
   * it; the next instance gives numbers above this one. */
  guint64 stream_seq;
  /* The prompts queued behind the running turn, oldest first: a JSON
   * array of {turn, text, content?, sender?} (session-record.c reads
   * it), or NULL. */
  JsonNode *queued;
  /* Every permission request of the running turn waiting for an answer
   * at a restart: a JSON array of {rpc_id, params}, each JSON text, or
   * NULL.  (An earlier version kept one, in permission_rpc_id and
   * permission_params.) */
  JsonNode *permissions;
} AbSessionRecord;

void ab_session_record_free (AbSessionRecord *record);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbSessionRecord, ab_session_record_free)

char *ab_session_record_to_json (const AbSessionRecord *record);
AbSessionRecord *ab_session_record_parse (const char *data, gsize len,
                                          GError **error);
/* The same; @fast FALSE reads every record with json-glib, never with
 * the fast reader of the daemon's own format. For the fuzzer and tests,
 * which check that both read the same. */
AbSessionRecord *ab_session_record_parse_full (const char *data, gsize len,
                                               gboolean fast, GError **error);

char *ab_store_dir (const char *state_dir);

/* Called in the main context that queued the write, once the record (or
 * a newer one of the same thread) is on disk; @error says why not. */
typedef void (*AbStoreSavedFunc) (gpointer user_data, const GError *error);

/* Writes @record on a worker thread, atomically (a temporary file,
 * fsync, rename, fsync of the directory), 0600. A
 * write of the same record still waiting is superseded, never done;
 * writes of one record are done in order. @func may be NULL (a failure
 * is then logged). */
void ab_store_save_async (const char *store_dir, const AbSessionRecord *record,
                          AbStoreSavedFunc func, gpointer user_data);
/* Blocks until every queued write is on disk, and runs the callbacks due
 * in the thread-default main context (and any writes they queue).
 * Returns whether it ran any. For the end of the process. */
gboolean ab_store_flush (void);
/* Waits for the record's queued writes, then removes it. */
gboolean ab_store_delete (const char *store_dir, const char *thread,
                          GError **error);
GPtrArray *ab_store_load_all (const char *store_dir);

G_END_DECLS
