/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — durable session records
 *
 * One JSON file per session in $STATE_DIRECTORY/sessions, named by the
 * SHA-256 of its thread id (thread ids can be longer than a file name).
 * Written atomically: temporary file, fsync, 0600, rename, fsync of the
 * directory; so a SIGKILL at any moment leaves the old record or the new
 * one. Records are read back as untrusted input: every field is checked,
 * and a record that fails is moved aside as *.corrupt.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "error.h"
#include "json-text.h"
#include "store.h"
#include "thread-id.h"

#define RECORD_VERSION 1

void
ab_session_record_free (AbSessionRecord *record)
{
  if (record == NULL)
    return;
  g_free (record->thread);
  g_free (record->agent);
  g_free (record->cwd);
  g_free (record->acp_session);
  g_free (record->last_reason);
  g_free (record->title);
  g_free (record->running_text);
  g_free (record->running_sender);
  g_free (record->permission_rpc_id);
  g_free (record->permission_params);
  g_clear_pointer (&record->queued, json_node_unref);
  g_clear_pointer (&record->permissions, json_node_unref);
  g_free (record);
}

char *
ab_session_record_to_json (const AbSessionRecord *r)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;

#define STR(name, value)                                                       \
  do                                                                           \
    {                                                                          \
      json_builder_set_member_name (b, name);                                  \
      json_builder_add_string_value (b, value);                                \
    }                                                                          \
  while (0)
#define INT(name, value)                                                       \
  do                                                                           \
    {                                                                          \
      json_builder_set_member_name (b, name);                                  \
      json_builder_add_int_value (b, (gint64)(value));                         \
    }                                                                          \
  while (0)

  json_builder_begin_object (b);
  INT ("version", RECORD_VERSION);
  STR ("thread", r->thread);
  STR ("agent", r->agent);
  INT ("owner", r->owner);
  STR ("cwd", r->cwd);
  if (r->acp_session != NULL)
    STR ("acp_session", r->acp_session);
  INT ("created", r->created);
  INT ("last_activity", r->last_activity);
  INT ("turns", r->turns);
  INT ("last_turn", r->last_turn);
  if (r->last_reason != NULL)
    STR ("last_reason", r->last_reason);
  if (r->title != NULL)
    STR ("title", r->title);
  if (r->running_turn != 0)
    {
      INT ("running_turn", r->running_turn);
      STR ("running_text", r->running_text != NULL ? r->running_text : "");
    }
  if (r->running_turn != 0 && r->handed_over)
    {
      json_builder_set_member_name (b, "handed_over");
      json_builder_add_boolean_value (b, TRUE);
      INT ("running_rpc_id", r->running_rpc_id);
      if (r->running_sender != NULL)
        STR ("running_sender", r->running_sender);
      if (r->permission_rpc_id != NULL && r->permission_params != NULL)
        {
          STR ("permission_rpc_id", r->permission_rpc_id);
          STR ("permission_params", r->permission_params);
        }
    }
  if (r->interrupted_turn != 0)
    INT ("interrupted_turn", r->interrupted_turn);
  if (r->stream_seq != 0)
    INT ("stream_seq", r->stream_seq);
  if (r->queued != NULL)
    {
      json_builder_set_member_name (b, "queued");
      json_builder_add_value (b, json_node_copy (r->queued));
    }
  if (r->running_turn != 0 && r->handed_over && r->permissions != NULL)
    {
      json_builder_set_member_name (b, "permissions");
      json_builder_add_value (b, json_node_copy (r->permissions));
    }
  json_builder_set_member_name (b, "interrupted_reported");
  json_builder_add_boolean_value (b, r->interrupted_reported);
  json_builder_end_object (b);
#undef STR
#undef INT

  root = json_builder_get_root (b);
  return json_to_string (root, FALSE);
}

/* ---- reading a record ------------------------------------------------ */

