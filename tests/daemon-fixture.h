/* agentbroker tests — the real daemon on a private session bus */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct
{
  GDBusConnection *connection;
  GSubprocess *daemon;
  char *tmpdir;
  char *config_path;
  char *state_dir;
  char *log_path;
  int exit_status;
  char **env; /* extra environment of the daemon, see _setenv() */
} AbDaemonFixture;

void ab_test_bus_up (void);
void ab_test_bus_down (void);

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
void ab_daemon_fixture_teardown (AbDaemonFixture *fx);

GVariant *ab_daemon_call (AbDaemonFixture *fx, const char *method,
                          GVariant *params, const char *reply_type,
                          GError **error);
GVariant *ab_daemon_get_property (AbDaemonFixture *fx, const char *name);

/* Runs agentctl --user ARGS… on the private bus; returns its exit status. */
int ab_run_agentctl (AbDaemonFixture *fx, char **out, char **err,
                     ...) G_GNUC_NULL_TERMINATED;

G_END_DECLS
