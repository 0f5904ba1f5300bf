/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — metrics
 *
 * Counts what the broker does — turns by stop reason and how long they
 * ran, refused prompts by error, failed agent starts, drains, reloads —
 * by watching its signals and properties, and renders them with the
 * current gauges as Prometheus text. Nothing here changes any state, and
 * nothing of a session's contents (thread ids, text) is ever exported.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "error.h"
#include "metrics.h"

/* Distinct (profile, stop reason) pairs kept apart; the rest are counted
 * as "other", so a misbehaving agent cannot grow the label set without
 * bound. */
#define MAX_TURN_REASONS 256

/* The stop reasons of org.agentbroker.Broker1(5), each a series from the
 * start. Label values are spelt with underscores, as ACP's are. */
static const char *const known_reasons[]
    = { "end_turn",     "max_tokens",  "max_turn_requests",
        "refusal",      "cancelled",   "timeout",
        "agent_exited", "agent_error", "interrupted" };

/* Upper bounds of the turn duration histogram, in seconds. */
static const double duration_buckets[]
    = { 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800 };

typedef enum
{
  REFUSED_DRAINING,
  REFUSED_BUSY,
  REFUSED_POOL_EXHAUSTED,
  REFUSED_INVALID_ARGUMENT,
  REFUSED_ACCESS_DENIED,
  REFUSED_AGENT_FAILED,
  REFUSED_OTHER,
  N_REFUSED
} RefusedReason;

static const char *const refused_names[N_REFUSED] = {
  [REFUSED_DRAINING] = "draining",
  [REFUSED_BUSY] = "busy",
  [REFUSED_POOL_EXHAUSTED] = "pool_exhausted",
  [REFUSED_INVALID_ARGUMENT] = "invalid_argument",
  [REFUSED_ACCESS_DENIED] = "access_denied",
  [REFUSED_AGENT_FAILED] = "agent_failed",
  [REFUSED_OTHER] = "other",
};

struct _AbMetrics
{
  GObject parent_instance;

  AbBroker *broker;
  AbPool *pool;

  GHashTable *turns; /* stop reason → guint64 * */
  guint64 refused[N_REFUSED];
  guint64 spawn_failures;
  guint64 drains;
  guint64 reloads;
  guint64 reload_failures;
  guint64 duration_counts[G_N_ELEMENTS (duration_buckets)];
  guint64 duration_count;
  double duration_sum;

  AbBrokerState last_state;
  guint generation_at_reload;
  /* The last state seen of each session (AbSession * → state), to tell
   * a failed start (starting → failed) from an agent lost later. */
  GHashTable *session_states;
};

G_DEFINE_TYPE (AbMetrics, ab_metrics, G_TYPE_OBJECT)

void
ab_metrics_count_sessions (AbPool *pool,
                           guint counts[AB_METRICS_N_SESSION_STATES])
{
  g_autoptr (GPtrArray) all = ab_pool_list (pool);

  memset (counts, 0, sizeof (guint) * AB_METRICS_N_SESSION_STATES);
  for (guint i = 0; i < all->len; i++)
    {
      AbSessionState state = ab_session_get_state (g_ptr_array_index (all, i));

      if (state < AB_METRICS_N_SESSION_STATES)
        counts[state]++;
    }
}

/* ---- observing ----------------------------------------------------------- */

/* The key of a (profile, reason) pair in AbMetrics.turns: "profile\nreason",
 * the reason spelt with underscores. */
static char *
turn_key (const char *profile, const char *reason)
{
  char *key = g_strdup_printf ("%s\n%s", profile, reason);

  g_strdelimit (strchr (key, '\n') + 1, "-", '_');
  return key;
}

static guint64 *
turn_count (AbMetrics *self, const char *profile, const char *reason)
{
  g_autofree char *key = turn_key (profile, reason);
  guint64 *count = g_hash_table_lookup (self->turns, key);

  if (count == NULL && g_hash_table_size (self->turns) >= MAX_TURN_REASONS)
    {
      g_free (key);
      key = turn_key (profile, "other");
      count = g_hash_table_lookup (self->turns, key);
    }
  if (count == NULL)
    {
      count = g_new0 (guint64, 1);
      g_hash_table_insert (self->turns, g_steal_pointer (&key), count);
    }
  return count;
}

