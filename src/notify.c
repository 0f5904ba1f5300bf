/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — systemd notifications
 *
 * A thin adapter: it watches the broker's state and tells the service
 * manager about it. READY=1 when the broker first runs and after every
 * reload (successful or not), RELOADING=1 with MONOTONIC_USEC= when a
 * reload begins, STOPPING=1 on stop, STATUS= always. Without
 * NOTIFY_SOCKET every call is a no-op, so the daemon runs unchanged
 * outside systemd.
 */
#include "config.h"

#include <systemd/sd-daemon.h>

#include "notify.h"

struct _AbNotifier
{
  GObject parent_instance;

  AbBroker *broker;
  AbBrokerState last_state;
  guint watchdog_source;
};

G_DEFINE_TYPE (AbNotifier, ab_notifier, G_TYPE_OBJECT)

static void
notify_send (const char *message)
{
  int r = sd_notify (0, message);

  if (r < 0)
    g_warning ("sd_notify(%s) failed: %s", message, g_strerror (-r));
}

static void
notify_status (AbNotifier *self)
{
  g_autofree char *msg
      = g_strdup_printf ("STATUS=%s", ab_broker_get_status (self->broker));

  notify_send (msg);
}

static void
on_state_changed (AbBroker *broker, GParamSpec *pspec, AbNotifier *self)
{
  AbBrokerState state = ab_broker_get_state (broker);
  AbBrokerState previous = self->last_state;

  self->last_state = state;
  if (state == previous)
    return;

  switch (state)
    {
    case AB_BROKER_STATE_RELOADING:
      {
        g_autofree char *msg
            = g_strdup_printf ("RELOADING=1\nMONOTONIC_USEC=%" G_GINT64_FORMAT,
                               g_get_monotonic_time ());
        notify_send (msg);
      }
      break;
    case AB_BROKER_STATE_STOPPING:
      notify_send ("STOPPING=1");
      break;
    case AB_BROKER_STATE_STARTING:
      break;
    case AB_BROKER_STATE_RUNNING:
    case AB_BROKER_STATE_DRAINING:
    case AB_BROKER_STATE_DRAINED:
      /* Leaving "starting" or "reloading": the manager waits for READY=1
       * in both cases, also after a failed reload. */
      if (previous == AB_BROKER_STATE_STARTING
          || previous == AB_BROKER_STATE_RELOADING)
        notify_send ("READY=1");
      break;
    }
}

static void
on_status_changed (AbBroker *broker, GParamSpec *pspec, AbNotifier *self)
{
  notify_status (self);
}

static gboolean
on_watchdog (gpointer user_data)
{
  notify_send ("WATCHDOG=1");
  return G_SOURCE_CONTINUE;
}

void
ab_notifier_extend_timeout (AbNotifier *self, gint64 usec)
{
  g_autofree char *msg
      = g_strdup_printf ("EXTEND_TIMEOUT_USEC=%" G_GINT64_FORMAT, usec);

  notify_send (msg);
}

static void
ab_notifier_dispose (GObject *object)
{
  AbNotifier *self = AB_NOTIFIER (object);

  g_clear_handle_id (&self->watchdog_source, g_source_remove);
  if (self->broker != NULL)
    g_signal_handlers_disconnect_by_data (self->broker, self);
  g_clear_object (&self->broker);

  G_OBJECT_CLASS (ab_notifier_parent_class)->dispose (object);
}

static void
ab_notifier_class_init (AbNotifierClass *klass)
{
  G_OBJECT_CLASS (klass)->dispose = ab_notifier_dispose;
}

static void
ab_notifier_init (AbNotifier *self)
{
}

AbNotifier *
ab_notifier_new (AbBroker *broker)
{
  AbNotifier *self = g_object_new (AB_TYPE_NOTIFIER, NULL);
  uint64_t watchdog_usec = 0;

  self->broker = g_object_ref (broker);
  self->last_state = ab_broker_get_state (broker);
  g_signal_connect (broker, "notify::state", G_CALLBACK (on_state_changed),
                    self);
  g_signal_connect (broker, "notify::status", G_CALLBACK (on_status_changed),
                    self);

  /* Ping from the main loop itself, so a stuck loop gets us killed. */
  if (sd_watchdog_enabled (0, &watchdog_usec) > 0 && watchdog_usec > 0)
    {
      guint interval_ms = MAX (watchdog_usec / 2 / 1000, 1);

      g_debug ("watchdog enabled: pinging every %u ms", interval_ms);
      self->watchdog_source = g_timeout_add (interval_ms, on_watchdog, self);
    }

  notify_status (self);
  return self;
}
