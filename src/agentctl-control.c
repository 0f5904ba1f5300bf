/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentctl — the verbs that act on a session (cancel, remove, kill,
 * answer) or on the broker (resume, drain, reload)
 */
#include "config.h"

#include <stdlib.h>

#include <glib/gi18n.h>

#include "agentctl.h"
#include "duration.h"
#include "error.h"
#include "names.h"
#include "session-list.h"

#define AB_DRAIN_DEFAULT_SECONDS 30

/* ---- cancel, remove, kill, answer, resume ----------------------------------
 */

int
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

int
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
int
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

int
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

int
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

int
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

int
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