/* The members a record may have; any other is ignored. */
enum
{
  M_VERSION,
  M_THREAD,
  M_AGENT,
  M_OWNER,
  M_CWD,
  M_ACP_SESSION,
  M_CREATED,
  M_LAST_ACTIVITY,
  M_TURNS,
  M_LAST_TURN,
  M_LAST_REASON,
  M_RUNNING_TURN,
  M_RUNNING_TEXT,
  M_INTERRUPTED_TURN,
  M_INTERRUPTED_REPORTED,
  M_HANDED_OVER,
  M_RUNNING_RPC_ID,
  M_RUNNING_SENDER,
  M_PERMISSION_RPC_ID,
  M_PERMISSION_PARAMS,
  M_STREAM_SEQ,
  M_TITLE,
  N_MEMBERS
};

static const char *const member_names[N_MEMBERS] = {
  [M_VERSION] = "version",
  [M_THREAD] = "thread",
  [M_AGENT] = "agent",
  [M_OWNER] = "owner",
  [M_CWD] = "cwd",
  [M_ACP_SESSION] = "acp_session",
  [M_CREATED] = "created",
  [M_LAST_ACTIVITY] = "last_activity",
  [M_TURNS] = "turns",
  [M_LAST_TURN] = "last_turn",
  [M_LAST_REASON] = "last_reason",
  [M_RUNNING_TURN] = "running_turn",
  [M_RUNNING_TEXT] = "running_text",
  [M_INTERRUPTED_TURN] = "interrupted_turn",
  [M_INTERRUPTED_REPORTED] = "interrupted_reported",
  [M_HANDED_OVER] = "handed_over",
  [M_RUNNING_RPC_ID] = "running_rpc_id",
  [M_RUNNING_SENDER] = "running_sender",
  [M_PERMISSION_RPC_ID] = "permission_rpc_id",
  [M_PERMISSION_PARAMS] = "permission_params",
  [M_STREAM_SEQ] = "stream_seq",
  [M_TITLE] = "title",
};

/* A member as read, before it is checked. */
typedef enum
{
  MEMBER_ABSENT,
  MEMBER_STRING,
  MEMBER_INT,
  MEMBER_BOOLEAN,
  MEMBER_OTHER, /* null, a fraction, an object, an array */
} MemberType;

typedef struct
{
  MemberType type;
  char *string;
  gint64 number; /* also a boolean */
} Member;

typedef struct
{
  Member m[N_MEMBERS];
} Members;

static void
members_clear (Members *ms)
{
  for (guint i = 0; i < N_MEMBERS; i++)
    g_free (ms->m[i].string);
  memset (ms, 0, sizeof *ms);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Members, members_clear)

static void
members_from_json (JsonObject *obj, Members *ms)
{
  for (guint i = 0; i < N_MEMBERS; i++)
    {
      JsonNode *node = json_object_get_member (obj, member_names[i]);
      Member *m = &ms->m[i];

      if (node == NULL)
        m->type = MEMBER_ABSENT;
      else if (!JSON_NODE_HOLDS_VALUE (node))
        m->type = MEMBER_OTHER;
      else
        switch (json_node_get_value_type (node))
          {
          case G_TYPE_STRING:
            m->type = MEMBER_STRING;
            m->string = g_strdup (json_node_get_string (node));
            break;
          case G_TYPE_INT64:
            m->type = MEMBER_INT;
            m->number = json_node_get_int (node);
            break;
          case G_TYPE_BOOLEAN:
            m->type = MEMBER_BOOLEAN;
            m->number = json_node_get_boolean (node);
            break;
          default:
            m->type = MEMBER_OTHER;
          }
    }
}

static gboolean
get_string (Members *ms, guint i, gboolean required, gsize max_len, char **out,
            GError **error)
{
  Member *m = &ms->m[i];

  *out = NULL;
  if (m->type == MEMBER_ABSENT)
    {
      if (!required)
        return TRUE;
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("field '%s' is missing"), member_names[i]);
      return FALSE;
    }
  if (m->type != MEMBER_STRING)
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("field '%s' is not a string"), member_names[i]);
      return FALSE;
    }
  if (strlen (m->string) > max_len)
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("field '%s' is longer than %zu bytes"), member_names[i],
                   max_len);
      return FALSE;
    }
  *out = g_steal_pointer (&m->string);
  return TRUE;
}

