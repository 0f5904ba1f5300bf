/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentctl — command-line client for agentbroker
 *
 * systemctl-like: agentctl [--system|--user] [OPTIONS] VERB [ARGS...],
 * with systemctl's display options (--no-legend, -q, -p, --value, --full,
 * -o json|json-pretty) and exit statuses (4: no such session).  Every
 * error prints one line naming the problem and exits non-zero.
 */
#include "config.h"

#include <errno.h>
#include <locale.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib/gi18n.h>
#include <json-glib/json-glib.h>

#include "ab-dbus.h"
#include "duration.h"
#include "error.h"
#include "names.h"
#include "session-list.h"

/* Prompt() returns as soon as the prompt is queued: never a long wait. */
#define AB_PROMPT_TIMEOUT_MSEC (60 * 1000)
#define AB_STDIN_MAX_BYTES (1024 * 1024)
#define AB_DRAIN_DEFAULT_SECONDS 30

/* Exit statuses besides EXIT_SUCCESS and EXIT_FAILURE. */
#define AB_EXIT_CANCELLED 3  /* prompt: cancelled, interrupted, timeout */
#define AB_EXIT_LIMIT 4      /* prompt: max_tokens, max_turn_requests, … */
#define AB_EXIT_NO_SESSION 4 /* other verbs: as systemctl's "no such unit" */
#define AB_EXIT_SIGINT 130   /* a second Ctrl+C */

/* -p arguments kept, at most */
#define AB_MAX_PROPERTIES 64

typedef struct _AbCtlVerb AbCtlVerb;

typedef struct
{
  GDBusConnection *connection;
  AbDBusBroker1 *broker;
  const AbCtlVerb *verb;
  gboolean system_bus;
  /* display options, before or after the verb */
  gboolean json;        /* -o json, -o json-pretty, --json */
  gboolean json_pretty; /* one object over several lines */
  gboolean no_legend;
  gboolean no_pager; /* accepted: agentctl has no pager */
  gboolean quiet;
  gboolean full;
  gboolean value;
  GPtrArray *properties; /* -p NAME, as given; NULL: all */
} AbCtl;

typedef int (*AbCtlVerbFunc) (AbCtl *ctl, int argc, char **argv);

struct _AbCtlVerb
{
  const char *name;
  const char *options; /* the verb's own, for the usage line */
  const char *args;
  const char *summary;
  AbCtlVerbFunc func;
  gboolean admin; /* for access.admins only */
};

static int fail (const char *format, ...) G_GNUC_PRINTF (1, 2);

static int
fail (const char *format, ...)
{
  va_list args;
  g_autofree char *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  fprintf (stderr, "agentctl: %s\n", message);
  return EXIT_FAILURE;
}

/* The verb being run, and whether it is one for admins only: what an
 * access refusal is explained with. */
static const char *running_verb = "";
static gboolean running_admin_verb;

static char *user_name (guint32 uid);

/* An access refusal as one line that says what the caller lacks and
 * which group grants it, in place of dbus-daemon's dump of its rules
 * ("Rejected send message, 2 matched rules; type=…").  The groups are
 * the defaults of access.users and access.admins. */
static int
fail_access (GError *error, gboolean from_bus)
{
  g_autofree char *user = user_name ((guint32)getuid ());

  if (running_admin_verb)
    return fail (_ ("permission denied: %s needs membership in the group "
                    "agentbroker-admin (access.admins); user %s lacks it"),
                 running_verb, user);
  if (from_bus)
    return fail (_ ("permission denied: %s needs membership in the group "
                    "agentbroker (access.users) or agentbroker-admin; user "
                    "%s is in neither"),
                 running_verb, user);
  /* The daemon's own check: its message names the session or the
   * access it wanted. */
  return fail (_ ("permission denied: %s — your own sessions need the group "
                  "agentbroker (access.users), other users' sessions the "
                  "group agentbroker-admin (access.admins)"),
               error->message);
}

/* A D-Bus error as one line: the daemon's message without the remote
 * error name that GDBus prepends.  "No such session" exits 4, as
 * systemctl's "no such unit". */
static int
fail_dbus (GError *error)
{
  gboolean no_session
      = g_error_matches (error, AB_ERROR, AB_ERROR_NO_SUCH_SESSION);
  gboolean bus_denied
      = g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_ACCESS_DENIED);

  g_dbus_error_strip_remote_error (error);
  if (bus_denied || g_error_matches (error, AB_ERROR, AB_ERROR_ACCESS_DENIED))
    return fail_access (error, bus_denied);
  fail ("%s", error->message);
  return no_session ? AB_EXIT_NO_SESSION : EXIT_FAILURE;
}

static void
print_json (AbCtl *ctl, JsonNode *node)
{
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autofree char *text = NULL;

  json_generator_set_pretty (generator, ctl->json_pretty);
  json_generator_set_root (generator, node);
  text = json_generator_to_data (generator, NULL);
  printf ("%s\n", text);
}

static char *
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

/* ---- connecting ------------------------------------------------------ */

static gboolean
connect_broker (AbCtl *ctl, GError **error)
{
  ctl->connection = g_bus_get_sync (
      ctl->system_bus ? G_BUS_TYPE_SYSTEM : G_BUS_TYPE_SESSION, NULL, error);
  if (ctl->connection == NULL)
    return FALSE;

  /* The timeout is long because reload and drain wait for the broker. */
  ctl->broker = ab_dbus_broker1_proxy_new_sync (
      ctl->connection, G_DBUS_PROXY_FLAGS_NONE, AB_BUS_NAME, AB_BUS_PATH, NULL,
      error);
  if (ctl->broker == NULL)
    return FALSE;
  g_dbus_proxy_set_default_timeout (G_DBUS_PROXY (ctl->broker), G_MAXINT);
  return TRUE;
}

/* ---- display options ------------------------------------------------- */

/* --json[=short|pretty|off] (a bare --json is pretty, as it always was) and
 * -o/--output=short|json|json-pretty, journalctl's spelling. */
static gboolean
set_output (AbCtl *ctl, const char *option, const char *mode, GError **error)
{
  gboolean is_json = g_str_has_prefix (option, "--json");

  if (mode == NULL && is_json)
    mode = "pretty";
  if (g_strcmp0 (mode, is_json ? "off" : "short") == 0)
    ctl->json = ctl->json_pretty = FALSE;
  else if (g_strcmp0 (mode, is_json ? "short" : "json") == 0)
    ctl->json = TRUE, ctl->json_pretty = FALSE;
  else if (g_strcmp0 (mode, is_json ? "pretty" : "json-pretty") == 0)
    ctl->json = ctl->json_pretty = TRUE;
  else
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _ ("%s: unknown output mode '%s'; use %s"), option, mode,
                   is_json ? "short, pretty, off" : "short, json, json-pretty");
      return FALSE;
    }
  return TRUE;
}

static gboolean
on_output_option (const char *option, const char *value, gpointer data,
                  GError **error)
{
  return set_output (data, option, value, error);
}

/* -p NAME, -p NAME1,NAME2, and -p given again: the names add up. */
static gboolean
on_property_option (const char *option, const char *value, gpointer data,
                    GError **error)
{
  AbCtl *ctl = data;
  g_auto (GStrv) names = g_strsplit (value, ",", -1);

  if (ctl->properties == NULL)
    ctl->properties = g_ptr_array_new_with_free_func (g_free);
  for (char **name = names; *name != NULL; name++)
    {
      if (**name == '\0')
        continue;
      if (ctl->properties->len >= AB_MAX_PROPERTIES)
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       _ ("%s: at most %d properties"), option,
                       AB_MAX_PROPERTIES);
          return FALSE;
        }
      g_ptr_array_add (ctl->properties, g_strdup (*name));
    }
  return TRUE;
}

/* The options whose value is the next argument. */
static const char *const options_with_value[]
    = { "-o",        "--output", "-p",       "--property", "--agent",
        "--timeout", "-s",       "--signal", NULL };

/* A bare --json as --json=pretty: GOption would take the next argument
 * (a verb, a thread) as the optional value.  Only options are looked at:
 * the scan ends at "--" and, with @strict_posix, at the first argument
 * that is neither an option nor an option's value, so that the words of
 * a prompt stay as they are. */
static void
expand_bare_json (int argc, char **argv, gboolean strict_posix)
{
  static char pretty[] = "--json=pretty";

  for (int i = 1; i < argc; i++)
    {
      if (g_str_equal (argv[i], "--"))
        break;
      if (g_str_equal (argv[i], "--json"))
        argv[i] = pretty;
      else if (g_strv_contains (options_with_value, argv[i]))
        i++;
      else if (strict_posix && argv[i][0] != '-')
        break;
    }
}

/* The options every verb takes, before or after the verb, with @entries
 * (a verb's own) beside them. */
