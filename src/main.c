/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbrokerd — entry point
 *
 * Loads the configuration, builds the broker and its adapters (D-Bus,
 * systemd notifications), owns the bus name and runs the main loop until
 * SIGTERM or SIGINT.
 */
#include "config.h"

#include <errno.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib/gi18n.h>

#include "ab-config.h"
#include "broker.h"
#include "bus.h"
#include "error.h"
#include "health.h"
#include "log.h"
#include "notify.h"
#include "pool.h"
#include "session.h"
#include "store.h"
#include "systemd-launcher.h"

typedef struct
{
  GMainLoop *loop;
  AbBroker *broker;
  AbNotifier *notifier;
  AbHealth *health;
  AbBus *bus;
  gboolean system_bus;
  gboolean stopping;
  int exit_status;
  GHashTable *passed_fds;   /* agents' pipes from the fd store, until used */
  AbSystemdLauncher *units; /* the launcher, when agents are units */
} AbDaemon;

static void
print_config_problems (const char *problems)
{
  g_auto (GStrv) lines = g_strsplit (problems, "\n", -1);

  for (char **line = lines; *line != NULL; line++)
    if (**line != '\0')
      fprintf (stderr, "%s\n", *line);
}

static char *
default_config_path (gboolean system_bus)
{
  if (system_bus)
    return g_build_filename (SYSCONFDIR, "agentbroker", "agentbroker.yaml",
                             NULL);
  return g_build_filename (g_get_user_config_dir (), "agentbroker",
                           "agentbroker.yaml", NULL);
}

/* Each agent takes four descriptors and the health shim up to 512: at the
 * usual soft limit of 1024, about a hundred agents and a slow client would
 * make spawns fail. The hard limit is ours to take. */
static void
raise_open_file_limit (void)
{
  struct rlimit limit;
  rlim_t was;

  if (getrlimit (RLIMIT_NOFILE, &limit) < 0 || limit.rlim_cur == limit.rlim_max)
    return;
  was = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit (RLIMIT_NOFILE, &limit) < 0)
    g_warning ("Cannot raise the open-file limit from %" G_GUINT64_FORMAT
               ": %s",
               (guint64)was, g_strerror (errno));
}

static char *
default_state_dir (gboolean system_bus)
{
  const char *from_systemd = g_getenv ("STATE_DIRECTORY");

  /* systemd may pass several, colon-separated; ours is the first. */
  if (from_systemd != NULL && from_systemd[0] != '\0')
    {
      g_auto (GStrv) dirs = g_strsplit (from_systemd, ":", 2);
      return g_strdup (dirs[0]);
    }
  if (system_bus)
    return g_strdup ("/var/lib/agentbroker");
  return g_build_filename (g_get_user_state_dir (), "agentbroker", NULL);
}

/* Started by the system manager as a system service? Then the system bus
 * is the default; everywhere else the session bus is. */
static gboolean
started_as_system_service (void)
{
  return g_getenv ("INVOCATION_ID") != NULL && getppid () == 1
         && g_getenv ("MANAGERPID") == NULL;
}

static gboolean
on_sighup (gpointer user_data)
{
  AbDaemon *daemon = user_data;
  g_autoptr (GError) error = NULL;

  g_message ("SIGHUP received; reloading configuration");
  if (!ab_broker_reload (daemon->broker, &error))
    g_warning ("reload on SIGHUP failed: %s", error->message);
  return G_SOURCE_CONTINUE;
}

static void
on_stopped (GObject *source, GAsyncResult *result, gpointer user_data)
{
  AbDaemon *daemon = user_data;

  ab_broker_stop_finish (AB_BROKER (source), result, NULL);
  g_main_loop_quit (daemon->loop);
}

static gboolean
on_sigterm (gpointer user_data)
{
  AbDaemon *daemon = user_data;
  AbConfig *config = ab_broker_get_config (daemon->broker);
  gboolean keep;

  if (daemon->stopping)
    {
      g_message ("second stop request; stopping agents at once");
      ab_pool_kill_all (ab_broker_get_pool (daemon->broker));
      g_main_loop_quit (daemon->loop);
      return G_SOURCE_CONTINUE;
    }
  daemon->stopping = TRUE;
  g_message ("stop requested; draining for at most %" G_GINT64_FORMAT " s",
             config->drain_timeout_usec / G_USEC_PER_SEC);
  /* The drain, the agents' grace period and a margin. */
  ab_notifier_extend_timeout (daemon->notifier,
                              config->drain_timeout_usec
                                  + 2 * config->kill_timeout_usec
                                  + 5 * G_USEC_PER_SEC);
  /* A restart (not a stop) of the unit leaves the agents' units running
   * for the next instance, their pipes in the fd store. */
  keep = daemon->units != NULL
         && ab_systemd_launcher_restart_pending (daemon->units);
  if (keep)
    g_message ("restarting: the agents keep running for the next instance");
  ab_broker_stop_async (daemon->broker, keep, on_stopped, daemon);
  return G_SOURCE_CONTINUE;
}