static gboolean
get_int (Members *ms, guint i, gint64 min, gint64 max, gint64 *out,
         GError **error)
{
  const Member *m = &ms->m[i];

  *out = 0;
  if (m->type == MEMBER_ABSENT)
    return TRUE;
  if (m->type != MEMBER_INT)
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("field '%s' is not an integer"), member_names[i]);
      return FALSE;
    }
  *out = m->number;
  if (*out < min || *out > max)
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("field '%s' is out of range"), member_names[i]);
      return FALSE;
    }
  return TRUE;
}

/* ---- the fast path ----------------------------------------------------- *
 *
 * json-glib's parser was two thirds of a start with 10,000 records. A
 * record as ab_session_record_to_json() writes it is one flat object of
 * known members with string, integer and boolean values: such a text,
 * once json-text.h's strict check passed, is read here directly, and
 * checked by the same code as any other. Anything else (another or a
 * repeated member, nesting, null, a fraction or an exponent, more than 18
 * digits, a \u escape, a control character, invalid UTF-8) is left to
 * json-glib, which accepts or refuses it as before; what is read here is
 * what json-glib would read (fuzz/fuzz-record.c compares the two, through
 * ab_session_record_parse_full()).
 */

/* Fills @ms from @data; FALSE if json-glib must read it. */
static gboolean
scan_record (const char *data, gsize len, Members *ms)
{
  AbJsonObjectIter iter;
  AbJsonSpan name, value;

  if (!ab_json_is_valid (data, len, 1)
      || !ab_json_object_iter_init (&iter, data, len))
    return FALSE;
  while (ab_json_object_iter_next (&iter, &name, &value))
    {
      Member *m;
      gboolean flag;
      guint i;

      for (i = 0; i < N_MEMBERS; i++)
        if (strlen (member_names[i]) == name.len
            && memcmp (member_names[i], name.data, name.len) == 0)
          break;
      if (i == N_MEMBERS || ms->m[i].type != MEMBER_ABSENT)
        return FALSE;
      m = &ms->m[i];
      if (value.data[0] == '"')
        {
          m->string = ab_json_span_dup_string (&value);
          if (m->string == NULL)
            return FALSE;
          m->type = MEMBER_STRING;
        }
      else if (ab_json_span_get_boolean (&value, &flag))
        {
          m->type = MEMBER_BOOLEAN;
          m->number = flag;
        }
      else if (ab_json_span_get_int (&value, &m->number))
        m->type = MEMBER_INT;
      else
        return FALSE;
    }
  return TRUE;
}

AbSessionRecord *
ab_session_record_parse (const char *data, gsize len, GError **error)
{
  return ab_session_record_parse_full (data, len, TRUE, error);
}

