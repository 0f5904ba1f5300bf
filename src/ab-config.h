/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the daemon's configuration (agentbroker.yaml(5))
 *
 * Loaded from YAML, validated as a whole, then immutable and shared by
 * reference: a reload builds a new AbConfig and swaps it in, so whoever
 * still holds the old one keeps a consistent view.  Callers read the
 * fields directly and never change them.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* How agents are started (the top-level `launcher`). */
typedef enum
{
  AB_LAUNCHER_DIRECT,  /* as the daemon's children */
  AB_LAUNCHER_SYSTEMD, /* each as a transient unit; the daemon fails to
                          start when systemd cannot be used */
  AB_LAUNCHER_AUTO,    /* the default: systemd when the daemon runs in a
                          unit of a reachable manager that lets it start
                          units, else direct */
} AbLauncherKind;

typedef enum
{
  AB_PERMISSIONS_ALLOW,
  AB_PERMISSIONS_DENY,
  AB_PERMISSIONS_ASK,
} AbPermissions;

/* One entry of a profile's `env`: exactly one of @value (a literal) and
 * @credential (a systemd credential name, read from
 * $CREDENTIALS_DIRECTORY/<credential> at spawn) is non-NULL. */
typedef struct
{
  char *name;
  char *value;
  char *credential;
} AbEnvEntry;

/* What a profile's agents may use (`sandbox`), with launcher: systemd. */
typedef enum
{
  AB_NETWORK_ALL,      /* default */
  AB_NETWORK_LOOPBACK, /* the host's loopback addresses only */
  AB_NETWORK_NONE,     /* a network namespace of its own: no network */
} AbNetwork;

typedef struct
{
  guint64 memory_max; /* bytes, 0 = the slice's */
  guint cpu_percent;  /* of one CPU, 0 = the slice's */
  guint tasks_max;    /* 0 = the slice's */
  AbNetwork network;
  char **read_only_paths; /* absolute; NULL-terminated, may be empty */
  char **read_write_paths;
} AbSandbox;

typedef struct
{
  char *name;                  /* [A-Za-z0-9._-]{1,64} */
  char **command;              /* NULL-terminated, >= 1 element, none empty */
  GPtrArray *env;              /* AbEnvEntry *, in file order */
  char **inherit_env;          /* NULL-terminated, may be empty */
  char *working_directory;     /* template with {state} and {thread}; it is
                                  absolute or starts with {state};
                                  default "{state}/work/{thread}" */
  AbPermissions permissions;   /* default AB_PERMISSIONS_DENY: an agent acts
                                  on the host only when the operator says so */
  char *auth_method;           /* ACP authenticate methodId, NULL if unset */
  gboolean resend_interrupted; /* default FALSE */
  AbSandbox sandbox;
} AbAgentProfile;

typedef struct _AbConfig AbConfig;

struct _AbConfig
{
  gint ref_count; /* private */

  char *default_agent;            /* always names an entry of @agents */
  AbLauncherKind launcher;        /* `launcher`, default direct */
  GPtrArray *agents;              /* AbAgentProfile *, sorted by name */
  guint max_sessions;             /* pool.max_sessions, 1..100000, 64 */
  guint max_sessions_per_user;    /* pool.max_sessions_per_user, 0 = no
                                     limit (default) */
  guint max_queued_prompts;       /* pool.max_queued_prompts, 0..10000, 8 */
  guint64 max_message_bytes;      /* pool.max_message_bytes, 64KiB..1GiB,
                                     8MiB */
  guint64 transcript_bytes;       /* pool.transcript_bytes, 0..16MiB,
                                     4MiB, 0 = no transcript */
  gint64 idle_timeout_usec;       /* pool.idle_timeout, 30m, 0 = never */
  gint64 max_age_usec;            /* pool.max_age, 0 = off (default) */
  gint64 forget_after_usec;       /* pool.forget_after, 7d, 0 = never */
  gint64 handshake_timeout_usec;  /* timeouts.handshake, 120s, > 0 */
  gint64 turn_inactivity_usec;    /* timeouts.turn_inactivity, 10m, > 0 */
  gint64 drain_timeout_usec;      /* timeouts.drain, 30s, 0 = cancel at once */
  gint64 kill_timeout_usec;       /* timeouts.kill, 5s, > 0 */
  gint64 permission_timeout_usec; /* timeouts.permission, 5m, > 0 */
  char **access_users;            /* group names, default {"agentbroker"} */
  char **access_admins;           /* default {"agentbroker-admin"} */
  char **health_listen;           /* "HOST:PORT", "[IPv6]:PORT" or an
                                     absolute unix socket path; default
                                     empty */
  char **sources;                 /* files read, in merge order; empty for
                                     the built-in default */
};

/* The built-in configuration used when no file exists: one agent "demo"
 * running agentbroker-demo-agent, and every default above. */
AbConfig *ab_config_new_default (void);

/* Loads @path and then <dirname(@path)>/agentbroker.d/<*>.yaml in strcmp
 * order, merged on top: mappings merge key by key, except that each entry
 * under `agents:` is replaced whole; scalars and sequences replace.  If
 * neither @path nor any drop-in exists, returns ab_config_new_default().
 * Without an `agents:` key anywhere, the demo agent of the default is kept.
 *
 * Every problem is reported, not only the first: the error
 * (AB_ERROR_INVALID_CONFIG) carries one line per problem,
 * "FILE:LINE:COLUMN: message", or "FILE: message" for a problem with the
 * whole file (unreadable, larger than 1 MiB).  Anchors, aliases, tags and
 * multiple documents are refused; a file may nest at most 32 levels and
 * hold at most 10000 nodes. */
AbConfig *ab_config_load (const char *path, GError **error);
/* Like ab_config_load(), but @path itself must exist: for a path the
 * operator named, where the built-in default would hide a typo. */
AbConfig *ab_config_load_required (const char *path, GError **error);

/* Like ab_config_load() for one in-memory document called @name in
 * messages (no drop-ins).  @data need not be NUL-terminated. */
AbConfig *ab_config_load_from_data (const char *data, gsize len,
                                    const char *name, GError **error);

AbConfig *ab_config_ref (AbConfig *config);
void ab_config_unref (AbConfig *config);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbConfig, ab_config_unref)

/* The profile called @name, or NULL. */
const AbAgentProfile *ab_config_lookup_agent (const AbConfig *config,
                                              const char *name);

/* TRUE if @a and @b agree in every field (env compared in order): a reload
 * restarts the sessions of a profile only when this is FALSE. */
gboolean ab_agent_profile_equal (const AbAgentProfile *a,
                                 const AbAgentProfile *b);

G_END_DECLS