static GOptionContext *
option_context_new (AbCtl *ctl, const char *parameter,
                    const GOptionEntry *entries)
{
  const GOptionEntry common[]
      = { { "json", 0, G_OPTION_FLAG_OPTIONAL_ARG, G_OPTION_ARG_CALLBACK,
            on_output_option,
            N_ ("Print JSON: short (one line), pretty (the default) or off"),
            N_ ("MODE") },
          { "output", 'o', 0, G_OPTION_ARG_CALLBACK, on_output_option,
            N_ ("Output mode: short, json or json-pretty"), N_ ("MODE") },
          { "no-legend", 0, 0, G_OPTION_ARG_NONE, &ctl->no_legend,
            N_ ("Print no column headers and no footer"), NULL },
          { "no-pager", 0, 0, G_OPTION_ARG_NONE, &ctl->no_pager,
            N_ ("Accepted for systemctl's sake; agentctl uses no pager"),
            NULL },
          { "quiet", 'q', 0, G_OPTION_ARG_NONE, &ctl->quiet,
            N_ ("Print no confirmations and no progress"), NULL },
          { "full", 'l', 0, G_OPTION_ARG_NONE, &ctl->full,
            N_ ("Do not cut list rows to the terminal's width"), NULL },
          { "property", 'p', 0, G_OPTION_ARG_CALLBACK, on_property_option,
            N_ ("show, status: print only this property (may be repeated)"),
            N_ ("NAME") },
          { "value", 0, 0, G_OPTION_ARG_NONE, &ctl->value,
            N_ ("show, status: print the values alone, without NAME="), NULL },
          { NULL } };
  GOptionContext *context = g_option_context_new (parameter);
  GOptionGroup *group = g_option_group_new ("agentctl", NULL, NULL, ctl, NULL);

  g_option_group_set_translation_domain (group, GETTEXT_PACKAGE);
  g_option_group_add_entries (group, common);
  if (entries != NULL)
    g_option_group_add_entries (group, entries);
  g_option_context_set_main_group (context, group);
  return context;
}

/* ---- verb options ---------------------------------------------------- */

/* Options after the verb: the verb's own, plus the display options so
 * that both "agentctl --json list" and "agentctl list --json" work.
 * @strict_posix stops at the first argument that is not an option, so
 * that words of a prompt that start with "-" stay text. */
static gboolean
parse_verb_options (AbCtl *ctl, const GOptionEntry *entries,
                    gboolean strict_posix, int *argc, char ***argv, int *status)
{
  const AbCtlVerb *verb = ctl->verb;
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *prgname = g_strdup_printf ("agentctl %s", verb->name);
  g_autofree char *owner = NULL;

  context = option_context_new (ctl, verb->args, entries);
  g_option_context_set_summary (context, _ (verb->summary));
  g_option_context_set_strict_posix (context, strict_posix);
  g_set_prgname (prgname);
  expand_bare_json (*argc, *argv, strict_posix);
  if (!g_option_context_parse (context, argc, argv, &error))
    {
      *status = fail ("%s", error->message);
      return FALSE;
    }
  if ((ctl->properties != NULL || ctl->value)
      && !g_str_equal (verb->name, "show")
      && !g_str_equal (verb->name, "status"))
    {
      *status = fail (_ ("-p/--property and --value are for show and status"));
      return FALSE;
    }

  /* GOption leaves the "--" that ends the options in place. */
  for (int i = 1; i < *argc; i++)
    {
      if (g_str_equal ((*argv)[i], "--"))
        {
          memmove (&(*argv)[i], &(*argv)[i + 1], (*argc - i) * sizeof (char *));
          (*argc)--;
          break;
        }
      if (strict_posix)
        break;
    }

  /* Connected only now, so that "agentctl VERB --help" needs no broker. */
  if (!connect_broker (ctl, &error))
    {
      *status
          = fail (_ ("cannot reach the %s broker: %s"),
                  ctl->system_bus ? _ ("system") : _ ("user"), error->message);
      return FALSE;
    }
  /* Is anybody there? A proxy without an owner has no properties. */
  owner = g_dbus_proxy_get_name_owner (G_DBUS_PROXY (ctl->broker));
  if (owner == NULL)
    {
      *status = fail (_ ("agentbroker is not running on the %s bus"),
                      ctl->system_bus ? _ ("system") : _ ("session"));
      return FALSE;
    }
  return TRUE;
}

/* "prompt [--agent NAME] THREAD TEXT…|-" */
static char *
verb_usage (const AbCtlVerb *verb)
{
  GString *usage = g_string_new (verb->name);

  if (*verb->options != '\0')
    g_string_append_printf (usage, " %s", verb->options);
  if (*verb->args != '\0')
    g_string_append_printf (usage, " %s", verb->args);
  return g_string_free (usage, FALSE);
}

static int
fail_usage (AbCtl *ctl)
{
  g_autofree char *usage = verb_usage (ctl->verb);

  return fail (_ ("usage: agentctl %s; try 'agentctl %s --help'"), usage,
               ctl->verb->name);
}

/* ---- session dictionaries ------------------------------------------ */

static const char *
dict_string (GVariant *dict, const char *key)
{
  const char *value;

  if (g_variant_lookup (dict, key, "&s", &value)
      || g_variant_lookup (dict, key, "&o", &value))
    return value;
  return "";
}

static guint64
dict_number (GVariant *dict, const char *key)
{
  guint64 t;
  guint32 u;

  if (g_variant_lookup (dict, key, "t", &t))
    return t;
  if (g_variant_lookup (dict, key, "u", &u))
    return u;
  return 0;
}

/* The user name of @uid, or the number when it has none. */
static char *
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
static char *
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

static char *
session_path (const char *thread)
{
  g_autofree char *escaped = g_dbus_escape_object_path (thread);

  return g_strconcat (AB_SESSION_PREFIX, escaped, NULL);
}

/* The thread of a session object: its path is the escaped thread id. */
static char *
thread_from_path (const char *path)
{
  if (g_str_has_prefix (path, AB_SESSION_PREFIX))
    {
      g_autofree guint8 *thread
          = g_dbus_unescape_object_path (path + strlen (AB_SESSION_PREFIX));

      if (thread != NULL && g_utf8_validate ((const char *)thread, -1, NULL))
        return (char *)g_steal_pointer (&thread);
    }
  return g_strdup (path);
}

/* ---- JSON helpers -------------------------------------------------- */

static void
print_json_line (JsonNode *node)
{
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autofree char *text = NULL;

  json_generator_set_root (generator, node);
  text = json_generator_to_data (generator, NULL);
  printf ("%s\n", text);
  fflush (stdout);
}

/* @text parsed, or as a JSON string when it is not JSON. */
static JsonNode *
json_from_text (const char *text)
{
  g_autoptr (JsonParser) parser = json_parser_new ();

  if (json_parser_load_from_data (parser, text, -1, NULL)
      && json_parser_get_root (parser) != NULL)
    return json_node_copy (json_parser_get_root (parser));
  return json_node_init_string (json_node_alloc (), text);
}

static const char *
member_string (JsonObject *object, const char *name)
{
  JsonNode *node;

  if (object == NULL)
    return NULL;
  node = json_object_get_member (object, name);
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (node);
}

static JsonObject *
member_object (JsonObject *object, const char *name)
{
  JsonNode *node;

  if (object == NULL)
    return NULL;
  node = json_object_get_member (object, name);
  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
    return NULL;
  return json_node_get_object (node);
}

static JsonArray *
member_array (JsonObject *object, const char *name)
{
  JsonNode *node;

  if (object == NULL)
    return NULL;
  node = json_object_get_member (object, name);
  if (node == NULL || !JSON_NODE_HOLDS_ARRAY (node))
    return NULL;
  return json_node_get_array (node);
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
  COLUMN_OWNER,
  COLUMN_CWD,
  N_COLUMNS
};

static const char *const list_headers[N_COLUMNS]
    = { N_ ("THREAD"), N_ ("AGENT"), N_ ("STATE"), N_ ("PID"),
        N_ ("IDLE"),   N_ ("TURNS"), N_ ("OWNER"), N_ ("CWD") };

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

/* ListSessions(), only the sessions in @states if not NULL. */
static gboolean
list_sessions (AbCtl *ctl, const char *const *states, GVariant **sessions,
               GError **error)
{
  g_auto (GVariantDict) options = G_VARIANT_DICT_INIT (NULL);

  if (states != NULL)
    g_variant_dict_insert_value (&options, "states",
                                 g_variant_new_strv (states, -1));
  return ab_dbus_broker1_call_list_sessions_sync (
      ctl->broker, g_variant_dict_end (&options), sessions, NULL, error);
}

static int
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

/* ---- show ---------------------------------------------------------- */

/* The order of ListSessions()'s documentation; unknown keys follow. */
static const char *const session_keys[]
    = { "thread", "agent",       "state",       "owner",         "cwd",
        "pid",    "acp_session", "created",     "last_activity", "turns",
        "queued", "last_turn",   "last_reason", "path",          NULL };

/* The broker's properties in the order of the interface XML. */
static const char *const broker_properties[]
    = { "State",        "Accepting",     "Generation", "Version",
        "SessionCount", "RunningCount",  "BusyCount",  "MaxSessions",
        "StartedAt",    "OpenFileLimit", NULL };

/* The keys of @dict: those of @order first, in that order, then the
 * others as they come. */
static GPtrArray *
ordered_keys (GVariant *dict, const char *const *order)
{
  GPtrArray *keys = g_ptr_array_new ();
  GVariantIter iter;
  const char *key;

  for (gsize i = 0; order[i] != NULL; i++)
    {
      g_autoptr (GVariant) value
          = g_variant_lookup_value (dict, order[i], NULL);

      if (value != NULL)
        g_ptr_array_add (keys, (gpointer)order[i]);
    }
  g_variant_iter_init (&iter, dict);
  while (g_variant_iter_next (&iter, "{&sv}", &key, NULL))
    if (!g_strv_contains (order, key))
      g_ptr_array_add (keys, (gpointer)key);
  return keys;
}