AbSessionRecord *
ab_session_record_parse_full (const char *data, gsize len, gboolean fast,
                              GError **error)
{
  g_autoptr (AbSessionRecord) r = g_new0 (AbSessionRecord, 1);
  g_auto (Members) ms = { 0 };
  gint64 version, owner, created, activity, turns, last_turn, running;
  gint64 interrupted, rpc_id, stream_seq;
  JsonNode *queued, *permissions;

  if (len > AB_STORE_MAX_RECORD_BYTES)
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("record is larger than %d bytes"),
                   AB_STORE_MAX_RECORD_BYTES);
      return NULL;
    }
  if (!fast || !scan_record (data, len, &ms))
    {
      g_autoptr (JsonParser) parser = json_parser_new ();
      g_autoptr (JsonNode) root = NULL;

      members_clear (&ms);
      /* bounded nesting, and strings that can become D-Bus properties */
      root = ab_json_parse_untrusted (parser, data, len, error);
      if (root == NULL)
        return NULL;
      if (!JSON_NODE_HOLDS_OBJECT (root))
        {
          g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                       _ ("record is not a JSON object"));
          return NULL;
        }
      members_from_json (json_node_get_object (root), &ms);
      /* Only json-glib reads an array: the fast path leaves records
       * with one to it. */
      queued = json_object_get_member (json_node_get_object (root), "queued");
      if (queued != NULL
          && (!JSON_NODE_HOLDS_ARRAY (queued)
              || json_array_get_length (json_node_get_array (queued))
                     > AB_STORE_MAX_QUEUED))
        {
          g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                       _ ("field 'queued' is not an array of at most %d "
                          "prompts"),
                       AB_STORE_MAX_QUEUED);
          return NULL;
        }
      if (queued != NULL)
        r->queued = json_node_copy (queued);
      permissions
          = json_object_get_member (json_node_get_object (root), "permissions");
      if (permissions != NULL
          && (!JSON_NODE_HOLDS_ARRAY (permissions)
              || json_array_get_length (json_node_get_array (permissions))
                     > AB_STORE_MAX_PERMISSIONS))
        {
          g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                       _ ("field 'permissions' is not an array of at most %d "
                          "requests"),
                       AB_STORE_MAX_PERMISSIONS);
          return NULL;
        }
      if (permissions != NULL)
        r->permissions = json_node_copy (permissions);
    }

  if (!get_int (&ms, M_VERSION, 0, G_MAXINT, &version, error))
    return NULL;
  if (version != RECORD_VERSION)
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("unknown record version %lld"), (long long)version);
      return NULL;
    }
  if (!get_string (&ms, M_THREAD, TRUE, 200, &r->thread, error)
      || !ab_thread_id_validate (r->thread, error)
      || !get_string (&ms, M_AGENT, TRUE, 64, &r->agent, error)
      || !get_string (&ms, M_CWD, TRUE, 4096, &r->cwd, error)
      || !get_string (&ms, M_ACP_SESSION, FALSE, 1024, &r->acp_session, error)
      || !get_string (&ms, M_LAST_REASON, FALSE, 64, &r->last_reason, error)
      || !get_string (&ms, M_TITLE, FALSE, AB_STORE_MAX_TITLE_BYTES, &r->title,
                      error)
      || !get_string (&ms, M_RUNNING_TEXT, FALSE, 1024 * 1024, &r->running_text,
                      error)
      || !get_int (&ms, M_OWNER, 0, G_MAXUINT32, &owner, error)
      || !get_int (&ms, M_CREATED, 0, G_MAXINT64, &created, error)
      || !get_int (&ms, M_LAST_ACTIVITY, 0, G_MAXINT64, &activity, error)
      || !get_int (&ms, M_TURNS, 0, G_MAXINT64, &turns, error)
      || !get_int (&ms, M_LAST_TURN, 0, G_MAXINT64, &last_turn, error)
      || !get_int (&ms, M_RUNNING_TURN, 0, G_MAXINT64, &running, error)
      || !get_int (&ms, M_INTERRUPTED_TURN, 0, G_MAXINT64, &interrupted, error)
      || !get_int (&ms, M_RUNNING_RPC_ID, 0, G_MAXINT64, &rpc_id, error)
      || !get_int (&ms, M_STREAM_SEQ, 0, G_MAXINT64, &stream_seq, error)
      || !get_string (&ms, M_RUNNING_SENDER, FALSE, 255, &r->running_sender,
                      error)
      || !get_string (&ms, M_PERMISSION_RPC_ID, FALSE, 256,
                      &r->permission_rpc_id, error)
      || !get_string (&ms, M_PERMISSION_PARAMS, FALSE, 1024 * 1024,
                      &r->permission_params, error))
    return NULL;
  if (r->running_sender != NULL && !g_dbus_is_unique_name (r->running_sender))
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("running_sender is not a unique bus name"));
      return NULL;
    }
  if (last_turn > turns || running > turns || interrupted > turns)
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("turn numbers are inconsistent"));
      return NULL;
    }

  r->owner = (guint32)owner;
  r->created = created;
  r->last_activity = activity;
  r->turns = (guint64)turns;
  r->last_turn = (guint64)last_turn;
  r->running_turn = (guint64)running;
  r->interrupted_turn = (guint64)interrupted;
  /* anything but true is false, as before */
  r->interrupted_reported = ms.m[M_INTERRUPTED_REPORTED].type == MEMBER_BOOLEAN
                            && ms.m[M_INTERRUPTED_REPORTED].number;
  r->running_rpc_id = rpc_id;
  r->stream_seq = (guint64)stream_seq;
  /* A turn handed over only with what it needs to go on. */
  r->handed_over = ms.m[M_HANDED_OVER].type == MEMBER_BOOLEAN
                   && ms.m[M_HANDED_OVER].number && running != 0 && rpc_id != 0;
  return g_steal_pointer (&r);
}