/* The launcher the configuration asks for: systemd's on the manager
 * reached through @connection, when it is asked for or when "auto" finds
 * the daemon in a unit of a reachable manager.  FALSE: systemd was asked
 * for and cannot be used. */
/* The sessions whose agents an earlier instance left running go on with
 * them now: the same processes, the same ACP sessions. */
static void
reattach_kept_agents (AbDaemon *daemon)
{
  g_autoptr (GPtrArray) all
      = ab_pool_list (ab_broker_get_pool (daemon->broker));

  for (guint i = 0; i < all->len; i++)
    {
      AbSession *session = g_ptr_array_index (all, i);

      if (daemon->units != NULL
          && ab_systemd_launcher_keeps_agent (daemon->units,
                                              ab_session_get_thread (session)))
        ab_session_reattach (session);
      else
        ab_session_forget_handover (session);
    }
  if (daemon->units != NULL)
    ab_systemd_launcher_release_unclaimed (daemon->units);
}

static gboolean
choose_launcher (AbDaemon *daemon, GDBusConnection *connection)
{
  AbConfig *config = ab_broker_get_config (daemon->broker);
  g_autoptr (AbAgentLauncher) launcher = NULL;
  g_autoptr (GError) error = NULL;

  if (config->launcher != AB_LAUNCHER_DIRECT)
    launcher = ab_systemd_launcher_new (connection, daemon->system_bus,
                                        daemon->passed_fds, &error);
  if (launcher != NULL)
    {
      g_message ("agents start as transient units in agentbroker-sessions."
                 "slice (launcher: systemd)");
      ab_broker_set_launcher (daemon->broker, launcher, "systemd");
      daemon->units = AB_SYSTEMD_LAUNCHER (g_object_ref (launcher));
      reattach_kept_agents (daemon);
      return TRUE;
    }
  if (config->launcher == AB_LAUNCHER_SYSTEMD)
    {
      g_critical ("launcher: systemd, but %s", error->message);
      return FALSE;
    }
  if (error != NULL)
    g_message ("agents start as children of the daemon (launcher: auto, "
               "and %s)",
               error->message);
  for (guint i = 0; i < config->agents->len; i++)
    {
      const AbAgentProfile *p = g_ptr_array_index (config->agents, i);
      const AbSandbox *s = &p->sandbox;

      if (s->memory_max > 0 || s->cpu_percent > 0 || s->tasks_max > 0
          || s->network != AB_NETWORK_ALL || s->read_only_paths[0] != NULL
          || s->read_write_paths[0] != NULL)
        g_warning ("agents.%s.sandbox is not applied: agents start as "
                   "children of the daemon (launcher: systemd applies it)",
                   p->name);
    }
  /* Under systemd an operator may expect each agent in a unit of its own;
   * say plainly that it is not so. */
  if (g_getenv ("INVOCATION_ID") != NULL)
    g_warning ("Agents start as children of agentbrokerd (the direct "
               "launcher): they run as its user, inside its sandbox and "
               "cgroup, and a process an agent moves out of its process "
               "group with setsid() outlives RemoveSession until the "
               "service stops");
  return TRUE;
}

static void
on_bus_acquired (GDBusConnection *connection, const char *name,
                 gpointer user_data)
{
  AbDaemon *daemon = user_data;
  g_autoptr (GError) error = NULL;

  daemon->bus
      = ab_bus_new (daemon->broker, connection, daemon->system_bus, &error);
  if (daemon->bus == NULL)
    {
      g_critical ("cannot export the D-Bus objects: %s", error->message);
      daemon->exit_status = EXIT_FAILURE;
      g_main_loop_quit (daemon->loop);
    }
}

static void
on_name_acquired (GDBusConnection *connection, const char *name,
                  gpointer user_data)
{
  AbDaemon *daemon = user_data;

  /* Clients follow the name: reattached agents are heard from now on. */
  {
    g_autoptr (GPtrArray) all
        = ab_pool_list (ab_broker_get_pool (daemon->broker));

    for (guint i = 0; i < all->len; i++)
      ab_session_go_on (g_ptr_array_index (all, i));
  }
  g_message ("owning %s on the %s bus; ready", name,
             daemon->system_bus ? "system" : "session");
  if (ab_broker_get_state (daemon->broker) == AB_BROKER_STATE_STARTING)
    ab_broker_start (daemon->broker);
}

static void
on_name_lost (GDBusConnection *connection, const char *name, gpointer user_data)
{
  AbDaemon *daemon = user_data;

  if (connection == NULL)
    g_critical ("cannot connect to the %s bus",
                daemon->system_bus ? "system" : "session");
  else
    g_critical ("cannot own the name %s (already taken, or not allowed by "
                "the bus policy)",
                name);
  daemon->exit_status = EXIT_FAILURE;
  g_main_loop_quit (daemon->loop);
}

