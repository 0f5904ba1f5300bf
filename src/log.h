/* agentbroker — log output: the journal when stderr is the journal */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

void ab_log_init (gboolean verbose);

G_END_DECLS