char *
ab_store_dir (const char *state_dir)
{
  return g_build_filename (state_dir, "sessions", NULL);
}

/* A record's file name: the SHA-256 of its thread id, and ".json". */
static char *
record_name (const char *thread)
{
  g_autofree char *hash
      = g_compute_checksum_for_string (G_CHECKSUM_SHA256, thread, -1);

  return g_strconcat (hash, ".json", NULL);
}

static char *
record_path (const char *store_dir, const char *thread)
{
  g_autofree char *name = record_name (thread);

  return g_build_filename (store_dir, name, NULL);
}

static gboolean
fsync_dir (const char *dir, GError **error)
{
  int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int saved;

  if (fd < 0 || fsync (fd) < 0)
    {
      saved = errno;
      if (fd >= 0)
        close (fd);
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   _ ("cannot sync directory %s: %s"), dir, g_strerror (saved));
      return FALSE;
    }
  close (fd);
  return TRUE;
}

/* The write itself: temporary file, fsync, 0600, rename, fsync of the
 * directory. Safe in any thread; one record is never written by two at
 * once (see the queue below). */
static gboolean
write_record (const char *store_dir, const char *path, const char *json,
              GError **error)
{
  g_autofree char *tmp = g_strconcat (path, ".tmp", NULL);
  gsize len = strlen (json);
  gsize written = 0;
  int fd;

  if (g_mkdir_with_parents (store_dir, 0700) != 0)
    {
      int saved = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   _ ("cannot create %s: %s"), store_dir, g_strerror (saved));
      return FALSE;
    }

  fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    {
      int saved = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   _ ("cannot write %s: %s"), tmp, g_strerror (saved));
      return FALSE;
    }
  while (written < len)
    {
      ssize_t n = write (fd, json + written, len - written);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        break;
      written += (gsize)n;
    }
  if (written < len || fsync (fd) < 0)
    {
      int saved = errno;
      close (fd);
      g_unlink (tmp);
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   _ ("cannot write %s: %s"), tmp, g_strerror (saved));
      return FALSE;
    }
  close (fd);
  if (g_rename (tmp, path) != 0)
    {
      int saved = errno;
      g_unlink (tmp);
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   _ ("cannot rename %s: %s"), tmp, g_strerror (saved));
      return FALSE;
    }
  return fsync_dir (store_dir, error);
}

/* ---- the write queue -------------------------------------------------- *
 *
 * Two fsyncs per write take milliseconds; the main loop does not wait for
 * them. Writes go to a few worker threads: concurrent fsyncs share the
 * file system's commits and the disk's cache flushes. Per record file
 * there is at most one write in progress and one waiting: a newer record
 * replaces the waiting one, which is never written. Each caller's
 * callback runs in its main context once a record at least as new as its
 * own is on disk (or failed), in the order the callers queued them.
 */

#define WRITER_THREADS 4

typedef struct
{
  GMainContext *context;
  AbStoreSavedFunc func;
  gpointer user_data;
  GError *error;
} Completion;

typedef struct
{
  char *path; /* the key */
  char *store_dir;
  AbSessionRecord *record; /* waiting to be written, or NULL */
  GPtrArray *waiting;      /* Completion *, for record */
} Entry;

