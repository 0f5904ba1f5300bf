/* agentctl — command-line client for agentbroker
 *
 * systemctl-like: agentctl [--system|--user] [--json] VERB [ARGS...].
 * Every error prints one line naming the problem and exits non-zero.
 */
#include "config.h"

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gi18n.h>
#include <json-glib/json-glib.h>

#include "ab-dbus.h"
#include "error.h"

#define AB_BUS_NAME "org.agentbroker.Broker1"
#define AB_BUS_PATH "/org/agentbroker/Broker1"

typedef struct
{
  GDBusConnection *connection;
  AbDBusBroker1 *broker;
  gboolean system_bus;
  gboolean json;
} AbCtl;

typedef int (*AbCtlVerbFunc) (AbCtl *ctl, int argc, char **argv);

typedef struct
{
  const char *name;
  const char *args;
  const char *summary;
  AbCtlVerbFunc func;
} AbCtlVerb;

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

/* A D-Bus error as one line: the daemon's message without the remote
 * error name that GDBus prepends. */
static int
fail_dbus (GError *error)
{
  g_dbus_error_strip_remote_error (error);
  return fail ("%s", error->message);
}

static void
print_json (JsonNode *node)
{
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autofree char *text = NULL;

  json_generator_set_pretty (generator, TRUE);
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

/* ---- status -------------------------------------------------------- */

static int
verb_status (AbCtl *ctl, int argc, char **argv)
{
  AbDBusBroker1 *b = ctl->broker;
  g_autofree char *started = NULL;

  if (argc > 1)
    return fail (_ ("status takes no arguments"));

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
      json_builder_end_object (builder);
      root = json_builder_get_root (builder);
      print_json (root);
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
      g_variant_new ("(ss)", "org.agentbroker.Broker1", "Generation"),
      G_VARIANT_TYPE ("(v)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL, NULL);
  if (reply == NULL)
    return ab_dbus_broker1_get_generation (ctl->broker);
  g_variant_get (reply, "(v)", &value);
  return g_variant_get_uint32 (value);
}

static int
verb_reload (AbCtl *ctl, int argc, char **argv)
{
  g_autoptr (GError) error = NULL;

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

  if (!ctl->json)
    printf (_ ("Reloaded; generation %u.\n"), fetch_generation (ctl));
  return EXIT_SUCCESS;
}

static const AbCtlVerb verbs[] = {
  { "status", "", N_ ("Show the broker's state"), verb_status },
  { "reload", "", N_ ("Re-read the configuration and wait for the result"),
    verb_reload },
};

static const AbCtlVerb *
find_verb (const char *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS (verbs); i++)
    if (g_str_equal (verbs[i].name, name))
      return &verbs[i];
  return NULL;
}

static char *
verbs_help (void)
{
  GString *help = g_string_new (_ ("Verbs:\n"));

  for (gsize i = 0; i < G_N_ELEMENTS (verbs); i++)
    {
      g_autofree char *usage
          = g_strdup_printf ("%s %s", verbs[i].name, verbs[i].args);
      g_string_append_printf (help, "  %-28s %s\n", usage,
                              _ (verbs[i].summary));
    }
  return g_string_free (help, FALSE);
}

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

int
main (int argc, char **argv)
{
  gboolean opt_system = FALSE, opt_user = FALSE, opt_json = FALSE;
  gboolean opt_version = FALSE;
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *help = NULL;
  g_autofree char *owner = NULL;
  const AbCtlVerb *verb;
  AbCtl ctl = { 0 };
  int status;
  const GOptionEntry entries[]
      = { { "system", 0, 0, G_OPTION_ARG_NONE, &opt_system,
            N_ ("Talk to the system broker (default)"), NULL },
          { "user", 0, 0, G_OPTION_ARG_NONE, &opt_user,
            N_ ("Talk to the broker of the calling user"), NULL },
          { "json", 0, 0, G_OPTION_ARG_NONE, &opt_json,
            N_ ("Print JSON instead of text"), NULL },
          { "version", 0, 0, G_OPTION_ARG_NONE, &opt_version,
            N_ ("Print the version and exit"), NULL },
          { NULL } };

  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);
  /* Map org.agentbroker.Error.* replies back to AB_ERROR codes. */
  (void)ab_error_quark ();

  context = g_option_context_new (_ ("VERB [ARGUMENTS…]"));
  g_option_context_set_summary (
      context, _ ("Control agentbroker, the AI coding-agent session broker."));
  help = verbs_help ();
  g_option_context_set_description (context, help);
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  /* Options after the verb belong to the verb. */
  g_option_context_set_strict_posix (context, TRUE);
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

  verb = find_verb (argv[1]);
  if (verb == NULL)
    return fail (_ ("unknown verb '%s'; try 'agentctl --help'"), argv[1]);

  ctl.system_bus = !opt_user;
  ctl.json = opt_json;
  if (!connect_broker (&ctl, &error))
    return fail (_ ("cannot reach the %s broker: %s"),
                 ctl.system_bus ? _ ("system") : _ ("user"), error->message);

  /* Is anybody there? A proxy without an owner has no properties. */
  owner = g_dbus_proxy_get_name_owner (G_DBUS_PROXY (ctl.broker));
  if (owner == NULL)
    status = fail (_ ("agentbroker is not running on the %s bus"),
                   ctl.system_bus ? _ ("system") : _ ("session"));
  else
    status = verb->func (&ctl, argc - 1, argv + 1);

  g_clear_object (&ctl.broker);
  g_clear_object (&ctl.connection);
  return status;
}
