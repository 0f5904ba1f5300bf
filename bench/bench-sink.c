/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker-bench — the receiving client */
#include "config.h"

#include <string.h>

#include "bench-sink.h"
#include "bench-util.h"

static void
record_stamps (BenchSink *sink, GVariant *updates, gint64 now)
{
  gsize n = 0;
  g_autofree const char **texts = g_variant_get_strv (updates, &n);

  for (gsize i = 0; i < n; i++)
    {
      gint64 age;

      if (bench_stamp_age (texts[i], now, &age))
        g_array_append_val (sink->latency_us, age);
      else
        sink->unstamped++;
    }
}

/* Runs on GDBus's worker thread, for every incoming message. */
static GDBusMessage *
on_message (GDBusConnection *connection, GDBusMessage *message,
            gboolean incoming, gpointer user_data)
{
  BenchSink *sink = user_data;
  GVariant *body;
  const char *member;
  gint64 now;
  gboolean wake = FALSE;

  if (!incoming
      || g_dbus_message_get_message_type (message) != G_DBUS_MESSAGE_TYPE_SIGNAL
      || g_strcmp0 (g_dbus_message_get_interface (message), BENCH_SESSION_IFACE)
             != 0)
    return message;

  now = g_get_monotonic_time ();
  member = g_dbus_message_get_member (message);
  body = g_dbus_message_get_body (message);
  g_mutex_lock (&sink->lock);
  if (g_strcmp0 (member, "Update") == 0 && body != NULL
      && g_variant_is_of_type (body, G_VARIANT_TYPE ("(tast)")))
    {
      guint64 turn;
      g_autoptr (GVariant) updates = NULL;

      g_variant_get_child (body, 0, "t", &turn);
      updates = g_variant_get_child_value (body, 1);
      if (turn >= 1)
        {
          sink->updates += g_variant_n_children (updates);
          sink->messages++;
          if (sink->first_update_us == 0)
            {
              sink->first_update_us = now;
              wake = TRUE;
            }
          if (sink->collect_latency)
            record_stamps (sink, updates, now);
        }
    }
  else if (g_strcmp0 (member, "TurnEnded") == 0)
    {
      sink->turns_ended++;
      sink->last_turn_ended_us = now;
      wake = TRUE;
    }
  g_mutex_unlock (&sink->lock);
  if (wake)
    g_main_context_wakeup (NULL);

  /* Handled here: nothing else in the bench wants these. */
  g_object_unref (message);
  return NULL;
}

void
bench_sink_init (BenchSink *sink, GDBusConnection *connection)
{
  memset (sink, 0, sizeof *sink);
  g_mutex_init (&sink->lock);
  sink->latency_us = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_dbus_connection_add_filter (connection, on_message, sink, NULL);
}

void
bench_sink_reset (BenchSink *sink, gboolean collect_latency)
{
  g_mutex_lock (&sink->lock);
  sink->updates = 0;
  sink->messages = 0;
  sink->turns_ended = 0;
  sink->first_update_us = 0;
  sink->last_turn_ended_us = 0;
  sink->unstamped = 0;
  sink->collect_latency = collect_latency;
  g_array_set_size (sink->latency_us, 0);
  g_mutex_unlock (&sink->lock);
}

guint64
bench_sink_turns_ended (BenchSink *sink)
{
  guint64 n;

  g_mutex_lock (&sink->lock);
  n = sink->turns_ended;
  g_mutex_unlock (&sink->lock);
  return n;
}

gint64
bench_sink_first_update (BenchSink *sink)
{
  gint64 t;

  g_mutex_lock (&sink->lock);
  t = sink->first_update_us;
  g_mutex_unlock (&sink->lock);
  return t;
}

static gboolean
on_tick (gpointer user_data)
{
  return G_SOURCE_CONTINUE;
}

static gboolean
wait_for (BenchSink *sink, guint64 turns, gboolean first_update,
          guint timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64)timeout_ms * 1000;
  guint tick = g_timeout_add (100, on_tick, NULL);
  gboolean done = FALSE;

  while (!(done = first_update ? bench_sink_first_update (sink) != 0
                               : bench_sink_turns_ended (sink) >= turns)
         && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_source_remove (tick);
  return done;
}

gboolean
bench_sink_wait_turns (BenchSink *sink, guint64 turns, guint timeout_ms)
{
  return wait_for (sink, turns, FALSE, timeout_ms);
}

gboolean
bench_sink_wait_first_update (BenchSink *sink, guint timeout_ms)
{
  return wait_for (sink, 0, TRUE, timeout_ms);
}
