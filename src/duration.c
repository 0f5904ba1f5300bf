/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — durations and sizes as written in the config file */
#include "config.h"

#include <glib/gi18n.h>

#include "duration.h"
#include "error.h"

typedef struct
{
  const char *suffix;
  guint64 factor;
} Unit;

/* Largest first, so ab_format_duration() can walk the table in order.
 * Weeks are accepted on input but never produced ("14d" reads better than
 * "2w" in a status line). */
static const Unit duration_units[] = {
  { "w", G_GUINT64_CONSTANT (7) * 24 * 3600 * G_USEC_PER_SEC },
  { "d", G_GUINT64_CONSTANT (24) * 3600 * G_USEC_PER_SEC },
  { "h", G_GUINT64_CONSTANT (3600) * G_USEC_PER_SEC },
  { "m", G_GUINT64_CONSTANT (60) * G_USEC_PER_SEC },
  { "s", G_USEC_PER_SEC },
  { "ms", 1000 },
  { "us", 1 },
};

static const Unit size_units[] = {
  { "B", 1 },
  { "KiB", G_GUINT64_CONSTANT (1) << 10 },
  { "MiB", G_GUINT64_CONSTANT (1) << 20 },
  { "GiB", G_GUINT64_CONSTANT (1) << 30 },
  { "TiB", G_GUINT64_CONSTANT (1) << 40 },
  { "kB", G_GUINT64_CONSTANT (1000) },
  { "MB", G_GUINT64_CONSTANT (1000000) },
  { "GB", G_GUINT64_CONSTANT (1000000000) },
  { "TB", G_GUINT64_CONSTANT (1000000000000) },
};

static const Unit *
find_unit (const Unit *units, gsize n_units, const char *suffix, gsize len)
{
  for (gsize i = 0; i < n_units; i++)
    if (strlen (units[i].suffix) == len
        && strncmp (units[i].suffix, suffix, len) == 0)
      return &units[i];
  return NULL;
}

/* Reads a run of decimal digits at *p into *out.  Returns FALSE with
 * *overflow set when the number does not fit, FALSE without it when there
 * is no digit at all. */
static gboolean
read_number (const char **p, guint64 *out, gboolean *overflow)
{
  guint64 value = 0;
  const char *s = *p;

  *overflow = FALSE;
  if (!g_ascii_isdigit (*s))
    return FALSE;
  for (; g_ascii_isdigit (*s); s++)
    {
      guint digit = *s - '0';

      if (value > (G_MAXUINT64 - digit) / 10)
        *overflow = TRUE;
      else
        value = value * 10 + digit;
    }
  *p = s;
  *out = value;
  return !*overflow;
}

gboolean
ab_parse_duration (const char *text, gint64 *out_usec, GError **error)
{
  const char *p = text;
  const char *shown = text;
  g_autofree char *valid = NULL;
  guint64 total = 0;
  guint64 number;
  gboolean overflow;

  g_return_val_if_fail (out_usec != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  /* Messages may travel over D-Bus, which only carries valid UTF-8. */
  if (text != NULL && !g_utf8_validate (text, -1, NULL))
    shown = valid = g_utf8_make_valid (text, -1);

  if (text == NULL || *text == '\0')
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_CONFIG,
                   _ ("invalid duration “”: empty"));
      return FALSE;
    }
  if (*text == '-')
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_CONFIG,
                   _ ("invalid duration “%s”: negative durations are not "
                      "allowed"),
                   shown);
      return FALSE;
    }

  /* A bare integer means seconds, like systemd's time spans. */
  if (read_number (&p, &number, &overflow) && *p == '\0')
    {
      if (number > (guint64)G_MAXINT64 / G_USEC_PER_SEC)
        goto too_large;
      *out_usec = (gint64)(number * G_USEC_PER_SEC);
      return TRUE;
    }

  p = text;
  while (*p != '\0')
    {
      const char *number_start = p;
      const char *suffix;
      const Unit *unit;

      if (!read_number (&p, &number, &overflow))
        {
          if (overflow)
            goto too_large;
          goto garbage;
        }

      suffix = p;
      while (g_ascii_isalpha (*p))
        p++;
      if (p == suffix && *p != '\0')
        goto garbage;
      if (p == suffix)
        {
          g_autofree char *n = g_strndup (number_start, p - number_start);

          g_set_error (error, AB_ERROR, AB_ERROR_INVALID_CONFIG,
                       _ ("invalid duration “%s”: “%s” has no unit (us, ms, "
                          "s, m, h, d, w)"),
                       shown, n);
          return FALSE;
        }

      unit = find_unit (duration_units, G_N_ELEMENTS (duration_units), suffix,
                        p - suffix);
      if (unit == NULL)
        {
          g_autofree char *u = g_strndup (suffix, p - suffix);

          g_set_error (error, AB_ERROR, AB_ERROR_INVALID_CONFIG,
                       _ ("invalid duration “%s”: unknown unit “%s” (valid "
                          "units: us, ms, s, m, h, d, w)"),
                       shown, u);
          return FALSE;
        }

      if (number > (guint64)G_MAXINT64 / unit->factor)
        goto too_large;
      number *= unit->factor;
      if (total > (guint64)G_MAXINT64 - number)
        goto too_large;
      total += number;
    }

  *out_usec = (gint64)total;
  return TRUE;

