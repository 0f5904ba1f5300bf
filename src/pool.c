/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the pool
 *
 * Holds every session by thread id, creates them on their first prompt,
 * keeps the number of running agents within pool.max_sessions by
 * suspending an idle one (the caller's own first, see reserve_slot()), and
 * suspends or forgets sessions as pool.idle_timeout, pool.max_age and
 * pool.forget_after say.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <glib/gi18n.h>
#include <glib/gstdio.h>

#include "error.h"
#include "json-text.h"
#include "log.h"
#include "pool.h"
#include "store.h"
#include "thread-id.h"
#include "transcript.h"

/* How often idle and expired sessions are looked for, at most. */
#define SWEEP_MAX_MSEC 30000
#define SWEEP_MIN_MSEC 250

struct _AbPool
{
  GObject parent_instance;

  AbConfig *config;
  char *state_dir;
  AbAgentLauncher *launcher; /* every session's */
  GHashTable *sessions;      /* thread → AbSession */
  GHashTable *removing;      /* AbSession * being removed: each held by its
                                suspend until on_removed_stopped() */
  guint session_count, running_count, busy_count;
  guint sweep_source;
  gboolean restoring;      /* counted once at the end, not once per record */
  GHashTable *agents_seen; /* profile name → AgentSeen */
};

/* What the last agent of a profile said of itself, and when. */
typedef struct
{
  char *description;
  gint64 when; /* µs since the epoch */
} AgentSeen;

static void
agent_seen_free (AgentSeen *seen)
{
  g_free (seen->description);
  g_free (seen);
}

enum
{
  PROP_0,
  PROP_SESSION_COUNT,
  PROP_RUNNING_COUNT,
  PROP_BUSY_COUNT,
  N_PROPS
};

enum
{
  SIGNAL_SESSION_ADDED,
  SIGNAL_SESSION_REMOVED,
  N_SIGNALS
};

static GParamSpec *props[N_PROPS];
static guint signals[N_SIGNALS];

G_DEFINE_TYPE (AbPool, ab_pool, G_TYPE_OBJECT)

static void
set_count (AbPool *self, guint *field, guint value, int prop)
{
  if (*field == value)
    return;
  *field = value;
  g_object_notify_by_pspec (G_OBJECT (self), props[prop]);
}

static void
recount (AbPool *self)
{
  GHashTableIter iter;
  gpointer value;
  guint running = 0, busy = 0;

  /* A walk over every session: done once per restored record, it made a
   * start with 10,000 records quadratic (0.7 s of 3.2 s). */
  if (self->restoring)
    return;
  g_hash_table_iter_init (&iter, self->sessions);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      running += ab_session_is_running (value);
      busy += ab_session_is_busy (value);
    }
  set_count (self, &self->session_count, g_hash_table_size (self->sessions),
             PROP_SESSION_COUNT);
  set_count (self, &self->running_count, running, PROP_RUNNING_COUNT);
  set_count (self, &self->busy_count, busy, PROP_BUSY_COUNT);
}

static void on_expired_removed (GObject *source, GAsyncResult *result,
                                gpointer user_data);

/* A session whose profile a reload removed goes once its work is done. */
static void
remove_if_orphaned (AbPool *self, AbSession *session)
{
  if (ab_config_lookup_agent (self->config, ab_session_get_agent (session))
          != NULL
      || ab_session_is_busy (session)
      || ab_session_get_state (session) == AB_SESSION_STATE_STARTING
      || g_hash_table_contains (self->removing, session))
    return;
  ab_pool_remove_async (self, ab_session_get_thread (session),
                        "profile-removed", on_expired_removed, NULL);
}

/* What the counts and orphan removal depend on: state, pid and queued.
 * One "notify" handler, not three detailed ones: connecting them was a
 * twentieth of a start with 10,000 records. */
static void
on_session_changed (AbSession *session, GParamSpec *pspec, AbPool *self)
{
  const char *name = g_param_spec_get_name (pspec);

  if (!g_str_equal (name, "state") && !g_str_equal (name, "pid")
      && !g_str_equal (name, "queued"))
    return;
  recount (self);
  remove_if_orphaned (self, session);
}

static void
on_suspended (GObject *source, GAsyncResult *result, gpointer user_data)
{
  ab_session_suspend_finish (AB_SESSION (source), result, NULL);
}

static gboolean
is_idle (AbSession *session)
{
  return ab_session_get_state (session) == AB_SESSION_STATE_IDLE
         && ab_session_get_queued (session) == 0;
}

