/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the HTTP health shim: /livez, /readyz, /healthz, /metrics */
#pragma once

#include <glib-object.h>

#include "broker.h"

G_BEGIN_DECLS

#define AB_TYPE_HEALTH (ab_health_get_type ())
G_DECLARE_FINAL_TYPE (AbHealth, ab_health, AB, HEALTH, GObject)

/* Serves on the sockets systemd passed under the name "health", else on
 * the broker's health.listen addresses (again after every reload that
 * changes them), else not at all. */
AbHealth *ab_health_new (AbBroker *broker);

gboolean ab_health_is_listening (AbHealth *self);

G_END_DECLS