static GMutex queue_lock;
static GCond queue_cond;    /* an entry finished or a completion ran */
static GHashTable *entries; /* path → Entry */
static GThreadPool *writers;
static GQueue done = G_QUEUE_INIT; /* Completion *, in order */
static GHashTable *scheduled;      /* GMainContext * with a dispatch pending */

static AbSessionRecord *
record_copy (const AbSessionRecord *r)
{
  AbSessionRecord *copy = g_memdup2 (r, sizeof *r);

  copy->thread = g_strdup (r->thread);
  copy->agent = g_strdup (r->agent);
  copy->cwd = g_strdup (r->cwd);
  copy->acp_session = g_strdup (r->acp_session);
  copy->last_reason = g_strdup (r->last_reason);
  copy->title = g_strdup (r->title);
  copy->running_text = g_strdup (r->running_text);
  copy->running_sender = g_strdup (r->running_sender);
  copy->permission_rpc_id = g_strdup (r->permission_rpc_id);
  copy->permission_params = g_strdup (r->permission_params);
  copy->queued = r->queued != NULL ? json_node_copy (r->queued) : NULL;
  copy->permissions
      = r->permissions != NULL ? json_node_copy (r->permissions) : NULL;
  return copy;
}

static void
completion_free (Completion *c)
{
  g_main_context_unref (c->context);
  g_clear_error (&c->error);
  g_free (c);
}

static void
entry_free (Entry *e)
{
  g_free (e->path);
  g_free (e->store_dir);
  g_clear_pointer (&e->record, ab_session_record_free);
  g_clear_pointer (&e->waiting, g_ptr_array_unref);
  g_free (e);
}

/* Runs the completions queued for @context, in order. Called without
 * queue_lock. */
static void
run_completions (GMainContext *context)
{
  for (;;)
    {
      Completion *c = NULL;

      g_mutex_lock (&queue_lock);
      for (GList *l = done.head; l != NULL; l = l->next)
        if (((Completion *)l->data)->context == context)
          {
            c = l->data;
            g_queue_delete_link (&done, l);
            break;
          }
      if (c == NULL)
        g_hash_table_remove (scheduled, context);
      g_mutex_unlock (&queue_lock);
      if (c == NULL)
        return;
      c->func (c->user_data, c->error);
      completion_free (c);
    }
}

static gboolean
on_completions (gpointer user_data)
{
  run_completions (user_data);
  return G_SOURCE_REMOVE;
}

/* With queue_lock held. */
static void
post_completions (GPtrArray *waiting, const GError *error)
{
  for (guint i = 0; i < waiting->len; i++)
    {
      Completion *c = g_ptr_array_index (waiting, i);

      c->error = error != NULL ? g_error_copy (error) : NULL;
      g_queue_push_tail (&done, c);
      if (!g_hash_table_contains (scheduled, c->context))
        {
          GSource *source = g_idle_source_new ();

          g_hash_table_add (scheduled, c->context);
          g_source_set_priority (source, G_PRIORITY_DEFAULT);
          g_source_set_callback (source, on_completions,
                                 g_main_context_ref (c->context),
                                 (GDestroyNotify)g_main_context_unref);
          g_source_set_static_name (source, "[agentbroker] record written");
          g_source_attach (source, c->context);
          g_source_unref (source);
        }
    }
  /* The Completions now belong to done. */
  g_ptr_array_set_free_func (waiting, NULL);
  g_ptr_array_unref (waiting);
}

/* A worker thread: writes @data's record, then any newer one queued for
 * the same file meanwhile, then forgets the entry. */
static void
writer_run (gpointer data, gpointer unused)
{
  Entry *e = data;

  g_mutex_lock (&queue_lock);
  while (e->record != NULL)
    {
      g_autoptr (AbSessionRecord) record = g_steal_pointer (&e->record);
      g_autoptr (GPtrArray) waiting = g_steal_pointer (&e->waiting);
      g_autoptr (GError) error = NULL;
      g_autofree char *json = NULL;

      g_mutex_unlock (&queue_lock);
      json = ab_session_record_to_json (record);
      if (!write_record (e->store_dir, e->path, json, &error)
          && waiting->len == 0)
        g_warning ("session %s: cannot save its record: %s", record->thread,
                   error->message);
      g_mutex_lock (&queue_lock);
      post_completions (g_steal_pointer (&waiting), error);
    }
  g_hash_table_remove (entries, e->path);
  g_cond_broadcast (&queue_cond);
  g_mutex_unlock (&queue_lock);
}

