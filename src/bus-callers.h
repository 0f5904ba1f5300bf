/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — who calls the D-Bus service: each connection's uid,
 * asked of the bus once and remembered until the connection goes */
#pragma once

#include <sys/types.h>

#include <gio/gio.h>

#include "access.h"

G_BEGIN_DECLS

typedef struct
{
  uid_t uid;
  gboolean mapped; /* uid and access from the test caller map */
  AbAccess mapped_access;
} AbBusIdentity;

/* @identity is NULL, and @error set, when the bus cannot name the
 * caller's uid. */
typedef void (*AbBusIdentityFunc) (const AbBusIdentity *identity,
                                   const GError *error, gpointer user_data);

typedef struct _AbBusCallers AbBusCallers;

/* @caller_map: AGENTBROKER_TEST_CALLER_MAP, for a session bus only (see
 * bus-callers.c), or NULL. */
AbBusCallers *ab_bus_callers_new (GDBusConnection *connection,
                                  const char *caller_map);
/* Forgets every caller; calls still waiting for a lookup are dropped
 * (their @destroy runs, their function never). Frees @self once no
 * lookup is under way. */
void ab_bus_callers_close (AbBusCallers *self);

/* Calls @func with the identity of @sender (a unique name), at once when
 * it is known, else once the bus has answered; calls from one sender run
 * in the order they came. Then @destroy(@user_data). */
void ab_bus_callers_resolve (AbBusCallers *self, const char *sender,
                             AbBusIdentityFunc func, gpointer user_data,
                             GDestroyNotify destroy);
/* @name left the bus. */
void ab_bus_callers_forget (AbBusCallers *self, const char *name);

G_END_DECLS
