/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the project's error domain, registered with GDBus */
#include "config.h"

#include <gio/gio.h>

#include "error.h"

static const GDBusErrorEntry ab_error_entries[] = {
  { AB_ERROR_NO_SUCH_SESSION, "org.agentbroker.Error.NoSuchSession" },
  { AB_ERROR_INVALID_ARGUMENT, "org.agentbroker.Error.InvalidArgument" },
  { AB_ERROR_DRAINING, "org.agentbroker.Error.Draining" },
  { AB_ERROR_BUSY, "org.agentbroker.Error.Busy" },
  { AB_ERROR_POOL_EXHAUSTED, "org.agentbroker.Error.PoolExhausted" },
  { AB_ERROR_INVALID_CONFIG, "org.agentbroker.Error.InvalidConfig" },
  { AB_ERROR_AGENT_FAILED, "org.agentbroker.Error.AgentFailed" },
  { AB_ERROR_ACCESS_DENIED, "org.agentbroker.Error.AccessDenied" },
  { AB_ERROR_TIMEOUT, "org.agentbroker.Error.Timeout" },
  { AB_ERROR_NOT_SUPPORTED, "org.agentbroker.Error.NotSupported" },
  { AB_ERROR_FAILED, "org.agentbroker.Error.Failed" },
};

G_STATIC_ASSERT (G_N_ELEMENTS (ab_error_entries) == AB_ERROR_FAILED + 1);

GQuark
ab_error_quark (void)
{
  static gsize quark = 0;

  g_dbus_error_register_error_domain ("agentbroker-error-quark", &quark,
                                      ab_error_entries,
                                      G_N_ELEMENTS (ab_error_entries));
  return (GQuark)quark;
}