static char *
format_field (const char *key, GVariant *value)
{
  guint64 number = 0;
  gboolean is_number = FALSE;

  if (g_variant_is_of_type (value, G_VARIANT_TYPE_UINT64))
    number = g_variant_get_uint64 (value), is_number = TRUE;
  else if (g_variant_is_of_type (value, G_VARIANT_TYPE_UINT32))
    number = g_variant_get_uint32 (value), is_number = TRUE;

  if (is_number && g_str_equal (key, "owner"))
    {
      g_autofree char *name = user_name ((guint32)number);

      return g_strdup_printf ("%s (%" G_GUINT64_FORMAT ")", name, number);
    }
  if (is_number
      && (g_str_equal (key, "created") || g_str_equal (key, "last_activity")))
    {
      g_autofree char *time = format_time (number);
      g_autofree char *age = format_age (number);

      if (number == 0)
        return g_strdup ("-");
      /* TRANSLATORS: a date and how long ago it was, e.g. "5m" */
      return g_strdup_printf (_ ("%s (%s ago)"), time, age);
    }
  if (is_number && number == 0
      && (g_str_equal (key, "pid") || g_str_equal (key, "last_turn")))
    return g_strdup ("-");
  if (is_number)
    return g_strdup_printf ("%" G_GUINT64_FORMAT, number);
  if (g_variant_is_of_type (value, G_VARIANT_TYPE_STRING)
      || g_variant_is_of_type (value, G_VARIANT_TYPE_OBJECT_PATH))
    {
      const char *text = g_variant_get_string (value, NULL);

      return g_strdup (*text != '\0' ? text : "-");
    }
  return g_variant_print (value, FALSE);
}

/* The D-Bus property name of a ListSessions() key, as show prints it:
 * last_activity → LastActivity. */
static char *
property_name (const char *key)
{
  GString *name = g_string_new (NULL);
  gboolean upper = TRUE;

  for (const char *p = key; *p != '\0'; p++)
    {
      if (*p == '_')
        {
          upper = TRUE;
          continue;
        }
      g_string_append_c (name, upper ? g_ascii_toupper (*p) : *p);
      upper = FALSE;
    }
  return g_string_free (name, FALSE);
}

/* A value as show prints it, in systemctl's manner: numbers plain,
 * booleans yes/no, times as dates (empty when never). */
static char *
property_value (const char *name, GVariant *value)
{
  static const char *const times[]
      = { "Created", "LastActivity", "StartedAt", NULL };
  guint64 number;

  if (g_variant_is_of_type (value, G_VARIANT_TYPE_BOOLEAN))
    return g_strdup (g_variant_get_boolean (value) ? "yes" : "no");
  if (g_variant_is_of_type (value, G_VARIANT_TYPE_STRING)
      || g_variant_is_of_type (value, G_VARIANT_TYPE_OBJECT_PATH))
    return g_strdup (g_variant_get_string (value, NULL));
  if (g_variant_is_of_type (value, G_VARIANT_TYPE_UINT64))
    number = g_variant_get_uint64 (value);
  else if (g_variant_is_of_type (value, G_VARIANT_TYPE_UINT32))
    number = g_variant_get_uint32 (value);
  else
    return g_variant_print (value, FALSE);
  if (g_strv_contains (times, name))
    {
      g_autoptr (GDateTime) time = NULL;

      if (number == 0)
        return g_strdup ("");
      time
          = g_date_time_new_from_unix_local ((gint64)(number / G_USEC_PER_SEC));
      return time != NULL ? g_date_time_format (time, "%a %Y-%m-%d %H:%M:%S %Z")
                          : g_strdup ("");
    }
  return g_strdup_printf ("%" G_GUINT64_FORMAT, number);
}

/* Whether -p asked for @key (by its property name, in any case, or as
 * the dictionary spells it). */
static gboolean
property_wanted (AbCtl *ctl, const char *key, const char *name)
{
  if (ctl->properties == NULL)
    return TRUE;
  for (guint i = 0; i < ctl->properties->len; i++)
    {
      const char *asked = ctl->properties->pdata[i];

      if (g_ascii_strcasecmp (asked, name) == 0 || g_str_equal (asked, key))
        return TRUE;
    }
  return FALSE;
}

/* @dict as Name=Value lines (or values alone with --value, or a JSON
 * object with the dictionary's keys), those of -p only. */
static void
show_dict (AbCtl *ctl, GVariant *dict, const char *const *order)
{
  g_autoptr (GPtrArray) keys = ordered_keys (dict, order);
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;

  json_builder_begin_object (builder);
  for (guint i = 0; i < keys->len; i++)
    {
      const char *key = keys->pdata[i];
      g_autofree char *name = property_name (key);
      g_autoptr (GVariant) value = g_variant_lookup_value (dict, key, NULL);
      g_autofree char *text = NULL;

      if (!property_wanted (ctl, key, name))
        continue;
      if (ctl->json)
        {
          json_builder_set_member_name (builder, key);
          json_builder_add_value (builder, json_gvariant_serialize (value));
          continue;
        }
      text = property_value (name, value);
      if (ctl->value)
        printf ("%s\n", text);
      else
        printf ("%s=%s\n", name, text);
    }
  json_builder_end_object (builder);
  if (ctl->json)
    {
      root = json_builder_get_root (builder);
      print_json (ctl, root);
    }
}

/* The broker's properties as its proxy has them. */
static GVariant *
broker_dict (AbCtl *ctl)
{
  GDBusProxy *proxy = G_DBUS_PROXY (ctl->broker);
  g_auto (GStrv) names = g_dbus_proxy_get_cached_property_names (proxy);
  GVariantBuilder builder;

  g_variant_builder_init (&builder, G_VARIANT_TYPE_VARDICT);
  for (char **name = names; name != NULL && *name != NULL; name++)
    {
      g_autoptr (GVariant) value
          = g_dbus_proxy_get_cached_property (proxy, *name);

      if (value != NULL)
        g_variant_builder_add (&builder, "{sv}", *name, value);
    }
  return g_variant_ref_sink (g_variant_builder_end (&builder));
}

/* show [THREAD]: the properties of a session, or of the broker. */
static int
show_properties (AbCtl *ctl, const char *thread)
{
  g_autoptr (GVariant) dict = NULL;
  g_autoptr (GError) error = NULL;

  if (thread == NULL)
    {
      dict = broker_dict (ctl);
      show_dict (ctl, dict, broker_properties);
      return EXIT_SUCCESS;
    }
  if (!ab_dbus_broker1_call_get_session_sync (ctl->broker, thread, &dict, NULL,
                                              &error))
    return fail_dbus (error);
  show_dict (ctl, dict, session_keys);
  return EXIT_SUCCESS;
}

static int
verb_show (AbCtl *ctl, int argc, char **argv)
{
  int status;

  if (!parse_verb_options (ctl, NULL, FALSE, &argc, &argv, &status))
    return status;
  if (argc > 2)
    return fail_usage (ctl);
  return show_properties (ctl, argc == 2 ? argv[1] : NULL);
}

/* ---- status -------------------------------------------------------- */

/* status THREAD: every field of a session, for a reader. */
static int
session_status (AbCtl *ctl, const char *thread)
{
  g_autoptr (GVariant) session = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) keys = NULL;
  int width = 0;

  if (!ab_dbus_broker1_call_get_session_sync (ctl->broker, thread, &session,
                                              NULL, &error))
    return fail_dbus (error);

  if (ctl->json)
    {
      g_autoptr (JsonNode) root = json_gvariant_serialize (session);

      print_json (ctl, root);
      return EXIT_SUCCESS;
    }

  keys = ordered_keys (session, session_keys);
  for (guint i = 0; i < keys->len; i++)
    width = MAX (width, (int)strlen (keys->pdata[i]));
  for (guint i = 0; i < keys->len; i++)
    {
      g_autoptr (GVariant) value
          = g_variant_lookup_value (session, keys->pdata[i], NULL);
      g_autofree char *text = format_field (keys->pdata[i], value);

      printf ("%*s: %s\n", width, (const char *)keys->pdata[i], text);
    }
  return EXIT_SUCCESS;
}

