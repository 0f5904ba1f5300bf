/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — what an agent's usage_update says of its session
 *
 * The ACP session/update "usage_update" carries the tokens in the agent's
 * context window ("used"), the window's size ("size") and optionally the
 * session's cumulative cost ("cost": {"amount", "currency"}).  The agent
 * is untrusted: every field is checked, and one that is missing or wrong
 * leaves the value known before.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Unknown values: no usage_update said them yet. */
#define AB_ACP_TOKENS_UNKNOWN G_MAXUINT64
#define AB_ACP_COST_UNKNOWN (-1.0)
/* Larger amounts are taken for garbage. */
#define AB_ACP_COST_MAX 1e15
/* A currency is 1 to this many bytes of [A-Za-z0-9._-]. */
#define AB_ACP_CURRENCY_MAX 16

typedef struct
{
  guint64 used;                           /* tokens in the context window */
  guint64 size;                           /* tokens the context window holds */
  double cost;                            /* cumulative, in @currency */
  char currency[AB_ACP_CURRENCY_MAX + 1]; /* an ISO 4217 code ("USD") or
                                             another unit ("credits") */
} AbAcpUsage;

void ab_acp_usage_init (AbAcpUsage *usage);
/* Reads the usage_update payload @update (the "update" object, JSON text
 * of @len bytes) into @usage: each field that is there and valid (a
 * token count an integer from 0 to G_MAXINT64, a cost an amount from 0
 * to AB_ACP_COST_MAX with a valid currency, both together) replaces the
 * value in @usage; the others leave it.  Returns whether @usage
 * changed. */
gboolean ab_acp_read_usage (const char *update, gsize len, AbAcpUsage *usage);
/* Whether the usages differ. */
gboolean ab_acp_usage_equal (const AbAcpUsage *a, const AbAcpUsage *b);

G_END_DECLS
