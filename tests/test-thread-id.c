/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — thread id validation and escaping */
#include "config.h"

#include <string.h>

#include "error.h"
#include "thread-id.h"

static void
test_valid (void)
{
  const char *valid[] = {
    "discord:1234567890",
    "slack:C123/1710000000.000001",
    "cli:alice/refactor",
    "a",
    "x@y+z-1_2.3",
    "a/b..c/d",
    "a/.b",
  };
  g_autofree char *longest = g_strnfill (AB_THREAD_ID_MAX, 'a');

  for (gsize i = 0; i < G_N_ELEMENTS (valid); i++)
    {
      g_autoptr (GError) error = NULL;
      g_assert_true (ab_thread_id_validate (valid[i], &error));
      g_assert_no_error (error);
    }
  g_assert_true (ab_thread_id_validate (longest, NULL));
}

static void
test_invalid (void)
{
  g_autofree char *too_long = g_strnfill (AB_THREAD_ID_MAX + 1, 'a');
  const char *invalid[] = {
    "",     too_long, "../x", "/abs", "has space", "tab\there", "nl\nx", "\x01",
    ".hid", "a/../b", "a/..", "é",    "a\\b",      "a*b",       "a?b",   "a%2f",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (invalid); i++)
    {
      g_autoptr (GError) error = NULL;
      g_assert_false (ab_thread_id_validate (invalid[i], &error));
      g_assert_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT);
      g_assert_cmpuint (strlen (error->message), >, 0);
    }
  g_assert_false (ab_thread_id_validate (NULL, NULL));
}

static void
test_object_path (void)
{
  g_autofree char *a = ab_thread_id_to_object_path ("cli:alice/refactor");
  g_autofree char *b = ab_thread_id_to_object_path ("cli:alice_refactor");

  g_assert_true (g_variant_is_object_path (a));
  g_assert_true (g_variant_is_object_path (b));
  g_assert_true (g_str_has_prefix (a, "/org/agentbroker/Broker1/session/"));
  /* Distinct threads never share a path. */
  g_assert_cmpstr (a, !=, b);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/thread-id/valid", test_valid);
  g_test_add_func ("/thread-id/invalid", test_invalid);
  g_test_add_func ("/thread-id/object-path", test_object_path);
  return g_test_run ();
}
