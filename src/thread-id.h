/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — thread ids: validation and escaping */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define AB_THREAD_ID_MAX 200

gboolean ab_thread_id_validate (const char *thread, GError **error);
char *ab_thread_id_to_object_path (const char *thread);

G_END_DECLS