void
ab_store_save_async (const char *store_dir, const AbSessionRecord *record,
                     AbStoreSavedFunc func, gpointer user_data)
{
  g_autofree char *path = record_path (store_dir, record->thread);
  Entry *e;

  g_mutex_lock (&queue_lock);
  if (entries == NULL)
    {
      entries = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                       (GDestroyNotify)entry_free);
      scheduled = g_hash_table_new (NULL, NULL);
      writers
          = g_thread_pool_new (writer_run, NULL, WRITER_THREADS, FALSE, NULL);
    }
  e = g_hash_table_lookup (entries, path);
  if (e == NULL)
    {
      e = g_new0 (Entry, 1);
      e->path = g_steal_pointer (&path);
      e->store_dir = g_strdup (store_dir);
      g_hash_table_insert (entries, e->path, e);
      g_thread_pool_push (writers, e, NULL);
    }
  /* A record still waiting is replaced: this one is newer. */
  g_clear_pointer (&e->record, ab_session_record_free);
  e->record = record_copy (record);
  if (e->waiting == NULL)
    e->waiting
        = g_ptr_array_new_with_free_func ((GDestroyNotify)completion_free);
  if (func != NULL)
    {
      Completion *c = g_new0 (Completion, 1);

      c->context = g_main_context_ref_thread_default ();
      c->func = func;
      c->user_data = user_data;
      g_ptr_array_add (e->waiting, c);
    }
  g_mutex_unlock (&queue_lock);
}

/* Waits until nothing is queued or being written for @path (NULL: for
 * any record). */
static void
wait_written (const char *path)
{
  g_mutex_lock (&queue_lock);
  while (entries != NULL
         && (path != NULL ? g_hash_table_contains (entries, path)
                          : g_hash_table_size (entries) > 0))
    g_cond_wait (&queue_cond, &queue_lock);
  g_mutex_unlock (&queue_lock);
}

gboolean
ab_store_flush (void)
{
  GMainContext *context = g_main_context_ref_thread_default ();
  gboolean ran = FALSE;

  for (;;)
    {
      gboolean more;

      wait_written (NULL);
      g_mutex_lock (&queue_lock);
      more = FALSE;
      for (GList *l = done.head; l != NULL && !more; l = l->next)
        more = ((Completion *)l->data)->context == context;
      g_mutex_unlock (&queue_lock);
      if (!more)
        break;
      /* Callbacks may queue further writes: round again. */
      run_completions (context);
      ran = TRUE;
    }
  g_main_context_unref (context);
  return ran;
}

gboolean
ab_store_delete (const char *store_dir, const char *thread, GError **error)
{
  g_autofree char *path = record_path (store_dir, thread);

  /* A write still queued would bring the record back. */
  wait_written (path);
  if (g_unlink (path) != 0 && errno != ENOENT)
    {
      int saved = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   _ ("cannot remove %s: %s"), path, g_strerror (saved));
      return FALSE;
    }
  return fsync_dir (store_dir, error);
}

static void
set_aside (int dir_fd, const char *store_dir, const char *name, const char *why)
{
  g_autofree char *aside = g_strconcat (name, ".corrupt", NULL);

  g_warning ("session record %s/%s is unusable (%s); moved aside as %s",
             store_dir, name, why, aside);
  if (renameat (dir_fd, name, dir_fd, aside) != 0)
    g_warning ("cannot move %s/%s aside: %s", store_dir, name,
               g_strerror (errno));
}