/* Every turn counts; only those that ran have a duration. */
static void
on_turn_ended (AbSession *session, guint64 turn, const char *reason,
               const char *message, const char *sender, gint64 duration_usec,
               guint64 seq, AbMetrics *self)
{
  double seconds = (double)duration_usec / G_USEC_PER_SEC;

  (*turn_count (self, ab_session_get_agent (session), reason))++;
  if (duration_usec < 0)
    return;
  for (gsize i = 0; i < G_N_ELEMENTS (duration_buckets); i++)
    if (seconds <= duration_buckets[i])
      self->duration_counts[i]++;
  self->duration_count++;
  self->duration_sum += seconds;
}

static void
on_session_state (AbSession *session, GParamSpec *pspec, AbMetrics *self)
{
  AbSessionState state = ab_session_get_state (session);
  AbSessionState previous
      = GPOINTER_TO_UINT (g_hash_table_lookup (self->session_states, session));

  if (previous == AB_SESSION_STATE_STARTING && state == AB_SESSION_STATE_FAILED)
    self->spawn_failures++;
  g_hash_table_insert (self->session_states, session, GUINT_TO_POINTER (state));
}

static void
watch_session (AbMetrics *self, AbSession *session)
{
  g_hash_table_insert (self->session_states, session,
                       GUINT_TO_POINTER (ab_session_get_state (session)));
  g_signal_connect (session, "turn-ended", G_CALLBACK (on_turn_ended), self);
  g_signal_connect (session, "notify::state", G_CALLBACK (on_session_state),
                    self);
}

static void
on_session_added (AbPool *pool, AbSession *session, AbMetrics *self)
{
  watch_session (self, session);
}

static void
on_session_removed (AbPool *pool, AbSession *session, const char *reason,
                    AbMetrics *self)
{
  g_signal_handlers_disconnect_by_data (session, self);
  g_hash_table_remove (self->session_states, session);
}

static void
on_prompt_refused (AbBroker *broker, const GError *error, AbMetrics *self)
{
  RefusedReason reason = REFUSED_OTHER;

  if (error->domain == AB_ERROR)
    switch ((AbError)error->code)
      {
      case AB_ERROR_DRAINING:
        reason = REFUSED_DRAINING;
        break;
      case AB_ERROR_BUSY:
        reason = REFUSED_BUSY;
        break;
      case AB_ERROR_POOL_EXHAUSTED:
        reason = REFUSED_POOL_EXHAUSTED;
        break;
      case AB_ERROR_INVALID_ARGUMENT:
        reason = REFUSED_INVALID_ARGUMENT;
        break;
      case AB_ERROR_ACCESS_DENIED:
        reason = REFUSED_ACCESS_DENIED;
        break;
      case AB_ERROR_AGENT_FAILED:
        reason = REFUSED_AGENT_FAILED;
        break;
      default:
        break;
      }
  self->refused[reason]++;
}

static void
on_broker_state (AbBroker *broker, GParamSpec *pspec, AbMetrics *self)
{
  AbBrokerState state = ab_broker_get_state (broker);
  AbBrokerState previous = self->last_state;

  self->last_state = state;
  if (state == previous)
    return;
  /* A reload while draining comes back to "draining": not a new drain. */
  if (state == AB_BROKER_STATE_DRAINING
      && previous != AB_BROKER_STATE_RELOADING)
    self->drains++;
  if (state == AB_BROKER_STATE_RELOADING)
    self->generation_at_reload = ab_broker_get_generation (broker);
  /* A successful reload raises the generation before leaving
   * "reloading"; a failed one leaves it as it was. */
  if (previous == AB_BROKER_STATE_RELOADING)
    {
      if (ab_broker_get_generation (broker) == self->generation_at_reload)
        self->reload_failures++;
      else
        self->reloads++;
    }
}

/* ---- rendering ------------------------------------------------------------
 */

static void
append_header (GString *out, const char *name, const char *type,
               const char *help)
{
  g_string_append_printf (out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                          type);
}

/* Label values: backslash, double quote and newline escaped. */
static void
append_label_value (GString *out, const char *value)
{
  for (const char *p = value; *p != '\0'; p++)
    {
      if (*p == '\\' || *p == '"')
        g_string_append_c (out, '\\');
      if (*p == '\n')
        g_string_append (out, "\\n");
      else
        g_string_append_c (out, *p);
    }
}

