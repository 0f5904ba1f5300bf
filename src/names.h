/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — D-Bus names and object paths, for the daemon and its
 * clients alike (dbus/org.agentbroker.Broker1.xml documents them) */
#pragma once

/* The well-known name the daemon owns, on the system or session bus. */
#define AB_BUS_NAME "org.agentbroker.Broker1"
/* The manager object, also the root of the object manager. */
#define AB_BUS_PATH "/org/agentbroker/Broker1"
#define AB_BROKER_IFACE "org.agentbroker.Broker1"
#define AB_SESSION_IFACE "org.agentbroker.Session1"
/* A session's object path: this, then its thread id escaped with
 * g_dbus_escape_object_path(). */
#define AB_SESSION_PREFIX AB_BUS_PATH "/session/"
