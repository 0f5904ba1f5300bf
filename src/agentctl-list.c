/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentctl — list: the sessions as a table cut to the terminal's width,
 * the state in colour, a footer; and the users and times that list and
 * status print
 */
#include "config.h"

#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <glib/gi18n.h>

#include "agentctl.h"
#include "session-list.h"

/* ---- users and times ----------------------------------------------- */

/* The user name of @uid, or the number when it has none. */
char *
user_name (guint32 uid)
{
  gsize size = 1024;

  for (;;)
    {
      struct passwd entry, *result = NULL;
      g_autofree char *buffer = g_malloc (size);
      int r = getpwuid_r ((uid_t)uid, &entry, buffer, size, &result);

      if (r == 0 && result != NULL)
        return g_strdup (entry.pw_name);
      if (r != ERANGE || size >= 1024 * 1024)
        return g_strdup_printf ("%u", uid);
      size *= 2;
    }
}

/* How long ago @usec (since the epoch) was: "5s", "3m", "2h", "4d". */
char *
format_age (guint64 usec)
{
  gint64 now = g_get_real_time ();
  gint64 seconds;

  if (usec == 0)
    return g_strdup ("-");
  seconds = (gint64)usec < now ? (now - (gint64)usec) / G_USEC_PER_SEC : 0;
  if (seconds < 60)
    return g_strdup_printf ("%" G_GINT64_FORMAT "s", seconds);
  if (seconds < 60 * 60)
    return g_strdup_printf ("%" G_GINT64_FORMAT "m", seconds / 60);
  if (seconds < 24 * 60 * 60)
    return g_strdup_printf ("%" G_GINT64_FORMAT "h", seconds / (60 * 60));
  return g_strdup_printf ("%" G_GINT64_FORMAT "d", seconds / (24 * 60 * 60));
}
char *
format_time (guint64 usec)
{
  g_autoptr (GDateTime) time = NULL;

  if (usec == 0)
    return g_strdup ("-");
  time = g_date_time_new_from_unix_local ((gint64)(usec / G_USEC_PER_SEC));
  if (time == NULL)
    return g_strdup ("-");
  return g_date_time_format (time, "%Y-%m-%d %H:%M:%S");
}

char *
format_bytes (guint64 bytes)
{
  static const char suffixes[] = "KMGTPE";
  double value = (double)bytes;
  gsize i;

  if (bytes == G_MAXUINT64)
    return g_strdup ("-");
  if (bytes < 1024)
    return g_strdup_printf ("%" G_GUINT64_FORMAT "B", bytes);
  for (i = 0; value >= 1024 * 1024 && i + 1 < strlen (suffixes); i++)
    value /= 1024;
  return g_strdup_printf ("%.1f%c", value / 1024, suffixes[i]);
}

char *
format_cpu (guint64 nsec)
{
  guint64 seconds;

  if (nsec == G_MAXUINT64)
    return g_strdup ("-");
  seconds = nsec / 1000000000;
  if (seconds < 60)
    return g_strdup_printf ("%.1fs", (double)nsec / 1e9);
  if (seconds < 60 * 60)
    return g_strdup_printf ("%" G_GUINT64_FORMAT "min %" G_GUINT64_FORMAT "s",
                            seconds / 60, seconds % 60);
  return g_strdup_printf ("%" G_GUINT64_FORMAT "h %" G_GUINT64_FORMAT "min",
                          seconds / 3600, seconds / 60 % 60);
}

/* ---- terminal ------------------------------------------------------ */

/* Colour as systemd decides it: SYSTEMD_COLORS, when set, says yes or
 * no outright; otherwise NO_COLOR or TERM=dumb says no, and a terminal
 * on standard output yes. */
static gboolean
use_colour (void)
{
  static const char *const off[] = { "0", "no", "n", "false", "off", NULL };
  const char *setting = g_getenv ("SYSTEMD_COLORS");
  const char *no_colour = g_getenv ("NO_COLOR");

  if (setting != NULL && *setting != '\0')
    return !g_strv_contains (off, setting);
  if (no_colour != NULL && *no_colour != '\0')
    return FALSE;
  if (g_strcmp0 (g_getenv ("TERM"), "dumb") == 0)
    return FALSE;
  return isatty (STDOUT_FILENO);
}