/* Always with a dot, whatever the locale. */
static void
append_double (GString *out, double value)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];

  g_string_append (out, g_ascii_formatd (buf, sizeof buf, "%.10g", value));
}

static int
compare_strings (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (*(const char *const *)a, *(const char *const *)b);
}

static void
render_turns (AbMetrics *self, AbConfig *config, GString *out)
{
  g_autofree gpointer *reasons = NULL;
  guint n = 0;

  append_header (out, "agentbroker_turns_total", "counter",
                 "Turns ended, by agent profile and stop reason.");
  /* Every profile in force has every known reason, at 0 until it
   * happens. */
  for (guint i = 0; i < config->agents->len; i++)
    {
      const AbAgentProfile *profile = g_ptr_array_index (config->agents, i);

      for (gsize r = 0; r < G_N_ELEMENTS (known_reasons); r++)
        (void)turn_count (self, profile->name, known_reasons[r]);
    }
  reasons = g_hash_table_get_keys_as_array (self->turns, &n);
  qsort (reasons, n, sizeof (gpointer), compare_strings);
  for (guint i = 0; i < n; i++)
    {
      guint64 *count = g_hash_table_lookup (self->turns, reasons[i]);
      const char *reason = strchr (reasons[i], '\n') + 1;
      g_autofree char *profile
          = g_strndup (reasons[i], reason - 1 - (const char *)reasons[i]);

      g_string_append (out, "agentbroker_turns_total{profile=\"");
      append_label_value (out, profile);
      g_string_append (out, "\",reason=\"");
      append_label_value (out, reason);
      g_string_append_printf (out, "\"} %" G_GUINT64_FORMAT "\n", *count);
    }

  append_header (out, "agentbroker_turn_duration_seconds", "histogram",
                 "How long turns ran, from start to end.");
  for (gsize i = 0; i < G_N_ELEMENTS (duration_buckets); i++)
    {
      g_string_append (out, "agentbroker_turn_duration_seconds_bucket{le=\"");
      append_double (out, duration_buckets[i]);
      g_string_append_printf (out, "\"} %" G_GUINT64_FORMAT "\n",
                              self->duration_counts[i]);
    }
  g_string_append_printf (
      out,
      "agentbroker_turn_duration_seconds_bucket{le=\"+Inf\"}"
      " %" G_GUINT64_FORMAT "\n",
      self->duration_count);
  g_string_append (out, "agentbroker_turn_duration_seconds_sum ");
  append_double (out, self->duration_sum);
  g_string_append_printf (
      out, "\nagentbroker_turn_duration_seconds_count %" G_GUINT64_FORMAT "\n",
      self->duration_count);
}

/* One per-profile series of the agents' units: the profiles in @names
 * whose sum is known. */
static void
append_usage_series (GString *out, const char *name, const char *help,
                     GPtrArray *names, GHashTable *sums, gsize offset,
                     double scale)
{
  append_header (out, name, "gauge", help);
  for (guint i = 0; i < names->len; i++)
    {
      const AbAgentUsage *sum = g_hash_table_lookup (sums, names->pdata[i]);
      guint64 value = *(const guint64 *)((const char *)sum + offset);

      if (value == AB_USAGE_UNKNOWN)
        continue;
      g_string_append_printf (out, "%s{profile=\"", name);
      append_label_value (out, names->pdata[i]);
      g_string_append (out, "\"} ");
      append_double (out, (double)value * scale);
      g_string_append_c (out, '\n');
    }
}

/* What the running agents' units use, summed by profile and read at the
 * scrape: only agents started as units are counted. */
