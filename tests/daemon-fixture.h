/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — the real daemon on a private session bus: its
 * fixture, bounded waits, and calls to its D-Bus interface. */
#pragma once

#include <sys/types.h>

#include <gio/gio.h>

G_BEGIN_DECLS

#include "names.h"

/* Timeout of the calls below (ab_call_on() and what is built on it). */
#define AB_CALL_TIMEOUT_MS 30000
/* How long the daemon may take to exit after a signal, and agentctl to
 * end: past it the test fails instead of hanging. */
#define AB_EXIT_TIMEOUT_MS 120000

typedef struct
{
  GDBusConnection *connection;
  GSubprocess *daemon;
  char *tmpdir;
  char *config_path;
  char *state_dir;
  char *log_path;
  int exit_status;
  char **env;       /* extra environment of the daemon, see _setenv() */
  char *caller_map; /* AGENTBROKER_TEST_CALLER_MAP, see ab_user_connection() */
} AbDaemonFixture;

/* One private bus for the whole test program: ab_test_bus_up() before
 * the tests, then ab_test_run() runs them and takes the bus down again. */
void ab_test_bus_up (void);
void ab_test_bus_down (void);
int ab_test_run (void);

/* Directory of the built programs (src/ of the build tree). */
const char *ab_test_builddir (void);
char *ab_test_program (const char *name);

void ab_daemon_fixture_setup (AbDaemonFixture *fx, const char *config_yaml);
gboolean ab_daemon_fixture_start (AbDaemonFixture *fx, GError **error);
void ab_daemon_fixture_write_config (AbDaemonFixture *fx, const char *yaml);
/* Sets @name=@value in the environment of the daemon started next. */
void ab_daemon_fixture_setenv (AbDaemonFixture *fx, const char *name,
                               const char *value);
int ab_daemon_fixture_stop (AbDaemonFixture *fx, int signum);
/* Stops a running daemon with SIGTERM; an exit status other than 0 fails
 * the test (unless it failed already): the daemon survived the test. */
void ab_daemon_fixture_stop_checked (AbDaemonFixture *fx);
void ab_daemon_fixture_teardown (AbDaemonFixture *fx);

/* Until the teardown: a failed assertion (SIGABRT) or a test still running
 * after @seconds (SIGALRM) prints the daemon's log before the program ends
 * (the teardown that would print it does not run) and stops the daemon. */
void ab_daemon_fixture_watchdog (AbDaemonFixture *fx, guint seconds);

GVariant *ab_daemon_call (AbDaemonFixture *fx, const char *method,
                          GVariant *params, const char *reply_type,
                          GError **error);
GVariant *ab_daemon_get_property (AbDaemonFixture *fx, const char *name);

/* Runs agentctl --user ARGS… on the private bus; returns its exit status. */
int ab_run_agentctl (AbDaemonFixture *fx, char **out, char **err,
                     ...) G_GNUC_NULL_TERMINATED;

/* A new connection to the private bus, apart from fx->connection. */
GDBusConnection *ab_second_connection (void);
/* Whether the broker's bus name has an owner (a daemon, running or not
 * yet gone from the bus). */
gboolean ab_broker_name_has_owner (GDBusConnection *connection);

/* A new connection that the daemon takes for an ordinary user of uid
 * @uid with user access (as a member of access.users on the system bus),
 * not for the admin every other connection of the test is. Through the
 * daemon's test-only caller map (AGENTBROKER_TEST_CALLER_MAP, honoured
 * on a session bus only), so owner checks are tested without root. */
GDBusConnection *ab_user_connection (AbDaemonFixture *fx, uid_t uid);

/* ---- bounded waits ------------------------------------------------------ */

/* Runs the main context until @cond holds or @ms pass, and evaluates to
 * whether @cond holds; @cond is checked at least every 20 ms, so it may
 * poll the daemon. */
#define AB_WAIT_UNTIL(cond, ms)                                                \
  ({                                                                           \
    gint64 _deadline = g_get_monotonic_time () + (gint64)(ms)*1000;            \
    guint _tick = g_timeout_add (20, ab_wait_tick_cb, NULL);                   \
    gboolean _ok;                                                              \
    while (!(_ok = (cond)) && g_get_monotonic_time () < _deadline)             \
      g_main_context_iteration (NULL, TRUE);                                   \
    g_source_remove (_tick);                                                   \
    _ok;                                                                       \
  })

