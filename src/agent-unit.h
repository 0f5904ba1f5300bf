/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — one agent running as a transient systemd service
 *
 * ab_agent_unit_start() asks the manager on @bus to start the unit and
 * follows it from then on: its main process, and how it ended (exit
 * status, signal, or the out-of-memory killer) once it is inactive or
 * failed.  Stopping it stops its whole control group, whatever the
 * agent's processes did to their process groups or sessions.
 *
 * An AbAgentHandle: "exited" is emitted once, when the unit is inactive,
 * failed or gone, or when the manager refused to start it (the
 * description then says why).  The stderr tail is always "": the unit's
 * stderr goes to the journal (journalctl -u UNIT).
 *
 * The caller must have called the manager's Subscribe() on @bus, so that
 * the unit's changes are signalled.
 */
#pragma once

#include <gio/gio.h>

#include "agent-handle.h"

G_BEGIN_DECLS

#define AB_TYPE_AGENT_UNIT (ab_agent_unit_get_type ())
G_DECLARE_FINAL_TYPE (AbAgentUnit, ab_agent_unit, AB, AGENT_UNIT, GObject)

/* StartTransientUnit of @name with @properties (a(sv), floating refs are
 * sunk).  The files @remove_when_gone (or NULL) are removed, and the
 * descriptors named @stored (or NULL) taken out of the daemon's fd store,
 * once the unit is gone. */
AbAgentUnit *ab_agent_unit_start (GDBusConnection *bus, const char *name,
                                  GVariant *properties,
                                  const char *const *remove_when_gone,
                                  const char *const *stored);
/* Follows unit @name, started by an earlier instance of the daemon, from
 * what the manager says of it now on; "exited" comes at once when it is
 * no longer running. */
AbAgentUnit *ab_agent_unit_attach (GDBusConnection *bus, const char *name,
                                   const char *const *remove_when_gone,
                                   const char *const *stored);
const char *ab_agent_unit_get_name (AbAgentUnit *self);

/* The D-Bus object path the manager gives unit @name. */
char *ab_agent_unit_object_path (const char *name);

G_END_DECLS