static int
verb_status (AbCtl *ctl, int argc, char **argv)
{
  AbDBusBroker1 *b;
  g_autofree char *started = NULL;
  int status;

  if (!parse_verb_options (ctl, NULL, FALSE, &argc, &argv, &status))
    return status;
  if (argc > 2)
    return fail_usage (ctl);
  /* -p and --value make status a show, as in systemctl. */
  if (ctl->properties != NULL || ctl->value)
    return show_properties (ctl, argc == 2 ? argv[1] : NULL);
  if (argc == 2)
    return session_status (ctl, argv[1]);
  b = ctl->broker; /* connected by parse_verb_options () */

  if (ctl->json)
    {
      g_autoptr (JsonBuilder) builder = json_builder_new ();
      g_autoptr (JsonNode) root = NULL;

      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "state");
      json_builder_add_string_value (builder, ab_dbus_broker1_get_state (b));
      json_builder_set_member_name (builder, "accepting");
      json_builder_add_boolean_value (builder,
                                      ab_dbus_broker1_get_accepting (b));
      json_builder_set_member_name (builder, "generation");
      json_builder_add_int_value (builder, ab_dbus_broker1_get_generation (b));
      json_builder_set_member_name (builder, "version");
      json_builder_add_string_value (builder, ab_dbus_broker1_get_version (b));
      json_builder_set_member_name (builder, "sessions");
      json_builder_add_int_value (builder,
                                  ab_dbus_broker1_get_session_count (b));
      json_builder_set_member_name (builder, "running");
      json_builder_add_int_value (builder,
                                  ab_dbus_broker1_get_running_count (b));
      json_builder_set_member_name (builder, "busy");
      json_builder_add_int_value (builder, ab_dbus_broker1_get_busy_count (b));
      json_builder_set_member_name (builder, "max_sessions");
      json_builder_add_int_value (builder,
                                  ab_dbus_broker1_get_max_sessions (b));
      json_builder_set_member_name (builder, "started_at");
      json_builder_add_int_value (builder,
                                  (gint64)ab_dbus_broker1_get_started_at (b));
      json_builder_set_member_name (builder, "open_file_limit");
      json_builder_add_int_value (
          builder, (gint64)MIN (ab_dbus_broker1_get_open_file_limit (b),
                                (guint64)G_MAXINT64));
      json_builder_end_object (builder);
      root = json_builder_get_root (builder);
      print_json (ctl, root);
      return EXIT_SUCCESS;
    }

  started = format_time (ab_dbus_broker1_get_started_at (b));
  printf (_ ("agentbroker %s on the %s bus\n"), ab_dbus_broker1_get_version (b),
          ctl->system_bus ? _ ("system") : _ ("session"));
  printf (_ ("       State: %s (%s)\n"), ab_dbus_broker1_get_state (b),
          ab_dbus_broker1_get_accepting (b) ? _ ("accepting prompts")
                                            : _ ("not accepting prompts"));
  printf (_ ("  Generation: %u\n"), ab_dbus_broker1_get_generation (b));
  printf (_ ("    Sessions: %u (%u running, %u busy, at most %u running)\n"),
          ab_dbus_broker1_get_session_count (b),
          ab_dbus_broker1_get_running_count (b),
          ab_dbus_broker1_get_busy_count (b),
          ab_dbus_broker1_get_max_sessions (b));
  printf (_ ("     Started: %s\n"), started);
  if (ab_dbus_broker1_get_open_file_limit (b) == G_MAXUINT64)
    printf (_ ("  Open files: unlimited\n"));
  else
    {
      g_autofree char *limit = g_strdup_printf (
          "%" G_GUINT64_FORMAT, ab_dbus_broker1_get_open_file_limit (b));

      printf (_ ("  Open files: at most %s\n"), limit);
    }
  return EXIT_SUCCESS;
}

/* ---- reload -------------------------------------------------------- */

/* Asked afresh: the proxy's cache learns of the change only after the
 * method reply has arrived. */
static guint
fetch_generation (AbCtl *ctl)
{
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GVariant) value = NULL;

  reply = g_dbus_connection_call_sync (
      ctl->connection, AB_BUS_NAME, AB_BUS_PATH,
      "org.freedesktop.DBus.Properties", "Get",
      g_variant_new ("(ss)", AB_BROKER_IFACE, "Generation"),
      G_VARIANT_TYPE ("(v)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL, NULL);
  if (reply == NULL)
    return ab_dbus_broker1_get_generation (ctl->broker);
  g_variant_get (reply, "(v)", &value);
  return g_variant_get_uint32 (value);
}

/* Sessions whose agent a reload is still replacing; -1 on error. */
static int
count_switching (AbCtl *ctl, GError **error)
{
  g_autoptr (GVariant) sessions = NULL;
  g_autoptr (GPtrArray) dicts = NULL;
  int n = 0;

  if (!list_sessions (ctl, NULL, &sessions, error))
    return -1;
  dicts = ab_session_list_to_dicts (sessions);
  for (guint i = 0; i < dicts->len; i++)
    {
      gboolean switching = FALSE;

      g_variant_lookup (dicts->pdata[i], "switching", "b", &switching);
      n += switching;
    }
  return n;
}

static int
verb_reload (AbCtl *ctl, int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  gboolean wait = FALSE;
  const GOptionEntry entries[]
      = { { "wait", 0, 0, G_OPTION_ARG_NONE, &wait,
            N_ ("Also wait until every session of a changed agent profile "
                "runs on its new agent"),
            NULL },
          { NULL } };
  int status;

  if (!parse_verb_options (ctl, entries, FALSE, &argc, &argv, &status))
    return status;
  if (argc > 1)
    return fail (_ ("reload takes no arguments"));

  if (!ab_dbus_broker1_call_reload_sync (ctl->broker, NULL, &error))
    {
      if (g_error_matches (error, AB_ERROR, AB_ERROR_INVALID_CONFIG))
        {
          g_auto (GStrv) lines = NULL;

          g_dbus_error_strip_remote_error (error);
          fprintf (stderr, "agentctl: %s\n",
                   _ ("the configuration is invalid; nothing was changed:"));
          lines = g_strsplit (error->message, "\n", -1);
          for (char **line = lines; *line != NULL; line++)
            if (**line != '\0')
              fprintf (stderr, "%s\n", *line);
          return EXIT_FAILURE;
        }
      return fail_dbus (error);
    }

  if (!ctl->json && !ctl->quiet)
    printf (_ ("Reloaded; generation %u.\n"), fetch_generation (ctl));
  fflush (stdout);

  /* A session switches after its running turn; poll until none is left. */
  while (wait)
    {
      int switching = count_switching (ctl, &error);

      if (switching < 0)
        return fail_dbus (error);
      if (switching == 0)
        break;
      if (!ctl->json && !ctl->quiet)
        fprintf (stderr,
                 g_dngettext (GETTEXT_PACKAGE,
                              "reload: %d session still switching agents\n",
                              "reload: %d sessions still switching agents\n",
                              switching),
                 switching);
      g_usleep (G_USEC_PER_SEC / 2);
    }
  return EXIT_SUCCESS;
}

/* ---- streaming output ---------------------------------------------- */

/* Standard output while answers stream: message chunks arrive in pieces
 * and may end mid-line; every other event takes a line of its own on
 * @events: standard output for watch, standard error for prompt, whose
 * standard output is the answer alone.  Each line starts with @prefix
 * (empty for prompt, "<thread> <turn>: " for watch). */
typedef struct
{
  gboolean mid_line;
  char *prefix;       /* of the unfinished line */
  FILE *events;       /* NULL: stdout */
  GHashTable *titles; /* "<prefix>\n<toolCallId>" → the tool call's title */
} AbStream;

/* Tool calls remembered per stream: an agent naming ever new ids cannot
 * make agentctl grow without bound. */
#define AB_STREAM_MAX_TITLES 1024
/* Bytes of an agent's tool title shown */
#define AB_STREAM_MAX_TITLE 200

static void
stream_end_line (AbStream *stream)
{
  if (stream->mid_line)
    {
      putchar ('\n');
      stream->mid_line = FALSE;
    }
  fflush (stdout);
}

/* Before a line on @events: the unfinished answer line ends on the
 * terminal, but the answer on a redirected standard output stays as the
 * agent wrote it. */
static void
stream_break (AbStream *stream)
{
  if (stream->events == NULL || stream->events == stdout)
    {
      stream_end_line (stream);
      return;
    }
  fflush (stdout);
  if (stream->mid_line && isatty (STDOUT_FILENO))
    fputc ('\n', stream->events);
}

static void
stream_clear (AbStream *stream)
{
  g_clear_pointer (&stream->prefix, g_free);
  g_clear_pointer (&stream->titles, g_hash_table_unref);
}

static void
stream_text (AbStream *stream, const char *prefix, const char *text)
{
  if (stream->mid_line && g_strcmp0 (stream->prefix, prefix) != 0)
    stream_end_line (stream);

  while (*text != '\0')
    {
      const char *newline = strchr (text, '\n');
      gsize length = newline != NULL ? (gsize)(newline - text) : strlen (text);

      if (!stream->mid_line)
        {
          fputs (prefix, stdout);
          g_free (stream->prefix);
          stream->prefix = g_strdup (prefix);
          stream->mid_line = TRUE;
        }
      fwrite (text, 1, length, stdout);
      if (newline == NULL)
        break;
      putchar ('\n');
      stream->mid_line = FALSE;
      text = newline + 1;
    }
  fflush (stdout);
}

static void
stream_line (AbStream *stream, const char *prefix, const char *line)
{
  FILE *out = stream->events != NULL ? stream->events : stdout;

  stream_break (stream);
  fprintf (out, "%s%s\n", prefix, line);
  fflush (out);
}

/* The title an agent gave a tool call: remembered from its tool_call (or
 * a later tool_call_update that retitles it), since updates name the call
 * by its opaque id only.  Falls back to the id. */
static const char *
stream_tool_title (AbStream *stream, const char *prefix, JsonObject *update)
{
  const char *id = member_string (update, "toolCallId");
  const char *title = member_string (update, "title");
  g_autofree char *key = NULL;
  const char *known;

  if (id == NULL)
    return title != NULL ? title : "?";
  key = g_strdup_printf ("%s\n%s", prefix, id);
  if (title != NULL && *title != '\0')
    {
      if (stream->titles == NULL)
        stream->titles
            = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
      if (g_hash_table_size (stream->titles) >= AB_STREAM_MAX_TITLES)
        g_hash_table_remove_all (stream->titles);
      g_hash_table_replace (stream->titles, g_steal_pointer (&key),
                            g_utf8_make_valid (title, -1));
      return title;
    }
  known = stream->titles != NULL ? g_hash_table_lookup (stream->titles, key)
                                 : NULL;
  return known != NULL ? known : id;
}

/* @title cut to AB_STREAM_MAX_TITLE bytes at a character boundary, with
 * control characters (an agent's escape sequences) replaced. */
static char *
printable_title (const char *title)
{
  g_autofree char *valid = g_utf8_make_valid (title, -1);
  GString *out = g_string_new (NULL);

  for (const char *p = valid; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      if (out->len >= AB_STREAM_MAX_TITLE)
        {
          g_string_append (out, "…");
          break;
        }
      if (g_unichar_iscntrl (c))
        g_string_append_c (out, ' ');
      else
        g_string_append_unichar (out, c);
    }
  return g_string_free (out, FALSE);
}

/* One ACP SessionUpdate as text: message chunks verbatim, tool calls and
 * plans as one line each, everything else (thoughts, the user's own
 * message, command lists) left out. */
static void
stream_update (AbStream *stream, const char *prefix, const char *update_json)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autofree char *line = NULL;
  JsonNode *root;
  JsonObject *update;
  const char *kind;

  if (!json_parser_load_from_data (parser, update_json, -1, NULL))
    return;
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return;
  update = json_node_get_object (root);
  kind = member_string (update, "sessionUpdate");
  if (kind == NULL)
    return;

  if (g_str_equal (kind, "agent_message_chunk"))
    {
      JsonObject *content = member_object (update, "content");
      const char *text = member_string (content, "text");

      if (g_strcmp0 (member_string (content, "type"), "text") == 0
          && text != NULL)
        stream_text (stream, prefix, text);
    }
  else if (g_str_equal (kind, "tool_call")
           || g_str_equal (kind, "tool_call_update"))
    {
      g_autofree char *title
          = printable_title (stream_tool_title (stream, prefix, update));
      const char *status = member_string (update, "status");

      if (g_str_equal (kind, "tool_call"))
        line = g_strdup_printf ("[tool] %s (%s)", title,
                                status != NULL ? status : "pending");
      else if (status != NULL)
        line = g_strdup_printf ("[tool] %s (%s)", title, status);
    }
  else if (g_str_equal (kind, "plan"))
    {
      JsonArray *entries = member_array (update, "entries");
      guint n = entries != NULL ? json_array_get_length (entries) : 0;

      line = g_strdup_printf (
          ngettext ("[plan] %u entry", "[plan] %u entries", n), n);
    }

  if (line != NULL)
    stream_line (stream, prefix, line);
}

