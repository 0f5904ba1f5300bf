/* agentbroker tests — real ACP peers (an agent on the official SDK, a
 * production agent from npm) behind the daemon on a private bus.
 *
 * A small fixture on top of daemon-fixture: the streaming signals of one
 * connection collected per (session, turn), bounded waits, session
 * lookups, and how a peer that is not installed is reported (a skip, or a
 * failure under AGENTBROKER_REQUIRE_ALL_TESTS=1).
 */
#pragma once

#include <gio/gio.h>

#include "daemon-fixture.h"

G_BEGIN_DECLS

/* Everything one connection saw of one turn of one session. */
typedef struct
{
  char *path;
  guint64 turn;
  guint update_signals;
  GPtrArray *updates; /* JSON text of each update, in arrival order */
  GPtrArray *chunks;  /* text of each agent_message_chunk */
  GString *text;      /* the chunks concatenated */
  gboolean ended;
  char *reason;
  char *message;
} PeerTurn;

typedef struct
{
  GDBusConnection *connection;
  guint sub;
  GPtrArray *turns; /* PeerTurn */
} PeerCollector;

typedef struct
{
  AbDaemonFixture d;
  PeerCollector *c; /* signals on d.connection */
} PeerFixture;

PeerCollector *peer_collector_new (GDBusConnection *connection);
void peer_collector_free (PeerCollector *c);
PeerTurn *peer_collector_lookup (PeerCollector *c, const char *thread,
                                 guint64 turn);

/* Sets up the fixture (no daemon yet); @alarm_seconds bounds the whole
 * test: a hang prints the daemon's log and exits. */
void peer_fixture_up (PeerFixture *fx, guint alarm_seconds);
void peer_fixture_down (PeerFixture *fx);
void peer_fixture_start (PeerFixture *fx, const char *yaml);

GDBusConnection *peer_second_connection (void);

/* Prompt(thread, text, {agent}) on @connection; 0 with @error on failure. */
guint64 peer_prompt_on (GDBusConnection *connection, const char *thread,
                        const char *text, const char *agent, GError **error);
guint64 peer_prompt (PeerFixture *fx, const char *thread, const char *text);
void peer_call_ok (PeerFixture *fx, const char *method, GVariant *params);

/* Runs the main context until the turn ended, at most @ms; fails the test
 * when it does not. */
PeerTurn *peer_wait_turn (PeerFixture *fx, PeerCollector *c, const char *thread,
                          guint64 turn, guint ms);
gboolean peer_turn_has_update (PeerCollector *c, const char *thread,
                               guint64 turn);

GVariant *peer_get_session (PeerFixture *fx, const char *thread,
                            GError **error);
char *peer_session_s (PeerFixture *fx, const char *thread, const char *key);
guint32 peer_session_u (PeerFixture *fx, const char *thread, const char *key);
gboolean peer_state_is (PeerFixture *fx, const char *thread, const char *want);
gboolean peer_process_gone (pid_t pid);

/* Iterates the main context until @cond or @ms pass, re-checking @cond at
 * least every 20 ms; evaluates to whether @cond holds. */
#define PEER_WAIT_UNTIL(cond, ms)                                              \
  ({                                                                           \
    gint64 _deadline = g_get_monotonic_time () + (gint64)(ms)*1000;            \
    guint _tick = g_timeout_add (20, peer_tick_cb, NULL);                      \
    gboolean _ok;                                                              \
    while (!(_ok = (cond)) && g_get_monotonic_time () < _deadline)             \
      g_main_context_iteration (NULL, TRUE);                                   \
    g_source_remove (_tick);                                                   \
    _ok;                                                                       \
  })

#define PEER_WAIT_FOR(cond, ms)                                                \
  G_STMT_START                                                                 \
  {                                                                            \
    if (!PEER_WAIT_UNTIL (cond, ms))                                           \
      {                                                                        \
        g_autofree char *_msg = g_strdup_printf (                              \
            "timed out after %d ms waiting for: %s", (int)(ms), #cond);        \
        g_assertion_message (G_LOG_DOMAIN, __FILE__, __LINE__, G_STRFUNC,      \
                             _msg);                                            \
      }                                                                        \
  }                                                                            \
  G_STMT_END

gboolean peer_tick_cb (gpointer user_data);

/* The file @relpath of the npm package directory tests/@pkgdir whose
 * node_modules/@probe exists: first in the build tree (a copy installed
 * there with npm ci), then in the source tree; NULL if neither. */
char *peer_find_installed (const char *pkgdir, const char *relpath,
                           const char *probe);

/* A peer that is not there: skip with @why, or fail under
 * AGENTBROKER_REQUIRE_ALL_TESTS=1. Returns FALSE so callers can
 * `return peer_unavailable (...)`-style bail out. */
void peer_unavailable (const char *why);

G_END_DECLS
