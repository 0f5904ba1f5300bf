/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — systemd notifications: readiness, status, watchdog */
#pragma once

#include <glib-object.h>

#include "broker.h"

G_BEGIN_DECLS

#define AB_TYPE_NOTIFIER (ab_notifier_get_type ())
G_DECLARE_FINAL_TYPE (AbNotifier, ab_notifier, AB, NOTIFIER, GObject)

AbNotifier *ab_notifier_new (AbBroker *broker);
void ab_notifier_extend_timeout (AbNotifier *self, gint64 usec);

G_END_DECLS
