/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — a session's transcript (transcript.h says what it holds) */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>

#include "transcript.h"

struct _AbTranscript
{
  char *path;
  gint64 size; /* bytes on disk; -1 until known */
};

static char *
transcript_path (const char *store_dir, const char *thread)
{
  g_autofree char *hash
      = g_compute_checksum_for_string (G_CHECKSUM_SHA256, thread, -1);
  g_autofree char *name = g_strconcat (hash, ".transcript", NULL);

  return g_build_filename (store_dir, name, NULL);
}

AbTranscript *
ab_transcript_new (const char *store_dir, const char *thread)
{
  AbTranscript *self = g_new0 (AbTranscript, 1);

  self->path = transcript_path (store_dir, thread);
  self->size = -1;
  return self;
}

void
ab_transcript_free (AbTranscript *self)
{
  if (self == NULL)
    return;
  g_free (self->path);
  g_free (self);
}

static gint64
size_on_disk (AbTranscript *self)
{
  struct stat st;

  if (self->size < 0)
    self->size = g_stat (self->path, &st) == 0 ? (gint64)st.st_size : 0;
  return self->size;
}

/* The file keeps only its newest lines, at most @keep bytes of them. */
static void
compact (AbTranscript *self, gsize keep)
{
  g_autofree char *data = NULL;
  g_autoptr (GError) error = NULL;
  gsize len = 0;
  const char *start;

  if (!g_file_get_contents (self->path, &data, &len, &error))
    {
      if (!g_error_matches (error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        g_warning ("cannot read transcript %s: %s", self->path, error->message);
      self->size = 0;
      return;
    }
  start = data;
  while ((gsize)(data + len - start) > keep)
    {
      const char *newline = memchr (start, '\n', data + len - start);

      start = newline != NULL ? newline + 1 : data + len;
    }
  if (!g_file_set_contents_full (self->path, start, data + len - start,
                                 G_FILE_SET_CONTENTS_CONSISTENT, 0600, &error))
    {
      g_warning ("cannot write transcript %s: %s", self->path, error->message);
      self->size = -1;
      return;
    }
  self->size = (gint64)(data + len - start);
}

static void
append (AbTranscript *self, const GString *lines, guint64 max_bytes)
{
  gsize done = 0;
  int fd;

  if (max_bytes == 0 || lines->len == 0)
    return;
  if ((guint64)size_on_disk (self) + lines->len > max_bytes)
    compact (self,
             (gsize)MIN (max_bytes / 2,
                         max_bytes > lines->len ? max_bytes - lines->len : 0));
  /* An entry larger than the bound is not kept at all. */
  if (lines->len > max_bytes)
    return;
  fd = g_open (self->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    {
      g_warning ("cannot open transcript %s: %s", self->path,
                 g_strerror (errno));
      return;
    }
  while (done < lines->len)
    {
      ssize_t n = write (fd, lines->str + done, lines->len - done);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          g_warning ("cannot write transcript %s: %s", self->path,
                     g_strerror (errno));
          break;
        }
      done += (gsize)n;
    }
  close (fd);
  self->size = done == lines->len ? self->size + (gint64)done : -1;
}

void
ab_transcript_add_prompt (AbTranscript *self, guint64 turn, const char *content,
                          guint64 max_bytes)
{
  g_autoptr (GString) line = g_string_new (NULL);

  g_string_append_printf (line,
                          "{\"turn\":%" G_GUINT64_FORMAT ",\"prompt\":", turn);
  g_string_append (line, content);
  g_string_append (line, "}\n");
  append (self, line, max_bytes);
}

void
ab_transcript_add_updates (AbTranscript *self, guint64 turn,
                           const char *const *updates, guint64 max_bytes)
{
  g_autoptr (GString) lines = g_string_new (NULL);

  for (gsize i = 0; updates[i] != NULL; i++)
    {
      g_string_append_printf (
          lines, "{\"turn\":%" G_GUINT64_FORMAT ",\"update\":", turn);
      g_string_append (lines, updates[i]);
      g_string_append (lines, "}\n");
    }
  append (self, lines, max_bytes);
}

char *
ab_transcript_read (const char *store_dir, const char *thread, GError **error)
{
  g_autofree char *path = transcript_path (store_dir, thread);
  g_autoptr (GError) local_error = NULL;
  g_autofree char *data = NULL;
  gsize len = 0;

  if (!g_file_get_contents (path, &data, &len, &local_error))
    {
      if (g_error_matches (local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        return g_strdup ("");
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   _ ("cannot read the transcript of %s: %s"), thread,
                   local_error->message);
      return NULL;
    }
  if (len > AB_TRANSCRIPT_MAX_BYTES || memchr (data, '\0', len) != NULL
      || !g_utf8_validate (data, (gssize)len, NULL))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   _ ("the transcript of %s is unusable"), thread);
      return NULL;
    }
  return g_steal_pointer (&data);
}

void
ab_transcript_delete (const char *store_dir, const char *thread)
{
  g_autofree char *path = transcript_path (store_dir, thread);

  if (g_unlink (path) != 0 && errno != ENOENT)
    g_warning ("cannot remove transcript %s: %s", path, g_strerror (errno));
}