/* The title of a session/request_permission and its option ids. */
static void
describe_permission (const char *request_json, char **out_title,
                     char **out_options)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GString) options = g_string_new (NULL);
  JsonObject *params = NULL;
  JsonObject *tool_call;
  JsonArray *choices;
  const char *title;

  if (json_parser_load_from_data (parser, request_json, -1, NULL)
      && json_parser_get_root (parser) != NULL
      && JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    params = json_node_get_object (json_parser_get_root (parser));

  tool_call = member_object (params, "toolCall");
  title = member_string (tool_call, "title");
  if (title == NULL)
    title = member_string (tool_call, "toolCallId");
  *out_title = g_strdup (title != NULL ? title : _ ("(untitled)"));

  choices = member_array (params, "options");
  for (guint i = 0; choices != NULL && i < json_array_get_length (choices); i++)
    {
      JsonNode *choice = json_array_get_element (choices, i);
      const char *id
          = JSON_NODE_HOLDS_OBJECT (choice)
                ? member_string (json_node_get_object (choice), "optionId")
                : NULL;

      if (id == NULL)
        continue;
      if (options->len > 0)
        g_string_append (options, ", ");
      g_string_append (options, id);
    }
  *out_options = g_strdup (options->len > 0 ? options->str : _ ("none"));
}

/* ---- waiting for signals -------------------------------------------- */

/* What prompt and watch share: a main loop that also ends when the
 * broker leaves the bus. */
typedef struct
{
  AbCtl *ctl;
  GMainLoop *loop;
  GCancellable *cancellable;
  char *owner; /* the broker's unique name: signals come from it */
  AbStream stream;
  guint owner_subscription;
  gulong closed_handler;
  guint sigint_source;
  gboolean done;
  int status;
} AbWait;

static void
wait_finish (AbWait *wait, int status)
{
  if (wait->done)
    return;
  wait->done = TRUE;
  wait->status = status;
  g_main_loop_quit (wait->loop);
}

static void
wait_broker_gone (AbWait *wait)
{
  stream_end_line (&wait->stream);
  wait_finish (wait, fail (_ ("agentbroker left the bus")));
}

static void
wait_on_name_owner_changed (GDBusConnection *connection, const char *sender,
                            const char *path, const char *interface,
                            const char *member, GVariant *parameters,
                            gpointer user_data)
{
  AbWait *wait = user_data;
  const char *new_owner = NULL;

  if (!g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(sss)")))
    return;
  g_variant_get (parameters, "(&s&s&s)", NULL, NULL, &new_owner);
  if (*new_owner == '\0')
    wait_broker_gone (wait);
}

static void
wait_on_closed (GDBusConnection *connection, gboolean remote_peer_vanished,
                GError *error, gpointer user_data)
{
  wait_broker_gone (user_data);
}

static gboolean
wait_init (AbWait *wait, AbCtl *ctl)
{
  wait->ctl = ctl;
  wait->owner = g_dbus_proxy_get_name_owner (G_DBUS_PROXY (ctl->broker));
  if (wait->owner == NULL)
    return FALSE;
  wait->loop = g_main_loop_new (NULL, FALSE);
  wait->cancellable = g_cancellable_new ();

  /* The broker's unique name goes away when the daemon exits, even when a
   * restarted one takes over the well-known name. */
  wait->owner_subscription = g_dbus_connection_signal_subscribe (
      ctl->connection, "org.freedesktop.DBus", "org.freedesktop.DBus",
      "NameOwnerChanged", "/org/freedesktop/DBus", wait->owner,
      G_DBUS_SIGNAL_FLAGS_NONE, wait_on_name_owner_changed, wait, NULL);
  g_dbus_connection_set_exit_on_close (ctl->connection, FALSE);
  wait->closed_handler = g_signal_connect (ctl->connection, "closed",
                                           G_CALLBACK (wait_on_closed), wait);
  return TRUE;
}

static void
wait_clear (AbWait *wait)
{
  g_cancellable_cancel (wait->cancellable);
  if (wait->sigint_source != 0)
    g_source_remove (wait->sigint_source);
  if (wait->owner_subscription != 0)
    g_dbus_connection_signal_unsubscribe (wait->ctl->connection,
                                          wait->owner_subscription);
  g_clear_signal_handler (&wait->closed_handler, wait->ctl->connection);
  g_clear_object (&wait->cancellable);
  g_clear_pointer (&wait->loop, g_main_loop_unref);
  g_clear_pointer (&wait->owner, g_free);
  stream_clear (&wait->stream);
}

/* ---- prompt -------------------------------------------------------- */

typedef struct
{
  AbWait wait;
  const char *thread;
  guint64 turn;
  gboolean have_turn;
  gboolean cancel_sent;
  GPtrArray *early; /* (sv) signal name and parameters before the reply */
} AbPrompt;

/* The exit status of prompt for a turn's stop reason. */
static int
reason_exit_status (const char *reason)
{
  static const char *const cancelled[]
      = { "cancelled", "interrupted", "timeout", NULL };
  static const char *const limited[]
      = { "max_tokens", "max_turn_requests", "refusal", NULL };

  if (g_str_equal (reason, "end_turn"))
    return EXIT_SUCCESS;
  if (g_strv_contains (cancelled, reason))
    return AB_EXIT_CANCELLED;
  if (g_strv_contains (limited, reason))
    return AB_EXIT_LIMIT;
  return EXIT_FAILURE;
}

static void
prompt_turn_ended (AbPrompt *prompt, const char *reason, const char *message)
{
  if (prompt->wait.ctl->json)
    {
      g_autoptr (JsonBuilder) builder = json_builder_new ();
      g_autoptr (JsonNode) root = NULL;

      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "turn");
      json_builder_add_int_value (builder, (gint64)prompt->turn);
      json_builder_set_member_name (builder, "reason");
      json_builder_add_string_value (builder, reason);
      json_builder_set_member_name (builder, "message");
      json_builder_add_string_value (builder, message);
      json_builder_end_object (builder);
      root = json_builder_get_root (builder);
      print_json_line (root);
    }
  else
    stream_end_line (&prompt->wait.stream);

  if (!g_str_equal (reason, "end_turn"))
    {
      if (*message != '\0')
        fail (_ ("turn ended: %s: %s"), reason, message);
      else
        fail (_ ("turn ended: %s"), reason);
    }
  wait_finish (&prompt->wait, reason_exit_status (reason));
}

static void
prompt_permission (AbPrompt *prompt, const char *request,
                   const char *request_json)
{
  g_autofree char *title = NULL;
  g_autofree char *options = NULL;

  describe_permission (request_json, &title, &options);
  if (!prompt->wait.ctl->json)
    stream_break (&prompt->wait.stream);
  fail (_ ("the agent asks for permission (request %s): %s; options: %s — "
           "answer with: agentctl%s answer %s %s OPTION"),
        request, title, options, prompt->wait.ctl->system_bus ? "" : " --user",
        prompt->thread, request);
}

