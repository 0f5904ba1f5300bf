/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentctl — show and status: the properties of a session or of the
 * broker, as NAME=VALUE lines in systemctl's manner or for a reader
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <glib/gi18n.h>

#include "agentctl.h"

/* ---- show ---------------------------------------------------------- */

/* The order of ListSessions()'s documentation; unknown keys follow. */
static const char *const session_keys[] = {
  "thread", "agent",         "state",       "owner",         "cwd",
  "pid",    "acp_session",   "created",     "last_activity", "turns",
  "queued", "last_turn",     "last_reason", "path",          "unit",
  "memory", "cpu_nsec",      "tasks",       "context_used",  "context_size",
  "cost",   "cost_currency", NULL
};

/* The broker's properties in the order of the interface XML. */
static const char *const broker_properties[]
    = { "State",        "Accepting",     "Generation", "Version",
        "SessionCount", "RunningCount",  "BusyCount",  "MaxSessions",
        "StartedAt",    "OpenFileLimit", "Launcher",   NULL };

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

/* A cost (the only double a session has): negative is unknown. */
static char *
format_cost (double cost, const char *unknown)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];

  if (cost < 0)
    return g_strdup (unknown);
  return g_strdup (g_ascii_formatd (buf, sizeof buf, "%.10g", cost));
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
  if (is_number && g_str_equal (key, "memory"))
    return format_bytes (number);
  if (is_number && g_str_equal (key, "cpu_nsec"))
    return format_cpu (number);
  if (is_number && number == G_MAXUINT64
      && (g_str_equal (key, "tasks") || g_str_equal (key, "context_used")
          || g_str_equal (key, "context_size")))
    return g_strdup ("-");
  if (g_variant_is_of_type (value, G_VARIANT_TYPE_DOUBLE))
    return format_cost (g_variant_get_double (value), "-");
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
  static const char *const usage[]
      = { "Memory", "CpuNsec", "Tasks", "ContextUsed", "ContextSize", NULL };
  guint64 number;

  if (g_variant_is_of_type (value, G_VARIANT_TYPE_BOOLEAN))
    return g_strdup (g_variant_get_boolean (value) ? "yes" : "no");
  if (g_variant_is_of_type (value, G_VARIANT_TYPE_STRING)
      || g_variant_is_of_type (value, G_VARIANT_TYPE_OBJECT_PATH))
    return g_strdup (g_variant_get_string (value, NULL));
  if (g_variant_is_of_type (value, G_VARIANT_TYPE_DOUBLE))
    return format_cost (g_variant_get_double (value), "[not set]");
  if (g_variant_is_of_type (value, G_VARIANT_TYPE_UINT64))
    number = g_variant_get_uint64 (value);
  else if (g_variant_is_of_type (value, G_VARIANT_TYPE_UINT32))
    number = g_variant_get_uint32 (value);
  else
    return g_variant_print (value, FALSE);
  /* As systemctl shows a count the kernel does not keep. */
  if (number == G_MAXUINT64 && g_strv_contains (usage, name))
    return g_strdup ("[not set]");
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

int
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

int
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
      json_builder_set_member_name (builder, "launcher");
      json_builder_add_string_value (builder, ab_dbus_broker1_get_launcher (b));
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
  if (g_strcmp0 (ab_dbus_broker1_get_launcher (b), "systemd") == 0)
    printf ("%s", _ ("    Launcher: systemd (each agent a transient unit in "
                     "agentbroker-sessions.slice)\n"));
  else
    printf ("%s", _ ("    Launcher: direct (agents are children of the "
                     "daemon)\n"));
  return EXIT_SUCCESS;
}
