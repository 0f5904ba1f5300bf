/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — splitting a byte stream into bounded lines
 *
 * Pure (no I/O, no main loop) so the JSON-RPC reader and its fuzz target
 * share exactly the same framing code.  Memory held never exceeds
 * max_line_bytes: a line that would grow past it is refused as soon as the
 * bytes seen so far prove it too long, not after it has been collected.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _AbLineReader AbLineReader;

/* Called once per complete, non-empty line.  @line is not NUL-terminated;
 * @len excludes the '\n' and a trailing '\r'.  The bytes are valid only
 * during the call.  Return FALSE to stop: the rest of the fed data is
 * dropped and the reader stays stopped. */
typedef gboolean (*AbLineFunc) (const char *line, gsize len,
                                gpointer user_data);

AbLineReader *ab_line_reader_new (gsize max_line_bytes);
void ab_line_reader_free (AbLineReader *reader);

/* Returns FALSE with G_IO_ERROR_MESSAGE_TOO_LARGE when a line exceeds
 * max_line_bytes; the reader is stopped from then on.  Feeding a stopped
 * reader does nothing and returns TRUE. */
gboolean ab_line_reader_feed (AbLineReader *reader, const char *data, gsize len,
                              AbLineFunc func, gpointer user_data,
                              GError **error);

gsize ab_line_reader_get_max_line_bytes (AbLineReader *reader);

/* Bytes of an incomplete line held back, waiting for its '\n'. */
gsize ab_line_reader_get_buffered (AbLineReader *reader);
/* The start of a line not yet ended, taken out of @reader. */
GBytes *ab_line_reader_take_partial (AbLineReader *reader);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbLineReader, ab_line_reader_free)

G_END_DECLS