/* Agents running for each owner: uid → count. */
static GHashTable *
running_per_owner (AbPool *self)
{
  GHashTable *counts = g_hash_table_new (NULL, NULL);
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, self->sessions);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    if (ab_session_is_running (value))
      {
        gpointer uid = GUINT_TO_POINTER (ab_session_get_owner (value));

        g_hash_table_insert (
            counts, uid,
            GUINT_TO_POINTER (
                GPOINTER_TO_UINT (g_hash_table_lookup (counts, uid)) + 1));
      }
  return counts;
}

/* Makes room for one more running agent of @caller's (the owner of the
 * session that is to run), or says why there is none. One user must not push
 * another out: the least recently active idle session of the caller's own goes
 * first; only when there is none, that of the user running the most agents, and
 * only if that user runs more than the caller. */
static gboolean
reserve_slot (AbPool *self, AbSession *for_session, uid_t caller,
              GError **error)
{
  g_autoptr (GHashTable) running = NULL;
  GHashTableIter iter;
  gpointer value;
  AbSession *own = NULL, *other = NULL;
  guint mine, other_count = 0;

  recount (self);
  if (self->running_count < self->config->max_sessions)
    return TRUE;

  running = running_per_owner (self);
  mine = GPOINTER_TO_UINT (
      g_hash_table_lookup (running, GUINT_TO_POINTER (caller)));
  g_hash_table_iter_init (&iter, self->sessions);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      AbSession *s = value;
      uid_t owner = ab_session_get_owner (s);
      guint count;

      if (s == for_session || !ab_session_is_running (s) || !is_idle (s))
        continue;
      if (owner == caller)
        {
          if (own == NULL
              || ab_session_get_last_activity (s)
                     < ab_session_get_last_activity (own))
            own = s;
          continue;
        }
      count = GPOINTER_TO_UINT (
          g_hash_table_lookup (running, GUINT_TO_POINTER (owner)));
      if (count <= mine)
        continue;
      if (other == NULL || count > other_count
          || (count == other_count
              && ab_session_get_last_activity (s)
                     < ab_session_get_last_activity (other)))
        {
          other = s;
          other_count = count;
        }
    }
  if (own == NULL)
    own = other;
  if (own == NULL)
    {
      g_set_error (error, AB_ERROR, AB_ERROR_POOL_EXHAUSTED,
                   _ ("all %u agent slots (pool.max_sessions) are in use, "
                      "none by an idle session of uid %u or of a user "
                      "running more agents; retry when a turn has finished"),
                   self->config->max_sessions, (guint)caller);
      return FALSE;
    }

  g_message ("pool full: suspending session %s of uid %u for uid %u",
             ab_session_get_thread (own), (guint)ab_session_get_owner (own),
             (guint)caller);
  ab_session_suspend_async (own, _ ("suspended to make room"), on_suspended,
                            NULL);
  return TRUE;
}

static guint
sessions_of (AbPool *self, uid_t owner)
{
  GHashTableIter iter;
  gpointer value;
  guint n = 0;

  g_hash_table_iter_init (&iter, self->sessions);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    n += ab_session_get_owner (value) == owner;
  return n;
}

/* What the last agent of a profile said of itself survives restarts in
 * STATE_DIRECTORY/profiles/profile-NAME.json (profile names are file
 * names), at most AB_POOL_MAX_AGENT_SEEN_BYTES. */
#define AB_POOL_MAX_AGENT_SEEN_BYTES (64 * 1024)

static char *
agent_seen_path (AbPool *self, const char *profile)
{
  g_autofree char *name = g_strconcat ("profile-", profile, ".json", NULL);

  return g_build_filename (self->state_dir, "profiles", name, NULL);
}

static void
save_agent_seen (AbPool *self, const char *profile, const char *description)
{
  g_autofree char *path = agent_seen_path (self, profile);
  g_autofree char *dir = g_path_get_dirname (path);
  g_autoptr (GError) error = NULL;

  if (strlen (description) > AB_POOL_MAX_AGENT_SEEN_BYTES)
    return;
  if (g_mkdir_with_parents (dir, 0700) != 0
      || !g_file_set_contents_full (
          path, description, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0600, &error))
    g_warning ("cannot keep what the agent of profile %s said of itself in "
               "%s: %s",
               profile, path,
               error != NULL ? error->message : g_strerror (errno));
}

/* The profiles' agents as they were last seen, by an earlier instance
 * too; what is not a JSON object of bounded size is ignored. */
