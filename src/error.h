/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the project's error domain
 *
 * Each code maps to one D-Bus error name org.agentbroker.Error.<Name>
 * (org.agentbroker.Broker1(5)), so a GError raised anywhere in the daemon
 * reaches a D-Bus caller with the right name and its message unchanged.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define AB_ERROR (ab_error_quark ())

typedef enum
{
  AB_ERROR_NO_SUCH_SESSION,
  AB_ERROR_INVALID_ARGUMENT,
  AB_ERROR_DRAINING,
  AB_ERROR_BUSY,
  AB_ERROR_POOL_EXHAUSTED,
  AB_ERROR_INVALID_CONFIG,
  AB_ERROR_AGENT_FAILED,
  AB_ERROR_ACCESS_DENIED,
  AB_ERROR_TIMEOUT,
  AB_ERROR_NOT_SUPPORTED,
  AB_ERROR_FAILED,
} AbError;

GQuark ab_error_quark (void);

G_END_DECLS
