/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentctl — command-line client for agentbroker
 *
 * systemctl-like: agentctl [--system|--user] [OPTIONS] VERB [ARGS...],
 * with systemctl's display options (--no-legend, -q, -p, --value, --full,
 * -o json|json-pretty) and exit statuses (4: no such session).  Every
 * error prints one line naming the problem and exits non-zero.
 *
 * This file: the options, before and after the verb, the verb table and
 * main ().  The verbs live in agentctl-*.c; agentctl.h is what they share.
 */
#include "config.h"

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gi18n.h>

#include "agentctl.h"
#include "error.h"

/* -p arguments kept, at most */
#define AB_MAX_PROPERTIES 64

int
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

void
print_json (AbCtl *ctl, JsonNode *node)
{
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autofree char *text = NULL;

  json_generator_set_pretty (generator, ctl->json_pretty);
  json_generator_set_root (generator, node);
  text = json_generator_to_data (generator, NULL);
  printf ("%s\n", text);
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
gboolean
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

int
fail_usage (AbCtl *ctl)
{
  g_autofree char *usage = verb_usage (ctl->verb);

  return fail (_ ("usage: agentctl %s; try 'agentctl %s --help'"), usage,
               ctl->verb->name);
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
  { "acp", "[--agent NAME]", "",
    N_ ("Be an ACP agent on standard input and output whose sessions live "
        "in the broker"),
    verb_acp },
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

  /* acp's standard output is its client's: every log line goes to
   * standard error (set before the bus connection starts a thread). */
  if (verb->func == verb_acp)
    g_log_writer_default_set_use_stderr (TRUE);
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