static void
prompt_handle (AbPrompt *prompt, const char *member, GVariant *parameters)
{
  guint64 turn;

  if (g_str_equal (member, "Update")
      && g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(tas)")))
    {
      g_autofree const char **updates = NULL;

      g_variant_get (parameters, "(t^a&s)", &turn, &updates);
      if (turn != prompt->turn)
        return;
      for (gsize i = 0; updates[i] != NULL; i++)
        if (prompt->wait.ctl->json)
          {
            g_autoptr (JsonNode) node = json_from_text (updates[i]);

            print_json_line (node);
          }
        else
          stream_update (&prompt->wait.stream, "", updates[i]);
    }
  else if (g_str_equal (member, "TurnEnded")
           && g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(tss)")))
    {
      const char *reason, *message;

      g_variant_get (parameters, "(t&s&s)", &turn, &reason, &message);
      if (turn == prompt->turn)
        prompt_turn_ended (prompt, reason, message);
    }
  else if (g_str_equal (member, "PermissionRequested")
           && g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(tss)")))
    {
      const char *request, *request_json;

      g_variant_get (parameters, "(t&s&s)", &turn, &request, &request_json);
      if (turn == prompt->turn)
        prompt_permission (prompt, request, request_json);
    }
}

static void
prompt_on_signal (GDBusConnection *connection, const char *sender,
                  const char *path, const char *interface, const char *member,
                  GVariant *parameters, gpointer user_data)
{
  AbPrompt *prompt = user_data;

  if (prompt->wait.done)
    return;
  /* Until the reply names our turn, keep everything: the broker sends
   * the reply first, but nothing here depends on it. */
  if (!prompt->have_turn)
    {
      g_ptr_array_add (prompt->early, g_variant_ref_sink (g_variant_new (
                                          "(sv)", member, parameters)));
      return;
    }
  prompt_handle (prompt, member, parameters);
}

static void
prompt_on_reply (GObject *source, GAsyncResult *result, gpointer user_data)
{
  AbPrompt *prompt = user_data;
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GError) error = NULL;

  reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result,
                                         &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  if (reply == NULL)
    {
      stream_break (&prompt->wait.stream);
      wait_finish (&prompt->wait, fail_dbus (error));
      return;
    }

  g_variant_get (reply, "(t)", &prompt->turn);
  prompt->have_turn = TRUE;
  for (guint i = 0; i < prompt->early->len && !prompt->wait.done; i++)
    {
      g_autoptr (GVariant) parameters = NULL;
      const char *member;

      g_variant_get (prompt->early->pdata[i], "(&sv)", &member, &parameters);
      prompt_handle (prompt, member, parameters);
    }
  g_ptr_array_set_size (prompt->early, 0);
}

static void
prompt_on_cancel_reply (GObject *source, GAsyncResult *result,
                        gpointer user_data)
{
  AbPrompt *prompt = user_data;
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GError) error = NULL;

  reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result,
                                         &error);
  if (reply == NULL
      && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      stream_break (&prompt->wait.stream);
      fail_dbus (error);
    }
}

/* The first Ctrl+C cancels the turn and waits for its end; the second
 * gives up waiting. */
static gboolean
prompt_on_sigint (gpointer user_data)
{
  AbPrompt *prompt = user_data;

  stream_break (&prompt->wait.stream);
  if (prompt->cancel_sent)
    {
      prompt->wait.sigint_source = 0;
      wait_finish (&prompt->wait, AB_EXIT_SIGINT);
      return G_SOURCE_REMOVE;
    }

  prompt->cancel_sent = TRUE;
  fail (_ ("cancelling the turn; press Ctrl+C again to stop waiting"));
  g_dbus_connection_call (
      prompt->wait.ctl->connection, prompt->wait.owner, AB_BUS_PATH,
      AB_BROKER_IFACE, "Cancel", g_variant_new ("(s)", prompt->thread), NULL,
      G_DBUS_CALL_FLAGS_NONE, AB_PROMPT_TIMEOUT_MSEC, prompt->wait.cancellable,
      prompt_on_cancel_reply, prompt);
  return G_SOURCE_CONTINUE;
}

/* Standard input as the prompt, at most AB_STDIN_MAX_BYTES. */
static char *
read_stdin (GError **error)
{
  g_autoptr (GString) text = g_string_new (NULL);
  char buffer[8192];
  size_t n;

  while ((n = fread (buffer, 1, sizeof buffer, stdin)) > 0)
    {
      if (text->len + n > AB_STDIN_MAX_BYTES)
        {
          g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                       _ ("the prompt on standard input is longer than "
                          "1 MiB"));
          return NULL;
        }
      g_string_append_len (text, buffer, (gssize)n);
    }
  if (ferror (stdin))
    {
      g_set_error (error, AB_ERROR, AB_ERROR_FAILED,
                   _ ("cannot read standard input: %s"), g_strerror (errno));
      return NULL;
    }
  if (!g_utf8_validate (text->str, (gssize)text->len, NULL))
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("the prompt on standard input is not valid UTF-8 "
                      "text"));
      return NULL;
    }
  return g_string_free (g_steal_pointer (&text), FALSE);
}

static int
verb_prompt (AbCtl *ctl, int argc, char **argv)
{
  g_autofree char *agent = NULL;
  const GOptionEntry entries[]
      = { { "agent", 0, 0, G_OPTION_ARG_STRING, &agent,
            N_ ("The agent profile of a new session"), N_ ("NAME") },
          { NULL } };
  g_autofree char *text = NULL;
  g_autofree char *path = NULL;
  GVariantBuilder options;
  AbPrompt prompt = { 0 };
  guint subscription;
  int status;

  if (!parse_verb_options (ctl, entries, TRUE, &argc, &argv, &status))
    return status;
  if (argc < 3)
    return fail_usage (ctl);

  if (argc == 3 && g_str_equal (argv[2], "-"))
    {
      g_autoptr (GError) error = NULL;

      text = read_stdin (&error);
      if (text == NULL)
        return fail ("%s", error->message);
    }
  else
    {
      GString *words = g_string_new (argv[2]);

      for (int i = 3; i < argc; i++)
        g_string_append_printf (words, " %s", argv[i]);
      text = g_string_free (words, FALSE);
    }
  if (*text == '\0')
    return fail (_ ("the prompt is empty"));

  if (!wait_init (&prompt.wait, ctl))
    return fail (_ ("agentbroker left the bus"));
  prompt.thread = argv[1];
  prompt.wait.stream.events = stderr;
  prompt.early
      = g_ptr_array_new_with_free_func ((GDestroyNotify)g_variant_unref);

  /* Subscribed before asking, so that no signal of the turn can be
   * missed. */
  path = session_path (prompt.thread);
  subscription = g_dbus_connection_signal_subscribe (
      ctl->connection, prompt.wait.owner, AB_SESSION_IFACE, NULL, path, NULL,
      G_DBUS_SIGNAL_FLAGS_NONE, prompt_on_signal, &prompt, NULL);
  prompt.wait.sigint_source
      = g_unix_signal_add (SIGINT, prompt_on_sigint, &prompt);

  g_variant_builder_init (&options, G_VARIANT_TYPE_VARDICT);
  if (agent != NULL)
    g_variant_builder_add (&options, "{sv}", "agent",
                           g_variant_new_string (agent));
  g_dbus_connection_call (
      ctl->connection, prompt.wait.owner, AB_BUS_PATH, AB_BROKER_IFACE,
      "Prompt", g_variant_new ("(ssa{sv})", prompt.thread, text, &options),
      G_VARIANT_TYPE ("(t)"), G_DBUS_CALL_FLAGS_NONE, AB_PROMPT_TIMEOUT_MSEC,
      prompt.wait.cancellable, prompt_on_reply, &prompt);

  g_main_loop_run (prompt.wait.loop);

  g_dbus_connection_signal_unsubscribe (ctl->connection, subscription);
  g_ptr_array_unref (prompt.early);
  status = prompt.wait.status;
  wait_clear (&prompt.wait);
  return status;
}

/* ---- watch --------------------------------------------------------- */

typedef struct
{
  AbWait wait;
  const char *thread; /* NULL: every session */
} AbWatch;

/* One event as a JSON line: thread, turn (unless negative), @key with
 * @value and @detail_key with @detail, each when given. */
static void
watch_print_event (const char *thread, gint64 turn, const char *key,
                   const char *value, const char *detail_key, JsonNode *detail)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "thread");
  json_builder_add_string_value (builder, thread);
  if (turn >= 0)
    {
      json_builder_set_member_name (builder, "turn");
      json_builder_add_int_value (builder, turn);
    }
  if (key != NULL)
    {
      json_builder_set_member_name (builder, key);
      json_builder_add_string_value (builder, value);
    }
  if (detail_key != NULL)
    {
      json_builder_set_member_name (builder, detail_key);
      json_builder_add_value (builder, json_node_copy (detail));
    }
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  print_json_line (root);
}