static void
load_agents_seen (AbPool *self)
{
  for (guint i = 0; self->state_dir != NULL && i < self->config->agents->len;
       i++)
    {
      const AbAgentProfile *profile
          = g_ptr_array_index (self->config->agents, i);
      g_autofree char *path = agent_seen_path (self, profile->name);
      g_autofree char *data = NULL;
      g_autoptr (JsonParser) parser = json_parser_new ();
      g_autoptr (JsonNode) root = NULL;
      AgentSeen *seen;
      GStatBuf st;
      gsize len;

      if (g_stat (path, &st) != 0 || !S_ISREG (st.st_mode)
          || st.st_size > AB_POOL_MAX_AGENT_SEEN_BYTES
          || !g_file_get_contents (path, &data, &len, NULL)
          || (root = ab_json_parse_untrusted (parser, data, len, NULL)) == NULL
          || !JSON_NODE_HOLDS_OBJECT (root))
        continue;
      seen = g_new0 (AgentSeen, 1);
      seen->description = g_steal_pointer (&data);
      seen->when = (gint64)st.st_mtime * G_USEC_PER_SEC;
      g_hash_table_replace (self->agents_seen, g_strdup (profile->name), seen);
    }
}

static void
on_agent_ready (AbSession *session, const char *description, AbPool *self)
{
  AgentSeen *seen = g_new0 (AgentSeen, 1);
  const char *profile = ab_session_get_agent (session);

  seen->description = g_strdup (description);
  seen->when = g_get_real_time ();
  g_hash_table_replace (self->agents_seen, g_strdup (profile), seen);
  if (self->state_dir != NULL)
    save_agent_seen (self, profile, description);
}

const char *
ab_pool_get_agent_seen (AbPool *self, const char *profile, gint64 *when)
{
  AgentSeen *seen = g_hash_table_lookup (self->agents_seen, profile);

  *when = seen != NULL ? seen->when : 0;
  return seen != NULL ? seen->description : NULL;
}

static void
add_session (AbPool *self, AbSession *session)
{
  g_hash_table_insert (self->sessions,
                       g_strdup (ab_session_get_thread (session)), session);
  g_signal_connect (session, "notify", G_CALLBACK (on_session_changed), self);
  g_signal_connect (session, "agent-ready", G_CALLBACK (on_agent_ready), self);
  recount (self);
  g_signal_emit (self, signals[SIGNAL_SESSION_ADDED], 0, session);
}

/* A new session, not yet added: add_session() puts it in the pool. */
static AbSession *
create_session (AbPool *self, const char *thread, const char *agent,
                uid_t owner)
{
  AbSession *session
      = ab_session_new (thread, agent, owner, self->config, self->state_dir);

  ab_session_set_launcher (session, self->launcher);
  ab_log_event (AB_LOG_SESSION_CREATED, G_LOG_LEVEL_MESSAGE, thread, owner,
                "session %s created for uid %u with agent '%s'", thread,
                (guint)owner, agent);
  ab_session_persist (session);
  return session;
}

/* Every session of the previous instance comes back suspended. */
void
ab_pool_restore (AbPool *self)
{
  g_autofree char *dir = ab_store_dir (self->state_dir);
  g_autoptr (GPtrArray) records = ab_store_load_all (dir);

  self->restoring = TRUE;
  for (guint i = 0; i < records->len; i++)
    {
      AbSessionRecord *r = g_ptr_array_index (records, i);
      AbSession *session;

      if (g_hash_table_contains (self->sessions, r->thread))
        continue;
      session = ab_session_new_from_record (r, self->config, self->state_dir);
      ab_session_set_launcher (session, self->launcher);
      add_session (self, session);
    }
  self->restoring = FALSE;
  recount (self);
  if (records->len > 0)
    g_message ("restored %u session(s) from %s", records->len, dir);
}

static void
on_prompted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  g_autoptr (GError) error = NULL;
  guint64 turn = 0;

  if (!ab_session_prompt_finish (AB_SESSION (source), result, &turn, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  g_task_return_pointer (task, g_memdup2 (&turn, sizeof turn), g_free);
}

/* A new session of @caller may have *@agent (NULL: the default, which
 * *@agent is then). */
static gboolean
check_new_session (AbPool *self, const char **agent, uid_t caller,
                   GError **error)
{
  if (*agent == NULL)
    *agent = self->config->default_agent;
  if (ab_config_lookup_agent (self->config, *agent) == NULL)
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("unknown agent '%s'"), *agent);
      return FALSE;
    }
  if (self->config->max_sessions_per_user > 0
      && sessions_of (self, caller) >= self->config->max_sessions_per_user)
    {
      g_set_error (error, AB_ERROR, AB_ERROR_POOL_EXHAUSTED,
                   _ ("uid %u already has %u sessions "
                      "(pool.max_sessions_per_user)"),
                   (guint)caller, self->config->max_sessions_per_user);
      return FALSE;
    }
  return TRUE;
}

