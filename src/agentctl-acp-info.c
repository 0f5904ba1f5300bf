/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentctl — acp: what the front door tells a client of the agent behind
 * it, from what the broker last saw of the profile's agent (ListProfiles'
 * "agent"): the initialize answer, and the modes and configuration
 * options a new session starts with.
 *
 * That description came from an agent: each part is checked for the
 * shape ACP gives it before it goes to a client that validates what it
 * gets, and a part that does not fit is left out.
 */
#include "config.h"

#include <string.h>

#include "agentctl.h"
#include "json-text.h"

static gboolean
has_string (JsonObject *object, const char *name)
{
  JsonNode *node
      = object != NULL ? json_object_get_member (object, name) : NULL;

  return node != NULL && JSON_NODE_HOLDS_VALUE (node)
         && json_node_get_value_type (node) == G_TYPE_STRING;
}

static JsonObject *
object_of (JsonNode *node)
{
  return node != NULL && JSON_NODE_HOLDS_OBJECT (node)
             ? json_node_get_object (node)
             : NULL;
}

static JsonArray *
array_member (JsonObject *object, const char *name)
{
  JsonNode *node
      = object != NULL ? json_object_get_member (object, name) : NULL;

  return node != NULL && JSON_NODE_HOLDS_ARRAY (node)
             ? json_node_get_array (node)
             : NULL;
}

/* Whether every element of @array is an object with the string members
 * @names (NULL-terminated). */
static gboolean
objects_with_strings (JsonArray *array, const char *const *names)
{
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      JsonObject *element = object_of (json_array_get_element (array, i));

      for (const char *const *name = names; *name != NULL; name++)
        if (!has_string (element, *name))
          return FALSE;
    }
  return TRUE;
}

/* ACP's SessionModeState: a current mode id and the modes offered, each
 * with an id and a name. */
static gboolean
modes_are_valid (JsonNode *node)
{
  static const char *const mode[] = { "id", "name", NULL };
  JsonObject *modes = object_of (node);
  JsonArray *available = array_member (modes, "availableModes");

  return has_string (modes, "currentModeId") && available != NULL
         && objects_with_strings (available, mode);
}

/* ACP's SessionConfigOption list: each an id, a name and a type; a
 * "select" has its current value and its options (values with names, or
 * groups of them). */
static gboolean
config_options_are_valid (JsonNode *node)
{
  static const char *const option[] = { "id", "name", "type", NULL };
  JsonArray *options = node != NULL && JSON_NODE_HOLDS_ARRAY (node)
                           ? json_node_get_array (node)
                           : NULL;

  if (options == NULL || !objects_with_strings (options, option))
    return FALSE;
  for (guint i = 0; i < json_array_get_length (options); i++)
    {
      JsonObject *o = json_array_get_object_element (options, i);

      if (g_str_equal (json_object_get_string_member (o, "type"), "select")
          && (!has_string (o, "currentValue")
              || array_member (o, "options") == NULL))
        return FALSE;
    }
  return TRUE;
}

void
acp_add_session_setup (JsonObject *answer, JsonObject *agent)
{
  JsonNode *modes
      = agent != NULL ? json_object_get_member (agent, "modes") : NULL;
  JsonNode *options
      = agent != NULL ? json_object_get_member (agent, "configOptions") : NULL;

  if (modes_are_valid (modes))
    json_object_set_member (answer, "modes", json_node_copy (modes));
  if (config_options_are_valid (options))
    json_object_set_member (answer, "configOptions", json_node_copy (options));
}

/* The promptCapabilities of the profile's agent as it advertised them,
 * its booleans only: a client validates what it gets. */
static JsonNode *
prompt_capabilities (JsonObject *agent)
{
  static const char *const names[] = { "image", "audio", "embeddedContext" };
  JsonObject *caps = json_object_new ();
  JsonObject *seen = NULL;
  JsonNode *node;
  JsonNode *root = json_node_new (JSON_NODE_OBJECT);

  node = agent != NULL ? json_object_get_member (agent, "agentCapabilities")
                       : NULL;
  if (node != NULL && JSON_NODE_HOLDS_OBJECT (node))
    {
      node = json_object_get_member (json_node_get_object (node),
                                     "promptCapabilities");
      if (node != NULL && JSON_NODE_HOLDS_OBJECT (node))
        seen = json_node_get_object (node);
    }
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    {
      JsonNode *value
          = seen != NULL ? json_object_get_member (seen, names[i]) : NULL;

      json_object_set_boolean_member (
          caps, names[i],
          value != NULL && JSON_NODE_HOLDS_VALUE (value)
              && json_node_get_value_type (value) == G_TYPE_BOOLEAN
              && json_node_get_boolean (value));
    }
  json_node_take_object (root, caps);
  return root;
}

JsonNode *
acp_parse_agent (const char *description)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (JsonNode) root = NULL;

  if (*description == '\0')
    return NULL;
  root = ab_json_parse_untrusted (parser, description, strlen (description),
                                  NULL);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return NULL;
  return g_steal_pointer (&root);
}

JsonNode *
acp_initialize_result (const char *profile, JsonObject *agent)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  JsonNode *info
      = agent != NULL ? json_object_get_member (agent, "agentInfo") : NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "protocolVersion");
  json_builder_add_int_value (b, 1);
  json_builder_set_member_name (b, "agentCapabilities");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "loadSession");
  json_builder_add_boolean_value (b, TRUE);
  json_builder_set_member_name (b, "promptCapabilities");
  json_builder_add_value (b, prompt_capabilities (agent));
  json_builder_set_member_name (b, "mcpCapabilities");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "http");
  json_builder_add_boolean_value (b, FALSE);
  json_builder_set_member_name (b, "sse");
  json_builder_add_boolean_value (b, FALSE);
  json_builder_end_object (b);
  json_builder_set_member_name (b, "sessionCapabilities");
  json_builder_begin_object (b);
  for (const char *const *name
       = (const char *const[]){ "list", "resume", "close", "delete", NULL };
       *name != NULL; name++)
    {
      json_builder_set_member_name (b, *name);
      json_builder_begin_object (b);
      json_builder_end_object (b);
    }
  json_builder_end_object (b);
  json_builder_end_object (b);

  json_builder_set_member_name (b, "agentInfo");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "name");
  json_builder_add_string_value (b, "agentbroker");
  json_builder_set_member_name (b, "title");
  json_builder_add_string_value (b, profile);
  json_builder_set_member_name (b, "version");
  json_builder_add_string_value (b, PACKAGE_VERSION);
  json_builder_end_object (b);
  json_builder_set_member_name (b, "authMethods");
  json_builder_begin_array (b);
  json_builder_end_array (b);

  /* What stands behind the broker: the profile and its agent. */
  json_builder_set_member_name (b, "_meta");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "agentbroker");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "profile");
  json_builder_add_string_value (b, profile);
  if (info != NULL && JSON_NODE_HOLDS_OBJECT (info))
    {
      json_builder_set_member_name (b, "agentInfo");
      json_builder_add_value (b, json_node_copy (info));
    }
  json_builder_end_object (b);
  json_builder_end_object (b);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}
