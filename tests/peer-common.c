/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — real ACP peers behind the daemon: shared fixture */
#include "config.h"

#include <signal.h>

#include "peer-common.h"

void
peer_fixture_up (PeerFixture *fx, guint alarm_seconds)
{
  ab_daemon_fixture_setup (&fx->d, NULL);
  fx->c = ab_collector_new (fx->d.connection);
  ab_daemon_fixture_watchdog (&fx->d, alarm_seconds);
}

void
peer_fixture_start (PeerFixture *fx, const char *yaml)
{
  g_autoptr (GError) error = NULL;

  if (yaml != NULL)
    ab_daemon_fixture_write_config (&fx->d, yaml);
  ab_daemon_fixture_start (&fx->d, &error);
  g_assert_no_error (error);
}

void
peer_fixture_down (PeerFixture *fx)
{
  ab_collector_free (fx->c);
  fx->c = NULL;
  /* The daemon survived whatever the peer did. */
  ab_daemon_fixture_stop_checked (&fx->d);
  ab_daemon_fixture_teardown (&fx->d);
}

/* ---- where the peers are ------------------------------------------------ */

char *
peer_find_installed (const char *pkgdir, const char *relpath, const char *probe)
{
  const char *roots[]
      = { g_getenv ("G_TEST_BUILDDIR"), g_getenv ("G_TEST_SRCDIR") };

  for (guint i = 0; i < G_N_ELEMENTS (roots); i++)
    {
      g_autofree char *probe_path = NULL;
      g_autofree char *file = NULL;

      if (roots[i] == NULL)
        continue;
      probe_path
          = g_build_filename (roots[i], pkgdir, "node_modules", probe, NULL);
      file = g_build_filename (roots[i], pkgdir, relpath, NULL);
      if (g_file_test (probe_path, G_FILE_TEST_EXISTS)
          && g_file_test (file, G_FILE_TEST_EXISTS))
        return g_canonicalize_filename (file, NULL);
    }
  return NULL;
}

void
peer_unavailable (const char *why)
{
  if (g_strcmp0 (g_getenv ("AGENTBROKER_REQUIRE_ALL_TESTS"), "1") == 0)
    {
      g_test_message ("%s (a failure: AGENTBROKER_REQUIRE_ALL_TESTS=1)", why);
      g_test_fail ();
    }
  else
    g_test_skip (why);
}