/* The width of the terminal: COLUMNS when set, as systemd honours it. */
static gsize
terminal_columns (void)
{
  const char *env = g_getenv ("COLUMNS");
  struct winsize size;
  guint64 n;

  if (env != NULL && g_ascii_string_to_unsigned (env, 10, 1, 10000, &n, NULL))
    return (gsize)n;
  if (ioctl (STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0)
    return size.ws_col;
  return 80;
}

/* @text in at most @width characters, cut with "…". */
static char *
ellipsize (const char *text, gsize width)
{
  g_autofree char *head = NULL;

  if ((gsize)g_utf8_strlen (text, -1) <= width)
    return g_strdup (text);
  if (width == 0)
    return g_strdup ("");
  head = g_utf8_substring (text, 0, (glong)width - 1);
  return g_strconcat (head, "…", NULL);
}

/* ---- list ---------------------------------------------------------- */

enum
{
  COLUMN_THREAD,
  COLUMN_AGENT,
  COLUMN_STATE,
  COLUMN_PID,
  COLUMN_IDLE,
  COLUMN_TURNS,
  COLUMN_MEMORY,
  COLUMN_CPU,
  COLUMN_OWNER,
  COLUMN_CWD,
  N_COLUMNS
};

static const char *const list_headers[N_COLUMNS]
    = { N_ ("THREAD"), N_ ("AGENT"), N_ ("STATE"), N_ ("PID"),   N_ ("IDLE"),
        N_ ("TURNS"),  N_ ("MEM"),   N_ ("CPU"),   N_ ("OWNER"), N_ ("CWD") };

#define AB_COLUMN_GAP 2

static int
compare_sessions (gconstpointer a, gconstpointer b)
{
  GVariant *const *x = a;
  GVariant *const *y = b;

  return strcmp (dict_string (*x, "thread"), dict_string (*y, "thread"));
}

/* Narrows the free-text columns, the working directory first, until a
 * row fits in @columns; the short ones (state, pid, idle, turns) keep
 * their width. */
static void
fit_widths (gsize *widths, gsize columns)
{
  static const struct
  {
    int column;
    gsize min;
  } shrinkable[] = { { COLUMN_CWD, 8 },
                     { COLUMN_THREAD, 16 },
                     { COLUMN_AGENT, 8 },
                     { COLUMN_OWNER, 8 } };
  gsize total = 0;

  for (gsize c = 0; c < N_COLUMNS; c++)
    total += widths[c] + (c + 1 < N_COLUMNS ? AB_COLUMN_GAP : 0);
  for (gsize i = 0; i < G_N_ELEMENTS (shrinkable) && total > columns; i++)
    {
      gsize *width = &widths[shrinkable[i].column];
      gsize spare = *width > shrinkable[i].min ? *width - shrinkable[i].min : 0;
      gsize cut = MIN (total - columns, spare);

      *width -= cut;
      total -= cut;
    }
}

static const char *
state_colour (const char *state)
{
  if (g_str_equal (state, "failed"))
    return "\033[0;1;31m";
  if (g_str_equal (state, "busy"))
    return "\033[0;1;32m";
  if (g_str_equal (state, "starting"))
    return "\033[0;1;33m";
  return NULL;
}

/* One row, at most @max characters wide; the state in colour when
 * @colour. */
static void
print_row (const char *const *cells, const gsize *widths, gsize max,
           gboolean colour)
{
  g_autoptr (GString) line = g_string_new (NULL);
  gsize used = 0;

  for (gsize c = 0; c < N_COLUMNS && used < max; c++)
    {
      g_autofree char *cell = ellipsize (cells[c], MIN (widths[c], max - used));
      gsize length = g_utf8_strlen (cell, -1);
      const char *on
          = colour && c == COLUMN_STATE ? state_colour (cells[c]) : NULL;

      if (on != NULL)
        g_string_append (line, on);
      g_string_append (line, cell);
      if (on != NULL)
        g_string_append (line, "\033[0m");
      used += length;
      if (c + 1 == N_COLUMNS)
        break;
      for (; length < widths[c] + AB_COLUMN_GAP && used < max; length++)
        {
          g_string_append_c (line, ' ');
          used++;
        }
    }
  /* No trailing blanks where the cut fell in a gap. */
  while (line->len > 0 && line->str[line->len - 1] == ' ')
    g_string_truncate (line, line->len - 1);
  printf ("%s\n", line->str);
}

/* What list shows without --all: the sessions that have a process. */
static const char *const running_states[]
    = { "starting", "idle", "busy", NULL };

int
verb_list (AbCtl *ctl, int argc, char **argv)
{
  g_autoptr (GVariant) sessions = NULL;
  g_autoptr (GPtrArray) dicts = NULL;
  g_autoptr (GPtrArray) rows = NULL;
  g_autoptr (GError) error = NULL;
  const char *headers[N_COLUMNS];
  gsize widths[N_COLUMNS];
  gsize max = G_MAXSIZE;
  gboolean colour;
  gboolean all = FALSE;
  const GOptionEntry entries[]
      = { { "all", 'a', 0, G_OPTION_ARG_NONE, &all,
            N_ ("Also list suspended and failed sessions"), NULL },
          { NULL } };
  int status;

  if (!parse_verb_options (ctl, entries, FALSE, &argc, &argv, &status))
    return status;
  if (argc > 1)
    return fail (_ ("list takes no arguments"));

  if (!list_sessions (ctl, all ? NULL : running_states, &sessions, &error))
    return fail_dbus (error);
  dicts = ab_session_list_to_dicts (sessions);
  g_ptr_array_sort (dicts, compare_sessions);

  if (ctl->json)
    {
      g_autoptr (JsonBuilder) builder = json_builder_new ();
      g_autoptr (JsonNode) root = NULL;

      json_builder_begin_array (builder);
      for (guint i = 0; i < dicts->len; i++)
        json_builder_add_value (builder,
                                json_gvariant_serialize (dicts->pdata[i]));
      json_builder_end_array (builder);
      root = json_builder_get_root (builder);
      print_json (ctl, root);
      return EXIT_SUCCESS;
    }

  if (dicts->len == 0)
    {
      if (!ctl->no_legend)
        printf ("%s\n", all ? _ ("No sessions.")
                            : _ ("No running sessions; --all lists "
                                 "suspended and failed ones too."));
      return EXIT_SUCCESS;
    }

  for (gsize c = 0; c < N_COLUMNS; c++)
    {
      headers[c] = _ (list_headers[c]);
      widths[c] = ctl->no_legend ? 0 : g_utf8_strlen (headers[c], -1);
    }

  rows = g_ptr_array_new_with_free_func ((GDestroyNotify)g_strfreev);
  for (guint i = 0; i < dicts->len; i++)
    {
      GVariant *session = dicts->pdata[i];
      guint64 pid = dict_number (session, "pid");
      char **row = g_new0 (char *, N_COLUMNS + 1);

      row[COLUMN_THREAD] = g_strdup (dict_string (session, "thread"));
      row[COLUMN_AGENT] = g_strdup (dict_string (session, "agent"));
      row[COLUMN_STATE] = g_strdup (dict_string (session, "state"));
      row[COLUMN_PID] = pid == 0 ? g_strdup ("-")
                                 : g_strdup_printf ("%" G_GUINT64_FORMAT, pid);
      row[COLUMN_IDLE] = format_age (dict_number (session, "last_activity"));
      row[COLUMN_TURNS] = g_strdup_printf ("%" G_GUINT64_FORMAT,
                                           dict_number (session, "turns"));
      row[COLUMN_MEMORY] = format_bytes (dict_number (session, "memory"));
      row[COLUMN_CPU] = format_cpu (dict_number (session, "cpu_nsec"));
      row[COLUMN_OWNER] = user_name ((guint32)dict_number (session, "owner"));
      row[COLUMN_CWD] = g_strdup (dict_string (session, "cwd"));
      for (gsize c = 0; c < N_COLUMNS; c++)
        widths[c] = MAX (widths[c], (gsize)g_utf8_strlen (row[c], -1));
      g_ptr_array_add (rows, row);
    }

  /* As systemctl: cut to a terminal's width unless --full; a pipe gets
   * whole rows. */
  if (!ctl->full && isatty (STDOUT_FILENO))
    {
      max = terminal_columns ();
      fit_widths (widths, max);
    }
  colour = use_colour ();

  if (!ctl->no_legend)
    print_row (headers, widths, max, FALSE);
  for (guint i = 0; i < rows->len; i++)
    print_row ((const char *const *)rows->pdata[i], widths, max, colour);
  if (!ctl->no_legend)
    printf (ngettext ("\n%u session listed.\n", "\n%u sessions listed.\n",
                      rows->len),
            rows->len);
  return EXIT_SUCCESS;
}
