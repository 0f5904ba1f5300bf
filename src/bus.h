/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the D-Bus service: a thin adapter on the broker */
#pragma once

#include <gio/gio.h>

#include "broker.h"
#include "names.h"

G_BEGIN_DECLS

#define AB_TYPE_BUS (ab_bus_get_type ())
G_DECLARE_FINAL_TYPE (AbBus, ab_bus, AB, BUS, GObject)

AbBus *ab_bus_new (AbBroker *broker, GDBusConnection *connection,
                   gboolean system_bus, GError **error);

G_END_DECLS