static void
render_usage (AbMetrics *self, GString *out)
{
  g_autoptr (GPtrArray) all = ab_pool_list (self->pool);
  g_autoptr (GHashTable) sums
      = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
  g_autoptr (GPtrArray) names = g_ptr_array_new ();

  for (guint i = 0; i < all->len; i++)
    {
      AbSession *session = g_ptr_array_index (all, i);
      const char *profile = ab_session_get_agent (session);
      AbAgentUsage usage, *sum;

      if (ab_session_get_unit (session) == NULL)
        continue;
      ab_session_get_usage (session, &usage);
      sum = g_hash_table_lookup (sums, profile);
      if (sum == NULL)
        {
          sum = g_new (AbAgentUsage, 1);
          ab_agent_usage_init (sum);
          g_hash_table_insert (sums, (gpointer)profile, sum);
          g_ptr_array_add (names, (gpointer)profile);
        }
      ab_agent_usage_add (sum, &usage);
    }
  g_ptr_array_sort (names, compare_strings);

  append_usage_series (out, "agentbroker_profile_memory_bytes",
                       "Memory of the running agents' units, by profile.",
                       names, sums,
                       G_STRUCT_OFFSET (AbAgentUsage, memory_bytes), 1);
  append_usage_series (out, "agentbroker_profile_cpu_seconds",
                       "CPU time used by the running agents' units, by "
                       "profile (falls when a session's agent stops).",
                       names, sums, G_STRUCT_OFFSET (AbAgentUsage, cpu_nsec),
                       1e-9);
  append_usage_series (out, "agentbroker_profile_tasks",
                       "Tasks of the running agents' units, by profile.", names,
                       sums, G_STRUCT_OFFSET (AbAgentUsage, tasks), 1);
}

/* Sums of what the agents' usage_update said, of one profile. */
typedef struct
{
  double used;
  double size;
  gboolean used_known;
  gboolean size_known;
} TokenSums;

static void
append_token_series (GString *out, const char *name, const char *help,
                     GPtrArray *names, GHashTable *sums, gboolean size)
{
  append_header (out, name, "gauge", help);
  for (guint i = 0; i < names->len; i++)
    {
      const TokenSums *sum = g_hash_table_lookup (sums, names->pdata[i]);

      if (!(size ? sum->size_known : sum->used_known))
        continue;
      g_string_append_printf (out, "%s{profile=\"", name);
      append_label_value (out, names->pdata[i]);
      g_string_append (out, "\"} ");
      append_double (out, size ? sum->size : sum->used);
      g_string_append_c (out, '\n');
    }
}

/* The tokens and the cost the sessions' agents reported (usage_update),
 * summed by profile (and currency), over every session the daemon has,
 * running or not. */
static void
render_token_usage (AbMetrics *self, GString *out)
{
  g_autoptr (GPtrArray) all = ab_pool_list (self->pool);
  g_autoptr (GHashTable) tokens
      = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
  /* "profile\ncurrency" → double */
  g_autoptr (GHashTable) costs
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_autoptr (GPtrArray) names = g_ptr_array_new ();
  g_autofree gpointer *keys = NULL;
  guint n;

  for (guint i = 0; i < all->len; i++)
    {
      AbSession *session = g_ptr_array_index (all, i);
      const char *profile = ab_session_get_agent (session);
      TokenSums *sum;
      AbAcpUsage usage;

      ab_session_get_token_usage (session, &usage);
      if (usage.used == AB_ACP_TOKENS_UNKNOWN
          && usage.size == AB_ACP_TOKENS_UNKNOWN && usage.currency[0] == '\0')
        continue;
      sum = g_hash_table_lookup (tokens, profile);
      if (sum == NULL)
        {
          sum = g_new0 (TokenSums, 1);
          g_hash_table_insert (tokens, (gpointer)profile, sum);
          g_ptr_array_add (names, (gpointer)profile);
        }
      if (usage.used != AB_ACP_TOKENS_UNKNOWN)
        {
          sum->used += (double)usage.used;
          sum->used_known = TRUE;
        }
      if (usage.size != AB_ACP_TOKENS_UNKNOWN)
        {
          sum->size += (double)usage.size;
          sum->size_known = TRUE;
        }
      if (usage.currency[0] != '\0')
        {
          char *key = g_strconcat (profile, "\n", usage.currency, NULL);
          double *cost = g_hash_table_lookup (costs, key);

          if (cost == NULL)
            {
              cost = g_new0 (double, 1);
              g_hash_table_insert (costs, key, cost);
            }
          else
            g_free (key);
          *cost += usage.cost;
        }
    }
  g_ptr_array_sort (names, compare_strings);

  append_token_series (out, "agentbroker_profile_context_tokens",
                       "Tokens in the agents' context windows as their last "
                       "usage_update said, by profile.",
                       names, tokens, FALSE);
  append_token_series (out, "agentbroker_profile_context_size_tokens",
                       "Size of the agents' context windows in tokens as "
                       "their last usage_update said, by profile.",
                       names, tokens, TRUE);

  append_header (out, "agentbroker_profile_cost", "gauge",
                 "Cumulative cost of the sessions as their agents' last "
                 "usage_update said, by profile and currency.");
  keys = g_hash_table_get_keys_as_array (costs, &n);
  qsort (keys, n, sizeof (gpointer), compare_strings);
  for (guint i = 0; i < n; i++)
    {
      const char *currency = strchr (keys[i], '\n') + 1;
      g_autofree char *profile
          = g_strndup (keys[i], currency - 1 - (const char *)keys[i]);

      g_string_append (out, "agentbroker_profile_cost{profile=\"");
      append_label_value (out, profile);
      g_string_append (out, "\",currency=\"");
      append_label_value (out, currency);
      g_string_append (out, "\"} ");
      append_double (out, *(double *)g_hash_table_lookup (costs, keys[i]));
      g_string_append_c (out, '\n');
    }
}