gboolean
ab_pool_create_session (AbPool *self, const char *thread, const char *agent,
                        uid_t caller, GError **error)
{
  if (!ab_thread_id_validate (thread, error))
    return FALSE;
  if (g_hash_table_contains (self->sessions, thread))
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("thread %s already has a session"), thread);
      return FALSE;
    }
  if (!check_new_session (self, &agent, caller, error))
    return FALSE;
  add_session (self, create_session (self, thread, agent, caller));
  return TRUE;
}

void
ab_pool_prompt_async (AbPool *self, const char *thread, const char *text,
                      const char *agent, uid_t caller, const char *sender,
                      GAsyncReadyCallback callback, gpointer user_data)
{
  ab_pool_prompt_content_async (self, thread, text, NULL, agent, caller, sender,
                                callback, user_data);
}

void
ab_pool_prompt_content_async (AbPool *self, const char *thread,
                              const char *text, JsonNode *content,
                              const char *agent, uid_t caller,
                              const char *sender, GAsyncReadyCallback callback,
                              gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (self, NULL, callback, user_data);
  g_autoptr (GError) error = NULL;
  AbSession *session;
  gsize len = strlen (text);

  if (!ab_thread_id_validate (thread, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  if (len > AB_SESSION_MAX_PROMPT_BYTES || !g_utf8_validate (text, len, NULL))
    {
      g_task_return_new_error (
          task, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
          _ ("prompt text must be valid UTF-8 of at most %d bytes; got %zu "
             "bytes"),
          AB_SESSION_MAX_PROMPT_BYTES, len);
      return;
    }

  session = g_hash_table_lookup (self->sessions, thread);
  if (session != NULL && agent != NULL
      && g_strcmp0 (agent, ab_session_get_agent (session)) != 0)
    {
      g_task_return_new_error (task, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                               _ ("thread %s is bound to agent '%s', not '%s'"),
                               thread, ab_session_get_agent (session), agent);
      return;
    }
  if (session == NULL && !check_new_session (self, &agent, caller, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  if ((session == NULL || !ab_session_is_running (session))
      && !reserve_slot (
          self, session,
          session != NULL ? ab_session_get_owner (session) : caller, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  if (session != NULL)
    {
      ab_session_prompt_content_async (session, text, content, sender,
                                       on_prompted, g_steal_pointer (&task));
      return;
    }
  /* Added (and so on the bus) once its prompt has started the agent:
   * its first InterfacesAdded says "starting", not "suspended". The
   * prompt's answer comes at the earliest in the next iteration. */
  session = create_session (self, thread, agent, caller);
  ab_session_prompt_content_async (session, text, content, sender, on_prompted,
                                   g_steal_pointer (&task));
  add_session (self, session);
}

gboolean
ab_pool_prompt_finish (AbPool *self, GAsyncResult *result, guint64 *turn,
                       GError **error)
{
  g_autofree guint64 *value = g_task_propagate_pointer (G_TASK (result), error);

  if (value == NULL)
    return FALSE;
  *turn = *value;
  return TRUE;
}

typedef struct
{
  char *thread;
  char *reason;
} RemoveData;

static void
remove_data_free (RemoveData *data)
{
  g_free (data->thread);
  g_free (data->reason);
  g_free (data);
}

static void
on_removed_stopped (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  AbPool *self = g_task_get_source_object (task);
  RemoveData *data = g_task_get_task_data (task);
  AbSession *session = AB_SESSION (source);

  ab_session_suspend_finish (session, result, NULL);
  g_hash_table_remove (self->removing, session);
  /* Still the same session? A new one may have taken the thread. */
  if (g_hash_table_lookup (self->sessions, data->thread) == session)
    {
      g_autofree char *dir = ab_store_dir (self->state_dir);
      g_autoptr (GError) error = NULL;

      if (!ab_store_delete (dir, data->thread, &error))
        g_warning ("session %s: cannot delete its record: %s", data->thread,
                   error->message);
      ab_transcript_delete (dir, data->thread);
      g_object_ref (session);
      g_signal_handlers_disconnect_by_data (session, self);
      g_hash_table_remove (self->sessions, data->thread);
      ab_log_event (AB_LOG_SESSION_REMOVED, G_LOG_LEVEL_MESSAGE, data->thread,
                    AB_LOG_NO_CALLER, "session %s removed (%s)", data->thread,
                    data->reason);
      recount (self);
      g_signal_emit (self, signals[SIGNAL_SESSION_REMOVED], 0, session,
                     data->reason);
      g_object_unref (session);
    }
  g_task_return_boolean (task, TRUE);
}

void
ab_pool_remove_async (AbPool *self, const char *thread, const char *reason,
                      GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (self, NULL, callback, user_data);
  AbSession *session = g_hash_table_lookup (self->sessions, thread);
  RemoveData *data;

  if (session == NULL)
    {
      g_task_return_new_error (task, AB_ERROR, AB_ERROR_NO_SUCH_SESSION,
                               _ ("no session for thread %s"), thread);
      return;
    }
  g_hash_table_add (self->removing, session);
  data = g_new0 (RemoveData, 1);
  data->thread = g_strdup (thread);
  data->reason = g_strdup (reason);
  g_task_set_task_data (task, data, (GDestroyNotify)remove_data_free);
  ab_session_suspend_async (session, _ ("the session was removed"),
                            on_removed_stopped, g_steal_pointer (&task));
}

gboolean
ab_pool_remove_finish (AbPool *self, GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
on_expired_removed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  ab_pool_remove_finish (AB_POOL (source), result, NULL);
}

static gboolean
on_sweep (gpointer user_data)
{
  AbPool *self = user_data;
  const AbConfig *c = self->config;
  gint64 now = g_get_real_time ();
  g_autoptr (GPtrArray) all = ab_pool_list (self);

  for (guint i = 0; i < all->len; i++)
    {
      AbSession *s = g_ptr_array_index (all, i);
      gint64 quiet = now - ab_session_get_last_activity (s);
      gint64 age = now - ab_session_get_created (s);

      if (ab_session_is_busy (s) || ab_session_get_queued (s) > 0)
        continue;

      if ((c->forget_after_usec > 0 && quiet > c->forget_after_usec)
          || (c->max_age_usec > 0 && age > c->max_age_usec))
        ab_pool_remove_async (self, ab_session_get_thread (s), "expired",
                              on_expired_removed, NULL);
      else if (c->idle_timeout_usec > 0 && is_idle (s)
               && ab_session_is_running (s) && quiet > c->idle_timeout_usec)
        {
          g_message ("session %s idle for longer than pool.idle_timeout; "
                     "suspending it",
                     ab_session_get_thread (s));
          ab_session_suspend_async (s, _ ("suspended after being idle"),
                                    on_suspended, NULL);
        }
    }
  return G_SOURCE_CONTINUE;
}

static void
schedule_sweep (AbPool *self)
{
  gint64 shortest = G_MAXINT64;
  const gint64 limits[]
      = { self->config->idle_timeout_usec, self->config->max_age_usec,
          self->config->forget_after_usec };
  guint interval;

  for (gsize i = 0; i < G_N_ELEMENTS (limits); i++)
    if (limits[i] > 0)
      shortest = MIN (shortest, limits[i]);
  interval = (guint)CLAMP (shortest / 4 / 1000, SWEEP_MIN_MSEC, SWEEP_MAX_MSEC);
  g_clear_handle_id (&self->sweep_source, g_source_remove);
  self->sweep_source = g_timeout_add (interval, on_sweep, self);
}

void
ab_pool_set_config (AbPool *self, AbConfig *config)
{
  g_autoptr (GPtrArray) all = NULL;

  g_clear_pointer (&self->config, ab_config_unref);
  self->config = ab_config_ref (config);
  all = ab_pool_list (self);
  for (guint i = 0; i < all->len; i++)
    {
      ab_session_set_config (g_ptr_array_index (all, i), config);
      remove_if_orphaned (self, g_ptr_array_index (all, i));
    }
  schedule_sweep (self);
}

AbSession *
ab_pool_lookup (AbPool *self, const char *thread)
{
  return g_hash_table_lookup (self->sessions, thread);
}

static int
compare_threads (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (ab_session_get_thread (*(AbSession *const *)a),
                    ab_session_get_thread (*(AbSession *const *)b));
}

/* Every session, sorted by thread id, each with a reference. */
GPtrArray *
ab_pool_list (AbPool *self)
{
  GPtrArray *all = g_ptr_array_new_full (g_hash_table_size (self->sessions),
                                         g_object_unref);
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, self->sessions);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (all, g_object_ref (value));
  g_ptr_array_sort (all, compare_threads);
  return all;
}

guint
ab_pool_get_session_count (AbPool *self)
{
  return self->session_count;
}

guint
ab_pool_get_running_count (AbPool *self)
{
  return self->running_count;
}

guint
ab_pool_get_busy_count (AbPool *self)
{
  return self->busy_count;
}

void
ab_pool_kill_all (AbPool *self)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, self->sessions);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    ab_session_kill_now (value);
}

static void
ab_pool_get_property (GObject *object, guint prop_id, GValue *value,
                      GParamSpec *pspec)
{
  AbPool *self = AB_POOL (object);

  switch (prop_id)
    {
    case PROP_SESSION_COUNT:
      g_value_set_uint (value, self->session_count);
      break;
    case PROP_RUNNING_COUNT:
      g_value_set_uint (value, self->running_count);
      break;
    case PROP_BUSY_COUNT:
      g_value_set_uint (value, self->busy_count);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
ab_pool_dispose (GObject *object)
{
  AbPool *self = AB_POOL (object);

  g_clear_handle_id (&self->sweep_source, g_source_remove);
  if (self->sessions != NULL)
    {
      GHashTableIter iter;
      gpointer value;

      g_hash_table_iter_init (&iter, self->sessions);
      while (g_hash_table_iter_next (&iter, NULL, &value))
        g_signal_handlers_disconnect_by_data (value, self);
    }
  g_clear_pointer (&self->sessions, g_hash_table_unref);

  G_OBJECT_CLASS (ab_pool_parent_class)->dispose (object);
}

static void
ab_pool_finalize (GObject *object)
{
  AbPool *self = AB_POOL (object);

  g_clear_pointer (&self->config, ab_config_unref);
  g_clear_object (&self->launcher);
  g_hash_table_unref (self->removing);
  g_hash_table_unref (self->agents_seen);
  g_free (self->state_dir);

  G_OBJECT_CLASS (ab_pool_parent_class)->finalize (object);
}

static void
ab_pool_class_init (AbPoolClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  const GParamFlags flags
      = G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS;

  object_class->get_property = ab_pool_get_property;
  object_class->dispose = ab_pool_dispose;
  object_class->finalize = ab_pool_finalize;

  props[PROP_SESSION_COUNT]
      = g_param_spec_uint ("session-count", NULL, NULL, 0, G_MAXUINT, 0, flags);
  props[PROP_RUNNING_COUNT]
      = g_param_spec_uint ("running-count", NULL, NULL, 0, G_MAXUINT, 0, flags);
  props[PROP_BUSY_COUNT]
      = g_param_spec_uint ("busy-count", NULL, NULL, 0, G_MAXUINT, 0, flags);
  g_object_class_install_properties (object_class, N_PROPS, props);

  signals[SIGNAL_SESSION_ADDED] = g_signal_new (
      "session-added", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL,
      NULL, NULL, G_TYPE_NONE, 1, AB_TYPE_SESSION);
  signals[SIGNAL_SESSION_REMOVED] = g_signal_new (
      "session-removed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL,
      NULL, NULL, G_TYPE_NONE, 2, AB_TYPE_SESSION, G_TYPE_STRING);
}

static void
ab_pool_init (AbPool *self)
{
  self->sessions
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
  self->removing = g_hash_table_new (NULL, NULL);
  self->agents_seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                             (GDestroyNotify)agent_seen_free);
}

AbPool *
ab_pool_new (AbConfig *config, const char *state_dir)
{
  AbPool *self = g_object_new (AB_TYPE_POOL, NULL);

  self->config = ab_config_ref (config);
  self->state_dir = g_strdup (state_dir);
  self->launcher = ab_direct_launcher_new ();
  load_agents_seen (self);
  schedule_sweep (self);
  return self;
}

void
ab_pool_set_launcher (AbPool *self, AbAgentLauncher *launcher)
{
  GHashTableIter iter;
  gpointer value;

  g_return_if_fail (AB_IS_POOL (self));
  g_return_if_fail (AB_IS_AGENT_LAUNCHER (launcher));

  g_set_object (&self->launcher, launcher);
  g_hash_table_iter_init (&iter, self->sessions);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    ab_session_set_launcher (value, launcher);
}