static void
watch_on_session_signal (GDBusConnection *connection, const char *sender,
                         const char *path, const char *interface,
                         const char *member, GVariant *parameters,
                         gpointer user_data)
{
  AbWatch *watch = user_data;
  gboolean json = watch->wait.ctl->json;
  AbStream *stream = &watch->wait.stream;
  g_autofree char *thread = thread_from_path (path);
  g_autofree char *prefix = NULL;
  g_autofree char *turn_text = NULL;
  guint64 turn;

  if (watch->wait.done
      || (watch->thread != NULL && !g_str_equal (thread, watch->thread)))
    return;
  if (!g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(tas)"))
      && !g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(tss)")))
    return;
  g_variant_get_child (parameters, 0, "t", &turn);
  turn_text = g_strdup_printf ("%" G_GUINT64_FORMAT, turn);
  prefix = g_strdup_printf ("%s %s: ", thread, turn_text);

  if (g_str_equal (member, "Update")
      && g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(tas)")))
    {
      g_autofree const char **updates = NULL;

      g_variant_get (parameters, "(t^a&s)", NULL, &updates);
      for (gsize i = 0; updates[i] != NULL; i++)
        if (json)
          {
            g_autoptr (JsonNode) node = json_from_text (updates[i]);

            watch_print_event (thread, (gint64)turn, NULL, NULL, "update",
                               node);
          }
        else
          stream_update (stream, prefix, updates[i]);
    }
  else if (g_str_equal (member, "TurnEnded")
           && g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(tss)")))
    {
      const char *reason, *message;
      g_autofree char *line = NULL;

      g_variant_get (parameters, "(t&s&s)", NULL, &reason, &message);
      if (json)
        {
          g_autoptr (JsonNode) node
              = json_node_init_string (json_node_alloc (), message);

          watch_print_event (thread, (gint64)turn, "reason", reason, "message",
                             node);
          return;
        }
      if (*message != '\0')
        line = g_strdup_printf (_ ("%s turn %s ended: %s: %s"), thread,
                                turn_text, reason, message);
      else
        line = g_strdup_printf (_ ("%s turn %s ended: %s"), thread, turn_text,
                                reason);
      stream_line (stream, "", line);
    }
  else if (g_str_equal (member, "PermissionRequested")
           && g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(tss)")))
    {
      const char *request, *request_json;
      g_autofree char *title = NULL;
      g_autofree char *options = NULL;
      g_autofree char *line = NULL;

      g_variant_get (parameters, "(t&s&s)", NULL, &request, &request_json);
      if (json)
        {
          g_autoptr (JsonNode) node = json_from_text (request_json);

          watch_print_event (thread, (gint64)turn, "request", request,
                             "permission", node);
          return;
        }
      describe_permission (request_json, &title, &options);
      line = g_strdup_printf (
          _ ("permission requested (request %s): %s; options: %s"), request,
          title, options);
      stream_line (stream, prefix, line);
    }
}

static void
watch_on_broker_signal (GDBusConnection *connection, const char *sender,
                        const char *path, const char *interface,
                        const char *member, GVariant *parameters,
                        gpointer user_data)
{
  AbWatch *watch = user_data;
  const char *thread, *detail;
  g_autofree char *line = NULL;

  if (watch->wait.done
      || (!g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(so)"))
          && !g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(ss)"))))
    return;
  g_variant_get_child (parameters, 0, "&s", &thread);
  g_variant_get_child (parameters, 1,
                       g_str_equal (member, "SessionAdded") ? "&o" : "&s",
                       &detail);
  if (watch->thread != NULL && !g_str_equal (thread, watch->thread))
    return;

  if (g_str_equal (member, "SessionAdded"))
    {
      if (watch->wait.ctl->json)
        watch_print_event (thread, -1, "session", "added", NULL, NULL);
      else
        line = g_strdup_printf (_ ("%s session added"), thread);
    }
  else if (g_str_equal (member, "SessionRemoved"))
    {
      if (watch->wait.ctl->json)
        {
          g_autoptr (JsonNode) node
              = json_node_init_string (json_node_alloc (), detail);

          watch_print_event (thread, -1, "session", "removed", "reason", node);
        }
      else
        line = g_strdup_printf (_ ("%s session removed: %s"), thread, detail);
    }
  if (line != NULL)
    stream_line (&watch->wait.stream, "", line);
}

static gboolean
watch_on_sigint (gpointer user_data)
{
  AbWatch *watch = user_data;

  stream_end_line (&watch->wait.stream);
  wait_finish (&watch->wait, EXIT_SUCCESS);
  return G_SOURCE_CONTINUE;
}

static int
verb_watch (AbCtl *ctl, int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  AbWatch watch = { 0 };
  guint session_subscription, broker_subscription;
  guint sigterm_source;
  int status;

  if (!parse_verb_options (ctl, NULL, FALSE, &argc, &argv, &status))
    return status;
  if (argc > 2)
    return fail_usage (ctl);

  if (!wait_init (&watch.wait, ctl))
    return fail (_ ("agentbroker left the bus"));
  watch.thread = argc == 2 ? argv[1] : NULL;

  /* The stream comes to watchers only, so every Session1 signal from
   * the broker is for us. */
  session_subscription = g_dbus_connection_signal_subscribe (
      ctl->connection, watch.wait.owner, AB_SESSION_IFACE, NULL, NULL, NULL,
      G_DBUS_SIGNAL_FLAGS_NONE, watch_on_session_signal, &watch, NULL);
  broker_subscription = g_dbus_connection_signal_subscribe (
      ctl->connection, watch.wait.owner, AB_BROKER_IFACE, NULL, AB_BUS_PATH,
      NULL, G_DBUS_SIGNAL_FLAGS_NONE, watch_on_broker_signal, &watch, NULL);
  watch.wait.sigint_source
      = g_unix_signal_add (SIGINT, watch_on_sigint, &watch);
  sigterm_source = g_unix_signal_add (SIGTERM, watch_on_sigint, &watch);

  if (!ab_dbus_broker1_call_watch_sync (
          ctl->broker, watch.thread != NULL ? watch.thread : "*", NULL, &error))
    status = fail_dbus (error);
  else
    {
      g_main_loop_run (watch.wait.loop);
      status = watch.wait.status;
    }

  g_source_remove (sigterm_source);
  g_dbus_connection_signal_unsubscribe (ctl->connection, session_subscription);
  g_dbus_connection_signal_unsubscribe (ctl->connection, broker_subscription);
  wait_clear (&watch.wait);
  return status;
}

/* ---- cancel, remove, kill, answer, resume ----------------------------------
 */

static int
verb_cancel (AbCtl *ctl, int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVariant) session = NULL;
  const char *state;
  gboolean idle;
  int status;

  if (!parse_verb_options (ctl, NULL, FALSE, &argc, &argv, &status))
    return status;
  if (argc != 2)
    return fail_usage (ctl);

  /* Cancel() says nothing of what it found; the session, asked first,
   * does.  A turn that starts in between is cancelled all the same. */
  if (!ab_dbus_broker1_call_get_session_sync (ctl->broker, argv[1], &session,
                                              NULL, &error))
    return fail_dbus (error);
  state = dict_string (session, "state");
  idle = !g_str_equal (state, "busy") && !g_str_equal (state, "starting")
         && dict_number (session, "queued") == 0;
  if (!ab_dbus_broker1_call_cancel_sync (ctl->broker, argv[1], NULL, &error))
    return fail_dbus (error);
  if (ctl->json || ctl->quiet)
    return EXIT_SUCCESS;
  if (idle)
    printf (_ ("Nothing to cancel: %s has no running turn and no queued "
               "prompt (it is %s).\n"),
            argv[1], state);
  else
    printf (_ ("Cancelled the turn and the queued prompts of %s.\n"), argv[1]);
  return EXIT_SUCCESS;
}

static int
verb_remove (AbCtl *ctl, int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  int status;

  if (!parse_verb_options (ctl, NULL, FALSE, &argc, &argv, &status))
    return status;
  if (argc != 2)
    return fail_usage (ctl);

  if (!ab_dbus_broker1_call_remove_session_sync (ctl->broker, argv[1], NULL,
                                                 &error))
    return fail_dbus (error);
  if (!ctl->json && !ctl->quiet)
    printf (_ ("Removed %s.\n"), argv[1]);
  return EXIT_SUCCESS;
}

/* As systemctl kill: a signal, silently; the session stays. */
static int
verb_kill (AbCtl *ctl, int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *signal_name = NULL;
  const GOptionEntry entries[]
      = { { "signal", 's', 0, G_OPTION_ARG_STRING, &signal_name,
            N_ ("The signal to send (default SIGTERM)"), N_ ("SIGNAL") },
          { NULL } };
  int status;

  if (!parse_verb_options (ctl, entries, FALSE, &argc, &argv, &status))
    return status;
  if (argc != 2)
    return fail_usage (ctl);

  if (!ab_dbus_broker1_call_kill_session_sync (
          ctl->broker, argv[1], signal_name != NULL ? signal_name : "SIGTERM",
          NULL, &error))
    return fail_dbus (error);
  return EXIT_SUCCESS;
}

static int
verb_answer (AbCtl *ctl, int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  int status;

  if (!parse_verb_options (ctl, NULL, FALSE, &argc, &argv, &status))
    return status;
  if (argc != 4)
    return fail_usage (ctl);

  if (!ab_dbus_broker1_call_answer_permission_sync (
          ctl->broker, argv[1], argv[2], argv[3], NULL, &error))
    return fail_dbus (error);
  if (!ctl->json && !ctl->quiet)
    {
      if (*argv[3] != '\0')
        printf (_ ("Answered request %s of %s with %s.\n"), argv[2], argv[1],
                argv[3]);
      else
        printf (_ ("Denied request %s of %s.\n"), argv[2], argv[1]);
    }
  return EXIT_SUCCESS;
}

static int
verb_resume (AbCtl *ctl, int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  int status;

  if (!parse_verb_options (ctl, NULL, FALSE, &argc, &argv, &status))
    return status;
  if (argc != 1)
    return fail (_ ("resume takes no arguments"));

  if (!ab_dbus_broker1_call_resume_sync (ctl->broker, NULL, &error))
    return fail_dbus (error);
  if (!ctl->json && !ctl->quiet)
    printf ("%s\n", _ ("Resumed; accepting prompts."));
  return EXIT_SUCCESS;
}

/* ---- drain --------------------------------------------------------- */

typedef struct
{
  AbCtl *ctl;
  GMainLoop *loop;
  GCancellable *cancellable;
  gboolean replied;
  gboolean asking; /* a BusyCount query is on its way */
  guint finished;
  guint interrupted;
  GError *error;
} AbDrain;

static void
drain_on_busy_count (GObject *source, GAsyncResult *result, gpointer user_data)
{
  AbDrain *drain = user_data;
  g_autoptr (GVariant) reply = NULL;
  g_autoptr (GVariant) value = NULL;
  guint busy;

  g_autoptr (GError) error = NULL;

  reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result,
                                         &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  drain->asking = FALSE;
  if (reply == NULL || drain->replied || drain->ctl->quiet)
    return;
  g_variant_get (reply, "(v)", &value);
  if (!g_variant_is_of_type (value, G_VARIANT_TYPE_UINT32))
    return;
  busy = g_variant_get_uint32 (value);
  fprintf (stderr,
           ngettext ("draining: %u turn still running\n",
                     "draining: %u turns still running\n", busy),
           busy);
}

/* Asked afresh each second: the proxy's cache is updated only between
 * dispatches, and the drain is what we wait for. */
static gboolean
drain_on_tick (gpointer user_data)
{
  AbDrain *drain = user_data;

  if (!drain->asking)
    {
      drain->asking = TRUE;
      g_dbus_connection_call (
          drain->ctl->connection, AB_BUS_NAME, AB_BUS_PATH,
          "org.freedesktop.DBus.Properties", "Get",
          g_variant_new ("(ss)", AB_BROKER_IFACE, "BusyCount"),
          G_VARIANT_TYPE ("(v)"), G_DBUS_CALL_FLAGS_NONE, -1,
          drain->cancellable, drain_on_busy_count, drain);
    }
  return G_SOURCE_CONTINUE;
}

static void
drain_on_reply (GObject *source, GAsyncResult *result, gpointer user_data)
{
  AbDrain *drain = user_data;

  drain->replied = TRUE;
  ab_dbus_broker1_call_drain_finish (AB_DBUS_BROKER1 (source), &drain->finished,
                                     &drain->interrupted, result,
                                     &drain->error);
  g_main_loop_quit (drain->loop);
}

static int
verb_drain (AbCtl *ctl, int argc, char **argv)
{
  g_autofree char *timeout_text = NULL;
  const GOptionEntry entries[]
      = { { "timeout", 0, 0, G_OPTION_ARG_STRING, &timeout_text,
            N_ ("How long running turns may take (default 30s)"),
            N_ ("DURATION") },
          { NULL } };
  gint64 timeout_usec = AB_DRAIN_DEFAULT_SECONDS * G_USEC_PER_SEC;
  gint64 timeout_seconds;
  AbDrain drain = { 0 };
  guint tick;
  int status;

  if (!parse_verb_options (ctl, entries, FALSE, &argc, &argv, &status))
    return status;
  if (argc != 1)
    return fail_usage (ctl);
  if (timeout_text != NULL)
    {
      g_autoptr (GError) error = NULL;

      if (!ab_parse_duration (timeout_text, &timeout_usec, &error))
        return fail ("--timeout: %s", error->message);
    }
  /* Whole seconds, rounded up: a deadline is never shortened. */
  timeout_seconds = (timeout_usec + G_USEC_PER_SEC - 1) / G_USEC_PER_SEC;
  if (timeout_seconds > G_MAXUINT32)
    return fail (_ ("--timeout: %s is too long"), timeout_text);

  drain.ctl = ctl;
  drain.loop = g_main_loop_new (NULL, FALSE);
  drain.cancellable = g_cancellable_new ();
  ab_dbus_broker1_call_drain (ctl->broker, (guint)timeout_seconds, NULL,
                              drain_on_reply, &drain);
  tick = g_timeout_add (1000, drain_on_tick, &drain);
  g_main_loop_run (drain.loop);
  g_source_remove (tick);
  g_cancellable_cancel (drain.cancellable);
  g_clear_object (&drain.cancellable);
  g_clear_pointer (&drain.loop, g_main_loop_unref);

  if (drain.error != NULL)
    {
      status = fail_dbus (drain.error);
      g_clear_error (&drain.error);
      return status;
    }

  if (ctl->json)
    {
      g_autoptr (JsonBuilder) builder = json_builder_new ();
      g_autoptr (JsonNode) root = NULL;

      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "finished");
      json_builder_add_int_value (builder, drain.finished);
      json_builder_set_member_name (builder, "interrupted");
      json_builder_add_int_value (builder, drain.interrupted);
      json_builder_end_object (builder);
      root = json_builder_get_root (builder);
      print_json (ctl, root);
    }
  else if (!ctl->quiet)
    printf (_ ("Drained: %u finished, %u interrupted.\n"), drain.finished,
            drain.interrupted);
  return EXIT_SUCCESS;
}

static const AbCtlVerb verbs[] = {
  { "status", "", "[THREAD]",
    N_ ("Show the broker's state, or a session's, for a reader"), verb_status },
  { "list", "", "", N_ ("List the sessions"), verb_list },
  { "show", "[-p NAME] [--value]", "[THREAD]",
    N_ ("Show the properties of a session or of the broker as NAME=VALUE"),
    verb_show },
  { "prompt", "[--agent NAME]", "THREAD TEXT…|-",
    N_ ("Prompt a session and stream the answer"), verb_prompt },
  { "watch", "", "[THREAD]", N_ ("Follow the answers of one session or of all"),
    verb_watch },
  { "cancel", "", "THREAD",
    N_ ("Cancel the running turn and the queued prompts"), verb_cancel },
  { "remove", "", "THREAD",
    N_ ("Stop a session's agent and remove the session"), verb_remove },
  { "kill", "[-s SIGNAL]", "THREAD",
    N_ ("Send a signal to a session's agent processes; keep the session"),
    verb_kill },
  { "answer", "", "THREAD REQUEST OPTION",
    N_ ("Answer an agent's permission request (\"\" denies)"), verb_answer },
  { "drain", "[--timeout DURATION]", "",
    N_ ("Stop accepting prompts; wait for running turns"), verb_drain, TRUE },
  { "resume", "", "", N_ ("Accept prompts again after a drain"), verb_resume,
    TRUE },
  { "reload", "[--wait]", "",
    N_ ("Re-read the configuration and wait for the result"), verb_reload,
    TRUE },
};

static const AbCtlVerb *
find_verb (const char *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS (verbs); i++)
    if (g_str_equal (verbs[i].name, name))
      return &verbs[i];
  return NULL;
}

/* Whether the verb's arguments (after main's options) name a thread:
 * "watch" alone watches every session, which only admins may. */
static gboolean
verb_has_thread (int argc, char **argv)
{
  for (int i = 2; i < argc; i++)
    {
      if (g_strv_contains (options_with_value, argv[i]))
        i++;
      else if (argv[i][0] != '-')
        return TRUE;
    }
  return FALSE;
}

static char *
verbs_help (void)
{
  GString *help = g_string_new (_ ("Verbs:\n"));

  for (gsize i = 0; i < G_N_ELEMENTS (verbs); i++)
    {
      g_autofree char *usage = verb_usage (&verbs[i]);
      glong length = g_utf8_strlen (usage, -1);

      g_string_append_printf (help, "  %s", usage);
      if (length > 28)
        g_string_append_printf (help, "\n  %28s", "");
      else
        g_string_append_printf (help, "%*s", (int)(28 - length), "");
      g_string_append_printf (help, " %s\n", _ (verbs[i].summary));
    }
  return g_string_free (help, FALSE);
}

int
main (int argc, char **argv)
{
  gboolean opt_system = FALSE, opt_user = FALSE;
  gboolean opt_version = FALSE;
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *help = NULL;
  const AbCtlVerb *verb;
  AbCtl ctl = { 0 };
  int status;
  const GOptionEntry entries[]
      = { { "system", 0, 0, G_OPTION_ARG_NONE, &opt_system,
            N_ ("Talk to the system broker (default)"), NULL },
          { "user", 0, 0, G_OPTION_ARG_NONE, &opt_user,
            N_ ("Talk to the broker of the calling user"), NULL },
          { "version", 0, 0, G_OPTION_ARG_NONE, &opt_version,
            N_ ("Print the version and exit"), NULL },
          { NULL } };

  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);
  /* Map org.agentbroker.Error.* replies back to AB_ERROR codes. */
  (void)ab_error_quark ();

  context = option_context_new (&ctl, _ ("VERB [ARGUMENTS…]"), entries);
  g_option_context_set_summary (
      context, _ ("Control agentbroker, the AI coding-agent session broker."));
  help = verbs_help ();
  g_option_context_set_description (context, help);
  /* Options after the verb belong to the verb. */
  g_option_context_set_strict_posix (context, TRUE);
  expand_bare_json (argc, argv, TRUE);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    return fail ("%s", error->message);

  if (opt_version)
    {
      printf ("agentctl %s\n", PACKAGE_VERSION);
      return EXIT_SUCCESS;
    }
  if (opt_system && opt_user)
    return fail (_ ("--system and --user exclude each other"));
  if (argc < 2)
    return fail (_ ("no verb given; try 'agentctl --help'"));

  /* D-Bus carries only UTF-8; say so before GVariant would. */
  for (int i = 1; i < argc; i++)
    if (!g_utf8_validate (argv[i], -1, NULL))
      return fail (_ ("argument %d is not valid UTF-8 text"), i);

  verb = find_verb (argv[1]);
  if (verb == NULL)
    return fail (_ ("unknown verb '%s'; try 'agentctl --help'"), argv[1]);

  ctl.verb = verb;
  ctl.system_bus = !opt_user;
  running_verb = verb->name;
  running_admin_verb
      = verb->admin
        || (g_str_equal (verb->name, "watch") && !verb_has_thread (argc, argv));
  status = verb->func (&ctl, argc - 1, argv + 1);

  g_clear_pointer (&ctl.properties, g_ptr_array_unref);
  g_clear_object (&ctl.broker);
  g_clear_object (&ctl.connection);
  return status;
}