static void
append_counter (GString *out, const char *name, const char *help, guint64 value)
{
  append_header (out, name, "counter", help);
  g_string_append_printf (out, "%s %" G_GUINT64_FORMAT "\n", name, value);
}

static void
append_gauge (GString *out, const char *name, const char *help, double value)
{
  append_header (out, name, "gauge", help);
  g_string_append_printf (out, "%s ", name);
  append_double (out, value);
  g_string_append_c (out, '\n');
}

/* The process series every Prometheus client library exports, read from
 * the kernel at each scrape. */
static void
render_process (GString *out)
{
  g_autofree char *statm = NULL;
  g_autoptr (GDir) fds = g_dir_open ("/proc/self/fd", 0, NULL);
  struct rusage usage;
  struct rlimit limit;
  unsigned long pages = 0;
  guint open_fds = 0;

  if (g_file_get_contents ("/proc/self/statm", &statm, NULL, NULL))
    sscanf (statm, "%*u %lu", &pages);
  append_gauge (out, "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                (double)pages * (double)sysconf (_SC_PAGESIZE));
  if (getrusage (RUSAGE_SELF, &usage) == 0)
    {
      append_header (out, "process_cpu_seconds_total", "counter",
                     "User and system CPU time spent, in seconds.");
      g_string_append (out, "process_cpu_seconds_total ");
      append_double (
          out, usage.ru_utime.tv_sec + usage.ru_stime.tv_sec
                   + (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6);
      g_string_append_c (out, '\n');
    }
  if (fds != NULL)
    {
      while (g_dir_read_name (fds) != NULL)
        open_fds++;
      /* The directory's own descriptor is not the daemon's. */
      append_gauge (out, "process_open_fds", "Open file descriptors.",
                    open_fds > 0 ? open_fds - 1 : 0);
    }
  if (getrlimit (RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
    append_gauge (out, "process_max_fds",
                  "The open file descriptor limit (RLIMIT_NOFILE).",
                  (double)limit.rlim_cur);
}

char *
ab_metrics_render (AbMetrics *self)
{
  GString *out = g_string_sized_new (4096);
  guint counts[AB_METRICS_N_SESSION_STATES];
  AbConfig *config = ab_broker_get_config (self->broker);

  append_header (out, "agentbroker_up", "gauge",
                 "1 while the daemon's main loop answers.");
  g_string_append (out, "agentbroker_up 1\n");
  append_header (out, "agentbroker_build_info", "gauge",
                 "Always 1; the labels say which build is running.");
  g_string_append (out, "agentbroker_build_info{version=\"" PACKAGE_VERSION
                        "\"} 1\n");
  append_header (out, "agentbroker_generation", "gauge",
                 "Configuration generation; raised by every successful "
                 "reload.");
  g_string_append_printf (out, "agentbroker_generation %u\n",
                          ab_broker_get_generation (self->broker));
  append_header (out, "agentbroker_accepting", "gauge",
                 "1 while prompts are accepted.");
  g_string_append_printf (out, "agentbroker_accepting %d\n",
                          ab_broker_get_accepting (self->broker) ? 1 : 0);
  append_header (out, "agentbroker_start_time_seconds", "gauge",
                 "When the daemon started, in seconds since the epoch.");
  g_string_append_printf (
      out, "agentbroker_start_time_seconds %" G_GUINT64_FORMAT "\n",
      ab_broker_get_started_at (self->broker) / G_USEC_PER_SEC);
  append_header (out, "agentbroker_max_sessions", "gauge",
                 "Running agents allowed at once (pool.max_sessions).");
  g_string_append_printf (out, "agentbroker_max_sessions %u\n",
                          config->max_sessions);

  append_header (out, "agentbroker_sessions", "gauge", "Sessions, by state.");
  ab_metrics_count_sessions (self->pool, counts);
  for (guint i = 0; i < AB_METRICS_N_SESSION_STATES; i++)
    g_string_append_printf (out, "agentbroker_sessions{state=\"%s\"} %u\n",
                            ab_session_state_to_string (i), counts[i]);

  render_turns (self, config, out);
  render_usage (self, out);
  render_token_usage (self, out);

  append_header (out, "agentbroker_prompts_refused_total", "counter",
                 "Prompts refused, by error.");
  for (guint i = 0; i < N_REFUSED; i++)
    g_string_append_printf (
        out,
        "agentbroker_prompts_refused_total{reason=\"%s\"} %" G_GUINT64_FORMAT
        "\n",
        refused_names[i], self->refused[i]);

  append_counter (out, "agentbroker_spawn_failures_total",
                  "Agents that failed to start or to finish the ACP "
                  "handshake.",
                  self->spawn_failures);
  append_counter (out, "agentbroker_drains_total", "Drains started.",
                  self->drains);
  append_counter (out, "agentbroker_reloads_total",
                  "Successful configuration reloads.", self->reloads);
  append_counter (out, "agentbroker_reload_failures_total",
                  "Reloads refused because the new configuration was "
                  "invalid.",
                  self->reload_failures);
  render_process (out);
  return g_string_free (out, FALSE);
}

/* ---- object -----------------------------------------------------------------
 */

static void
ab_metrics_dispose (GObject *object)
{
  AbMetrics *self = AB_METRICS (object);

  if (self->pool != NULL)
    {
      g_autoptr (GPtrArray) all = ab_pool_list (self->pool);

      for (guint i = 0; i < all->len; i++)
        g_signal_handlers_disconnect_by_data (g_ptr_array_index (all, i), self);
      g_signal_handlers_disconnect_by_data (self->pool, self);
    }
  if (self->broker != NULL)
    g_signal_handlers_disconnect_by_data (self->broker, self);
  g_clear_object (&self->pool);
  g_clear_object (&self->broker);

  G_OBJECT_CLASS (ab_metrics_parent_class)->dispose (object);
}

static void
ab_metrics_finalize (GObject *object)
{
  AbMetrics *self = AB_METRICS (object);

  g_clear_pointer (&self->turns, g_hash_table_unref);
  g_clear_pointer (&self->session_states, g_hash_table_unref);

  G_OBJECT_CLASS (ab_metrics_parent_class)->finalize (object);
}

static void
ab_metrics_class_init (AbMetricsClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = ab_metrics_dispose;
  object_class->finalize = ab_metrics_finalize;
}

static void
ab_metrics_init (AbMetrics *self)
{
  self->turns = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  self->session_states = g_hash_table_new (NULL, NULL);
}

AbMetrics *
ab_metrics_new (AbBroker *broker)
{
  AbMetrics *self = g_object_new (AB_TYPE_METRICS, NULL);
  g_autoptr (GPtrArray) all = NULL;

  self->broker = g_object_ref (broker);
  self->pool = g_object_ref (ab_broker_get_pool (broker));
  self->last_state = ab_broker_get_state (broker);

  g_signal_connect (broker, "notify::state", G_CALLBACK (on_broker_state),
                    self);
  g_signal_connect (broker, "prompt-refused", G_CALLBACK (on_prompt_refused),
                    self);
  g_signal_connect (self->pool, "session-added", G_CALLBACK (on_session_added),
                    self);
  g_signal_connect (self->pool, "session-removed",
                    G_CALLBACK (on_session_removed), self);
  all = ab_pool_list (self->pool);
  for (guint i = 0; i < all->len; i++)
    watch_session (self, g_ptr_array_index (all, i));
  return self;
}