/* AB_WAIT_UNTIL(), and a timeout fails the test with what it waited for. */
#define AB_WAIT_FOR(cond, ms)                                                  \
  G_STMT_START                                                                 \
  {                                                                            \
    if (!AB_WAIT_UNTIL (cond, ms))                                             \
      {                                                                        \
        g_autofree char *_msg = g_strdup_printf (                              \
            "timed out after %d ms waiting for: %s", (int)(ms), #cond);        \
        g_assertion_message (G_LOG_DOMAIN, __FILE__, __LINE__, G_STRFUNC,      \
                             _msg);                                            \
      }                                                                        \
  }                                                                            \
  G_STMT_END

gboolean ab_wait_tick_cb (gpointer user_data);

/* Dispatches whatever already arrived, without waiting. */
void ab_drain_main_context (void);

/* Waits for @proc to exit, at most AB_EXIT_TIMEOUT_MS, dispatching
 * nothing else; FALSE if it still runs. */
gboolean ab_subprocess_wait_bounded (GSubprocess *proc);
/* g_subprocess_communicate_utf8() without input; a child still running
 * after AB_EXIT_TIMEOUT_MS is killed and fails the test. */
void ab_subprocess_communicate_bounded (GSubprocess *proc, char **out,
                                        char **err);

/* ---- calls to the broker ------------------------------------------------ */

/* A method of org.agentbroker.Broker1 called from @connection. */
GVariant *ab_call_on (GDBusConnection *connection, const char *method,
                      GVariant *params, const char *reply_type, GError **error);
/* A method without results, asserting that it succeeds. */
void ab_call_ok_on (GDBusConnection *connection, const char *method,
                    GVariant *params);
void ab_call_ok (AbDaemonFixture *fx, const char *method, GVariant *params);

/* A round trip from @connection to the daemon: whatever the daemon sent
 * to it before answering has been dispatched afterwards. */
void ab_sync_with_daemon (GDBusConnection *connection);

/* The object path of the session of @thread. */
char *ab_session_path (const char *thread);
/* GetSession(thread), or NULL with @error. */
GVariant *ab_get_session (AbDaemonFixture *fx, const char *thread,
                          GError **error);
/* The session's state, or "(none)" / "(error)" as a string to compare. */
char *ab_session_state (AbDaemonFixture *fx, const char *thread);
/* @want: a state, or several separated by "|". */
gboolean ab_state_is (AbDaemonFixture *fx, const char *thread,
                      const char *want);
/* A key of GetSession(thread), asserting the session and the key exist. */
char *ab_session_s (AbDaemonFixture *fx, const char *thread, const char *key);
guint32 ab_session_u (AbDaemonFixture *fx, const char *thread, const char *key);
guint64 ab_session_t (AbDaemonFixture *fx, const char *thread, const char *key);
/* ListSessions(), asserting that it succeeds: its structs as dictionaries
 * keyed by the documented field names, as GetSession() has them. */
GVariant *ab_list_sessions (AbDaemonFixture *fx);
/* ListSessions(@options) (NULL: none, floating is consumed), the same
 * way; NULL and @error when refused. */
GVariant *ab_list_sessions_with (AbDaemonFixture *fx, GVariant *options,
                                 GError **error);
/* The introspection of @path on the daemon, parsed. */
GDBusNodeInfo *ab_introspect (GDBusConnection *connection, const char *path);
/* A uint32 property of the broker. */
guint32 ab_broker_u (AbDaemonFixture *fx, const char *name);

/* @error is @code of AB_ERROR, with the D-Bus error name @name. */
void ab_assert_error_named (const GError *error, int code, const char *name);

/* A process is gone when kill(pid, 0) finds nothing, or when it is a
 * zombie: PID 1 of a sandbox may not reap what it inherits. */
gboolean ab_process_gone (pid_t pid);

/* The prompt of a demo agent turn that runs until ab_gate_open() with the
 * same @name: for tests that must look at a turn while it runs, however
 * slow the machine.  ab_gate_path() is the file the gate waits for. */
char *ab_gate_path (AbDaemonFixture *fx, const char *name);
char *ab_gate_prompt (AbDaemonFixture *fx, const char *name);
void ab_gate_open (AbDaemonFixture *fx, const char *name);

G_END_DECLS