garbage:
  g_set_error (error, AB_ERROR, AB_ERROR_INVALID_CONFIG,
               _ ("invalid duration “%s”: expected a number followed by a "
                  "unit (us, ms, s, m, h, d, w), e.g. “30s” or “1h30m”"),
               shown);
  return FALSE;

too_large:
  g_set_error (error, AB_ERROR, AB_ERROR_INVALID_CONFIG,
               _ ("invalid duration “%s”: too large"), shown);
  return FALSE;
}

gboolean
ab_parse_size (const char *text, guint64 *out_bytes, GError **error)
{
  const char *p = text;
  const char *shown = text;
  g_autofree char *valid = NULL;
  const Unit *unit;
  guint64 number;
  gboolean overflow;

  g_return_val_if_fail (out_bytes != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (text != NULL && !g_utf8_validate (text, -1, NULL))
    shown = valid = g_utf8_make_valid (text, -1);

  if (text == NULL || *text == '\0')
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_CONFIG,
                   _ ("invalid size “”: empty"));
      return FALSE;
    }
  if (*text == '-')
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_CONFIG,
                   _ ("invalid size “%s”: negative sizes are not allowed"),
                   shown);
      return FALSE;
    }
  if (!read_number (&p, &number, &overflow))
    {
      if (overflow)
        goto too_large;
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_CONFIG,
                   _ ("invalid size “%s”: expected a number of bytes, "
                      "optionally followed by a unit (B, KiB, MiB, GiB, TiB, "
                      "kB, MB, GB, TB), e.g. “8MiB”"),
                   shown);
      return FALSE;
    }

  if (*p == '\0')
    {
      *out_bytes = number;
      return TRUE;
    }

  unit = find_unit (size_units, G_N_ELEMENTS (size_units), p, strlen (p));
  if (unit == NULL)
    {
      g_autofree char *u = g_utf8_make_valid (p, -1);

      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_CONFIG,
                   _ ("invalid size “%s”: unknown unit “%s” (valid units: B, "
                      "KiB, MiB, GiB, TiB, kB, MB, GB, TB)"),
                   shown, u);
      return FALSE;
    }
  if (number > G_MAXUINT64 / unit->factor)
    goto too_large;

  *out_bytes = number * unit->factor;
  return TRUE;

too_large:
  g_set_error (error, AB_ERROR, AB_ERROR_INVALID_CONFIG,
               _ ("invalid size “%s”: too large"), shown);
  return FALSE;
}

char *
ab_format_duration (gint64 usec)
{
  g_autoptr (GString) out = g_string_new (NULL);
  guint64 rest;

  if (usec == 0)
    return g_strdup ("0");

  if (usec < 0)
    {
      g_string_append_c (out, '-');
      /* Negate in unsigned arithmetic so G_MININT64 does not overflow. */
      rest = (guint64)0 - (guint64)usec;
    }
  else
    rest = (guint64)usec;

  /* Skip weeks: see the comment on duration_units. */
  for (gsize i = 1; i < G_N_ELEMENTS (duration_units); i++)
    {
      guint64 n = rest / duration_units[i].factor;

      if (n == 0)
        continue;
      g_string_append_printf (out, "%" G_GUINT64_FORMAT "%s", n,
                              duration_units[i].suffix);
      rest -= n * duration_units[i].factor;
    }

  return g_string_free (g_steal_pointer (&out), FALSE);
}
