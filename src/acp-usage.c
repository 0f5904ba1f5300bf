/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — what an agent's usage_update says of its session */
#include "config.h"

#include <math.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "acp-usage.h"
#include "json-text.h"

/* Integers a double holds exactly: an agent in JavaScript may write a
 * count as 1e6. */
#define EXACT_DOUBLE_MAX 9007199254740992.0

void
ab_acp_usage_init (AbAcpUsage *usage)
{
  usage->used = AB_ACP_TOKENS_UNKNOWN;
  usage->size = AB_ACP_TOKENS_UNKNOWN;
  usage->cost = AB_ACP_COST_UNKNOWN;
  usage->currency[0] = '\0';
}

gboolean
ab_acp_usage_equal (const AbAcpUsage *a, const AbAcpUsage *b)
{
  return a->used == b->used && a->size == b->size && a->cost == b->cost
         && strcmp (a->currency, b->currency) == 0;
}

static JsonNode *
value_member (JsonObject *object, const char *name)
{
  JsonNode *node
      = object != NULL ? json_object_get_member (object, name) : NULL;

  return node != NULL && JSON_NODE_HOLDS_VALUE (node) ? node : NULL;
}

/* A number member as a double, or FALSE: not there, not a number, not
 * finite. */
static gboolean
number_member (JsonObject *object, const char *name, double *out)
{
  JsonNode *node = value_member (object, name);

  if (node == NULL)
    return FALSE;
  if (json_node_get_value_type (node) == G_TYPE_INT64)
    *out = (double)json_node_get_int (node);
  else if (json_node_get_value_type (node) == G_TYPE_DOUBLE)
    *out = json_node_get_double (node);
  else
    return FALSE;
  return isfinite (*out);
}

/* A token count: a non-negative integer (json-glib wraps integers past
 * G_MAXINT64 around, mostly to negative ones, which are refused). */
static gboolean
count_member (JsonObject *object, const char *name, guint64 *out)
{
  JsonNode *node = value_member (object, name);
  double d;

  if (node == NULL)
    return FALSE;
  if (json_node_get_value_type (node) == G_TYPE_INT64)
    {
      gint64 v = json_node_get_int (node);

      if (v < 0)
        return FALSE;
      *out = (guint64)v;
      return TRUE;
    }
  if (!number_member (object, name, &d) || d < 0 || d > EXACT_DOUBLE_MAX
      || d != (double)(guint64)d)
    return FALSE;
  *out = (guint64)d;
  return TRUE;
}

static gboolean
currency_is_valid (const char *currency)
{
  gsize len = currency != NULL ? strlen (currency) : 0;

  if (len == 0 || len > AB_ACP_CURRENCY_MAX)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    if (!g_ascii_isalnum (currency[i]) && strchr ("._-", currency[i]) == NULL)
      return FALSE;
  return TRUE;
}

/* "cost": {"amount", "currency"}, both valid, or nothing. */
static gboolean
read_cost (JsonObject *update, AbAcpUsage *usage)
{
  JsonNode *node = json_object_get_member (update, "cost");
  JsonObject *cost;
  JsonNode *currency;
  double amount;

  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
    return FALSE;
  cost = json_node_get_object (node);
  currency = value_member (cost, "currency");
  if (!number_member (cost, "amount", &amount) || amount < 0
      || amount > AB_ACP_COST_MAX || currency == NULL
      || json_node_get_value_type (currency) != G_TYPE_STRING
      || !currency_is_valid (json_node_get_string (currency)))
    return FALSE;
  usage->cost = amount;
  g_strlcpy (usage->currency, json_node_get_string (currency),
             sizeof usage->currency);
  return TRUE;
}

gboolean
ab_acp_read_usage (const char *update, gsize len, AbAcpUsage *usage)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (JsonNode) root
      = ab_json_parse_untrusted (parser, update, len, NULL);
  AbAcpUsage before = *usage;
  JsonObject *object;

  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return FALSE;
  object = json_node_get_object (root);
  (void)count_member (object, "used", &usage->used);
  (void)count_member (object, "size", &usage->size);
  (void)read_cost (object, usage);
  return !ab_acp_usage_equal (&before, usage);
}
