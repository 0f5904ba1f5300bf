/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — libFuzzer target for the config loader
 *
 * Feeds arbitrary bytes to ab_config_load_from_data().  Short inputs are
 * also fed to the duration and size parsers, checking that formatting a
 * parsed duration gives text that parses back to the same value.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "ab-config.h"
#include "duration.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
fuzz_duration_and_size (const uint8_t *data, size_t size)
{
  g_autofree char *text = g_strndup ((const char *)data, size);
  gint64 usec;
  guint64 bytes;

  if (ab_parse_duration (text, &usec, NULL))
    {
      g_autofree char *formatted = ab_format_duration (usec);
      gint64 again = -1;

      if (usec < 0 || !ab_parse_duration (formatted, &again, NULL)
          || again != usec)
        abort ();
    }
  ab_parse_size (text, &bytes, NULL);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (AbConfig) config = NULL;

  if (size <= 64)
    fuzz_duration_and_size (data, size);

  config = ab_config_load_from_data ((const char *)data, size, "fuzz.yaml",
                                     &error);
  /* Exactly one of a config and an error, and messages stay UTF-8 so they
   * can travel over D-Bus. */
  if ((config == NULL) == (error == NULL))
    abort ();
  if (error != NULL && !g_utf8_validate (error->message, -1, NULL))
    abort ();
  if (config != NULL
      && ab_config_lookup_agent (config, config->default_agent) == NULL)
    abort ();
  return 0;
}