/* Reads the record file @name of the directory @dir_fd: a regular file
 * of at most AB_STORE_MAX_RECORD_BYTES, opened without following a
 * symbolic link or waiting on a FIFO. Four system calls in the usual
 * case (openat, fstat, read, close), and no path walked from the root: at
 * 10,000 records a start made six each. NULL with @why set if unusable,
 * or with @why NULL if the file is gone meanwhile. */
static char *
read_record (int dir_fd, const char *name, gsize *len_out, char **why)
{
  g_autofree char *data = NULL;
  struct stat st;
  gsize size, len = 0;
  int fd;

  *why = NULL;
  fd = openat (dir_fd, name,
               O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  if (fd < 0)
    {
      if (errno != ENOENT)
        *why = g_strdup (errno == ELOOP ? "not a regular file"
                                        : g_strerror (errno));
      return NULL;
    }
  if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode))
    {
      *why = g_strdup ("not a regular file");
      close (fd);
      return NULL;
    }
  if (st.st_size > AB_STORE_MAX_RECORD_BYTES)
    {
      *why = g_strdup ("too large");
      close (fd);
      return NULL;
    }
  /* One byte more than its size, to see a file that grew meanwhile. */
  size = (gsize)st.st_size + 1;
  data = g_malloc (size + 1);
  for (;;)
    {
      ssize_t n = read (fd, data + len, size - len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          *why = g_strdup (g_strerror (errno));
          close (fd);
          return NULL;
        }
      if (n == 0)
        break;
      len += (gsize)n;
      /* All fstat() promised: the end, without asking again. */
      if (len == (gsize)st.st_size)
        break;
      if (len > AB_STORE_MAX_RECORD_BYTES)
        {
          *why = g_strdup ("too large");
          close (fd);
          return NULL;
        }
      if (len == size) /* it grew meanwhile */
        {
          size = MIN (size * 2, (gsize)AB_STORE_MAX_RECORD_BYTES + 1);
          data = g_realloc (data, size + 1);
        }
    }
  close (fd);
  data[len] = '\0';
  *len_out = len;
  return g_steal_pointer (&data);
}

/* Every readable record; the others are moved aside and logged. */
GPtrArray *
ab_store_load_all (const char *store_dir)
{
  GPtrArray *records
      = g_ptr_array_new_with_free_func ((GDestroyNotify)ab_session_record_free);
  DIR *dir = opendir (store_dir);
  struct dirent *entry;
  int dir_fd;

  if (dir == NULL)
    return records;
  dir_fd = dirfd (dir);

  while ((errno = 0, entry = readdir (dir)) != NULL)
    {
      const char *name = entry->d_name;
      g_autofree char *data = NULL;
      g_autofree char *why = NULL;
      g_autofree char *expected = NULL;
      g_autoptr (GError) error = NULL;
      g_autoptr (AbSessionRecord) record = NULL;
      gsize len = 0;

      if (g_str_has_suffix (name, ".tmp"))
        {
          /* a write cut short; the record before it stands */
          unlinkat (dir_fd, name, 0);
          continue;
        }
      if (!g_str_has_suffix (name, ".json"))
        continue;
      /* Not even opened, where the directory says what it is. */
      if (entry->d_type != DT_REG && entry->d_type != DT_UNKNOWN)
        {
          set_aside (dir_fd, store_dir, name, "not a regular file");
          continue;
        }
      data = read_record (dir_fd, name, &len, &why);
      if (data == NULL)
        {
          if (why != NULL)
            set_aside (dir_fd, store_dir, name, why);
          continue;
        }
      record = ab_session_record_parse (data, len, &error);
      if (record == NULL)
        {
          set_aside (dir_fd, store_dir, name, error->message);
          continue;
        }
      expected = record_name (record->thread);
      if (!g_str_equal (expected, name))
        {
          set_aside (dir_fd, store_dir, name,
                     "file name does not match its thread");
          continue;
        }
      g_ptr_array_add (records, g_steal_pointer (&record));
    }
  if (errno != 0)
    g_warning ("cannot read all of %s: %s", store_dir, g_strerror (errno));
  closedir (dir);
  return records;
}
