/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — tests of the session unit names (src/systemd-unit-name.c) */
#include "config.h"

#include <string.h>

#include <glib.h>

#include "systemd-unit-name.h"
#include "thread-id.h"

static void
test_plain (void)
{
  g_autofree char *name = ab_systemd_unit_name_for_thread ("build-7");

  g_assert_cmpstr (name, ==, "agentbroker-session-build\\x2d7.service");
}

/* The same bytes `systemd-escape 'a/b-c@d+e:f_g.h'` prints. */
static void
test_escaped_like_systemd_escape (void)
{
  g_autofree char *name = ab_systemd_unit_name_for_thread ("a/b-c@d+e:f_g.h");

  g_assert_cmpstr (name, ==,
                   "agentbroker-session-a-b\\x2dc\\x40d\\x2be:f_g.h.service");
}

static void
test_long_thread_is_hashed (void)
{
  g_autofree char *at = g_strnfill (AB_THREAD_ID_MAX, '@');
  g_autofree char *at2 = g_strdup (at);
  g_autofree char *name = NULL;
  g_autofree char *again = NULL;
  g_autofree char *other = NULL;
  g_autofree char *want = NULL;
  g_autofree char *hash = NULL;

  g_assert_true (ab_thread_id_validate (at, NULL));
  name = ab_systemd_unit_name_for_thread (at);
  again = ab_systemd_unit_name_for_thread (at);
  at2[AB_THREAD_ID_MAX - 1] = '+';
  other = ab_systemd_unit_name_for_thread (at2);

  g_assert_cmpuint (strlen (name), <=, AB_UNIT_NAME_MAX);
  hash = g_compute_checksum_for_string (G_CHECKSUM_SHA256, at, -1);
  want = g_strconcat ("agentbroker-hashed-session-", hash, ".service", NULL);
  g_assert_cmpstr (name, ==, want);
  g_assert_cmpstr (name, ==, again);
  g_assert_cmpstr (name, !=, other);
}

/* The longest name that still fits is kept escaped, one byte more is
 * hashed. */
static void
test_limit_boundary (void)
{
  gsize room = AB_UNIT_NAME_MAX - strlen ("agentbroker-session-.service");
  g_autofree char *fits = g_strnfill (room, 'a');
  g_autofree char *over = g_strnfill (room + 1, 'a');
  g_autofree char *fits_name = ab_systemd_unit_name_for_thread (fits);
  g_autofree char *over_name = ab_systemd_unit_name_for_thread (over);

  g_assert_cmpuint (strlen (fits_name), ==, AB_UNIT_NAME_MAX);
  g_assert_true (g_str_has_prefix (fits_name, "agentbroker-session-"));
  g_assert_true (g_str_has_prefix (over_name, "agentbroker-hashed-session-"));
  g_assert_cmpuint (strlen (over_name), <=, AB_UNIT_NAME_MAX);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/unit-name/plain", test_plain);
  g_test_add_func ("/unit-name/systemd-escape",
                   test_escaped_like_systemd_escape);
  g_test_add_func ("/unit-name/long-hashed", test_long_thread_is_hashed);
  g_test_add_func ("/unit-name/limit", test_limit_boundary);
  return g_test_run ();
}
