/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — who may do what (org.agentbroker.Broker1(5), ACCESS) */
#pragma once

#include <sys/types.h>

#include "ab-config.h"

G_BEGIN_DECLS

typedef enum
{
  AB_ACCESS_NONE,
  AB_ACCESS_USER,
  AB_ACCESS_ADMIN,
} AbAccess;

AbAccess ab_access_for_uid (const AbConfig *config, uid_t uid,
                            gboolean system_bus);
const char *ab_access_to_string (AbAccess access);

G_END_DECLS
