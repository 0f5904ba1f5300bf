/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — splitting a byte stream into bounded lines */
#include "config.h"

#include <string.h>

#include <gio/gio.h>

#include "line-reader.h"

struct _AbLineReader
{
  gsize max_line_bytes;
  GByteArray *partial; /* start of a line whose '\n' has not arrived yet */
  gboolean stopped;
};

AbLineReader *
ab_line_reader_new (gsize max_line_bytes)
{
  AbLineReader *reader = g_new0 (AbLineReader, 1);

  g_return_val_if_fail (max_line_bytes > 0, NULL);

  reader->max_line_bytes = max_line_bytes;
  reader->partial = g_byte_array_new ();
  return reader;
}

void
ab_line_reader_free (AbLineReader *reader)
{
  if (reader == NULL)
    return;
  g_byte_array_unref (reader->partial);
  g_free (reader);
}

gsize
ab_line_reader_get_max_line_bytes (AbLineReader *reader)
{
  return reader->max_line_bytes;
}

GBytes *
ab_line_reader_take_partial (AbLineReader *reader)
{
  GByteArray *partial = reader->partial;

  reader->partial = g_byte_array_new ();
  return g_byte_array_free_to_bytes (partial);
}

gsize
ab_line_reader_get_buffered (AbLineReader *reader)
{
  return reader->partial->len;
}

static gboolean
emit_line (AbLineReader *reader, const char *line, gsize len, AbLineFunc func,
           gpointer user_data)
{
  if (len > 0 && line[len - 1] == '\r')
    len--;
  if (len == 0)
    return TRUE;
  return func (line, len, user_data);
}

gboolean
ab_line_reader_feed (AbLineReader *reader, const char *data, gsize len,
                     AbLineFunc func, gpointer user_data, GError **error)
{
  g_return_val_if_fail (reader != NULL, FALSE);
  g_return_val_if_fail (data != NULL || len == 0, FALSE);
  g_return_val_if_fail (func != NULL, FALSE);

  while (len > 0 && !reader->stopped)
    {
      const char *nl = memchr (data, '\n', len);
      gsize chunk = nl != NULL ? (gsize)(nl - data) : len;
      gboolean go_on;

      /* Checked before copying anything, so an over-long line costs at
       * most max_line_bytes of memory whatever its real length. */
      if (chunk > reader->max_line_bytes - reader->partial->len)
        {
          reader->stopped = TRUE;
          g_byte_array_set_size (reader->partial, 0);
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
                       "line of more than %" G_GSIZE_FORMAT " bytes",
                       reader->max_line_bytes);
          return FALSE;
        }

      if (nl == NULL)
        {
          g_byte_array_append (reader->partial, (const guint8 *)data, chunk);
          return TRUE;
        }

      if (reader->partial->len == 0)
        {
          /* Common case: the whole line is in this chunk, no copy. */
          go_on = emit_line (reader, data, chunk, func, user_data);
        }
      else
        {
          g_autoptr (GByteArray) line = reader->partial;

          g_byte_array_append (line, (const guint8 *)data, chunk);
          reader->partial = g_byte_array_new ();
          go_on = emit_line (reader, (const char *)line->data, line->len, func,
                             user_data);
        }

      if (!go_on)
        reader->stopped = TRUE;
      data += chunk + 1;
      len -= chunk + 1;
    }

  return TRUE;
}
