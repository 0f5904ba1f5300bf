/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — durations and sizes as written in the config file
 *
 * Parsing is strict: the config is the operator's contract with the daemon,
 * so anything ambiguous ("1.5h", " 30s", "10KB") is refused with a message
 * that names the input and what was wrong with it.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Parses a duration: "0", a bare integer (seconds), or one or more
 * NUMBER UNIT pairs such as "500ms", "30s", "10m", "2h", "7d", "1h30m"
 * (units: us, ms, s, m, h, d, w).  Negative, empty, fractional or
 * overflowing values and unknown units fail with AB_ERROR_INVALID_CONFIG. */
gboolean ab_parse_duration (const char *text, gint64 *out_usec, GError **error);

/* Parses a size: a bare integer (bytes) or NUMBER UNIT with UNIT one of
 * B, KiB, MiB, GiB, TiB (binary) or kB, MB, GB, TB (SI).  Overflow and
 * anything else fail with AB_ERROR_INVALID_CONFIG. */
gboolean ab_parse_size (const char *text, guint64 *out_bytes, GError **error);

/* The inverse of ab_parse_duration() for status output: "0", "30s", "7d",
 * "1h30m", "1s500ms".  The result always parses back to @usec (for
 * @usec >= 0).  Free with g_free(). */
char *ab_format_duration (gint64 usec);

G_END_DECLS