int
main (int argc, char **argv)
{
  gboolean opt_system = FALSE, opt_session = FALSE, opt_version = FALSE;
  gboolean opt_verbose = FALSE, config_required;
  g_autofree char *opt_config = NULL;
  g_autofree char *state_dir = NULL;
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (AbConfig) config = NULL;
  AbDaemon daemon = { 0 };
  guint owner_id;
  const GOptionEntry entries[]
      = { { "system", 0, 0, G_OPTION_ARG_NONE, &opt_system,
            N_ ("Serve on the system bus"), NULL },
          { "session", 0, 0, G_OPTION_ARG_NONE, &opt_session,
            N_ ("Serve on the session bus"), NULL },
          { "config", 'c', 0, G_OPTION_ARG_FILENAME, &opt_config,
            N_ ("Configuration file"), N_ ("PATH") },
          { "verbose", 'v', 0, G_OPTION_ARG_NONE, &opt_verbose,
            N_ ("Log debug messages"), NULL },
          { "version", 0, 0, G_OPTION_ARG_NONE, &opt_version,
            N_ ("Print the version and exit"), NULL },
          { NULL } };

  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);

  context = g_option_context_new (NULL);
  g_option_context_set_summary (
      context, _ ("Keeps AI coding-agent sessions alive behind D-Bus."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      fprintf (stderr, "agentbrokerd: %s\n", error->message);
      return 2;
    }
  if (opt_version)
    {
      printf ("agentbrokerd %s\n", PACKAGE_VERSION);
      return EXIT_SUCCESS;
    }
  if (opt_system && opt_session)
    {
      fprintf (stderr, "agentbrokerd: %s\n",
               _ ("--system and --session exclude each other"));
      return 2;
    }

  ab_log_init (opt_verbose);
  /* A write to an agent that has gone away must fail, not kill us. */
  signal (SIGPIPE, SIG_IGN);
  raise_open_file_limit ();
  daemon.system_bus
      = opt_system || (!opt_session && started_as_system_service ());
  config_required = opt_config != NULL;
  if (!config_required)
    opt_config = default_config_path (daemon.system_bus);

  config = config_required ? ab_config_load_required (opt_config, &error)
                           : ab_config_load (opt_config, &error);
  if (config == NULL)
    {
      print_config_problems (error->message);
      return EXIT_FAILURE;
    }
  if (config->sources[0] == NULL)
    g_message ("No configuration at %s: running the built-in default (the "
               "demo agent)",
               opt_config);

  /* Before the health shim takes the sockets systemd passed. */
  daemon.passed_fds = ab_systemd_take_passed_fds ();
  state_dir = default_state_dir (daemon.system_bus);
  daemon.loop = g_main_loop_new (NULL, FALSE);
  daemon.broker = ab_broker_new (opt_config, config, state_dir);
  daemon.notifier = ab_notifier_new (daemon.broker);
  /* Probes answer from now on: /readyz says "starting" until the bus
   * name is ours. */
  daemon.health = ab_health_new (daemon.broker);

  g_unix_signal_add (SIGHUP, on_sighup, &daemon);
  g_unix_signal_add (SIGTERM, on_sigterm, &daemon);
  g_unix_signal_add (SIGINT, on_sigterm, &daemon);

  /* The launcher is settled before the name is taken: a daemon that
   * cannot start its agents the configured way never answers. */
  {
    g_autoptr (GDBusConnection) bus = g_bus_get_sync (
        daemon.system_bus ? G_BUS_TYPE_SYSTEM : G_BUS_TYPE_SESSION, NULL, NULL);

    if (bus != NULL && !choose_launcher (&daemon, bus))
      return EXIT_FAILURE;
    if (daemon.units == NULL)
      reattach_kept_agents (&daemon);
    /* Pipes no launcher went on with (the launcher is direct now). */
    g_clear_pointer (&daemon.passed_fds, ab_systemd_passed_fds_close);
  }

  owner_id = g_bus_own_name (
      daemon.system_bus ? G_BUS_TYPE_SYSTEM : G_BUS_TYPE_SESSION, AB_BUS_NAME,
      G_BUS_NAME_OWNER_FLAGS_DO_NOT_QUEUE, on_bus_acquired, on_name_acquired,
      on_name_lost, &daemon, NULL);

  g_main_loop_run (daemon.loop);

  /* Session records still being written are waited for: a stop loses
   * nothing. */
  ab_store_flush ();
  /* Signals still queued for the bus (the last updates of a turn handed
   * over) leave before the daemon does. */
  {
    g_autoptr (GDBusConnection) bus = g_bus_get_sync (
        daemon.system_bus ? G_BUS_TYPE_SYSTEM : G_BUS_TYPE_SESSION, NULL, NULL);

    if (bus != NULL)
      g_dbus_connection_flush_sync (bus, NULL, NULL);
  }
  /* Nothing outlives the daemon: agents still running are killed. */
  ab_pool_kill_all (ab_broker_get_pool (daemon.broker));
  g_bus_unown_name (owner_id);
  g_clear_object (&daemon.bus);
  g_clear_object (&daemon.health);
  g_clear_object (&daemon.notifier);
  g_clear_object (&daemon.units);
  g_clear_object (&daemon.broker);
  g_main_loop_unref (daemon.loop);
  g_message ("stopped");
  return daemon.exit_status;
}
