/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — the guard in front of the health shim's HTTP server */
#pragma once

#include <libsoup/soup.h>

#include "broker.h"

G_BEGIN_DECLS

/* A request head (request line and headers) larger than this is refused. */
#define AB_HTTP_MAX_HEAD_BYTES 8192

typedef struct _AbHttpGuard AbHttpGuard;

AbHttpGuard *ab_http_guard_new (SoupServer *server, AbBroker *broker);
void ab_http_guard_free (AbHttpGuard *self);

/* Takes a new connection; it reaches @server once its request head has
 * arrived in time, within the size limit, and looks sane. */
void ab_http_guard_accept (AbHttpGuard *self, GSocketConnection *stream);

const char *ab_http_status_phrase (guint status);

G_END_DECLS
