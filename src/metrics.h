/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — counters for /metrics, kept by observing the broker */
#pragma once

#include <glib-object.h>

#include "broker.h"
#include "session.h"

G_BEGIN_DECLS

#define AB_METRICS_N_SESSION_STATES (AB_SESSION_STATE_FAILED + 1)

#define AB_TYPE_METRICS (ab_metrics_get_type ())
G_DECLARE_FINAL_TYPE (AbMetrics, ab_metrics, AB, METRICS, GObject)

AbMetrics *ab_metrics_new (AbBroker *broker);

/* The Prometheus text exposition format, version 0.0.4. */
char *ab_metrics_render (AbMetrics *self);

/* Sessions of @pool in each AbSessionState. */
void ab_metrics_count_sessions (AbPool *pool,
                                guint counts[AB_METRICS_N_SESSION_STATES]);

G_END_DECLS
