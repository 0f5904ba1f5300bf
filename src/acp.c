/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — ACP message shapes
 *
 * Builds the client's requests and reads the fields the broker needs out
 * of the agent's answers. Everything read here came from an agent and is
 * checked for its type before use.
 */
#include "config.h"

#include <string.h>

#include "acp.h"

static JsonNode *
builder_result (JsonBuilder *builder)
{
  return json_builder_get_root (builder);
}

JsonNode *
ab_acp_initialize_params (void)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "protocolVersion");
  json_builder_add_int_value (b, AB_ACP_PROTOCOL_VERSION);
  /* The broker offers no file system and no terminal to agents. */
  json_builder_set_member_name (b, "clientCapabilities");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "fs");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "readTextFile");
  json_builder_add_boolean_value (b, FALSE);
  json_builder_set_member_name (b, "writeTextFile");
  json_builder_add_boolean_value (b, FALSE);
  json_builder_end_object (b);
  json_builder_set_member_name (b, "terminal");
  json_builder_add_boolean_value (b, FALSE);
  json_builder_end_object (b);
  json_builder_set_member_name (b, "clientInfo");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "name");
  json_builder_add_string_value (b, "agentbroker");
  json_builder_set_member_name (b, "version");
  json_builder_add_string_value (b, PACKAGE_VERSION);
  json_builder_end_object (b);
  json_builder_end_object (b);
  return builder_result (b);
}

JsonNode *
ab_acp_authenticate_params (const char *method_id)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "methodId");
  json_builder_add_string_value (b, method_id);
  json_builder_end_object (b);
  return builder_result (b);
}

static void
add_session_fields (JsonBuilder *b, const char *session_id, const char *cwd)
{
  if (session_id != NULL)
    {
      json_builder_set_member_name (b, "sessionId");
      json_builder_add_string_value (b, session_id);
    }
  json_builder_set_member_name (b, "cwd");
  json_builder_add_string_value (b, cwd);
  json_builder_set_member_name (b, "mcpServers");
  json_builder_begin_array (b);
  json_builder_end_array (b);
}

JsonNode *
ab_acp_new_session_params (const char *cwd)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();

  json_builder_begin_object (b);
  add_session_fields (b, NULL, cwd);
  json_builder_end_object (b);
  return builder_result (b);
}

JsonNode *
ab_acp_load_session_params (const char *session_id, const char *cwd)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();

  json_builder_begin_object (b);
  add_session_fields (b, session_id, cwd);
  json_builder_end_object (b);
  return builder_result (b);
}

/* session/resume takes what session/load does. */
JsonNode *
ab_acp_resume_session_params (const char *session_id, const char *cwd)
{
  return ab_acp_load_session_params (session_id, cwd);
}

JsonNode *
ab_acp_text_prompt (const char *text)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();

  json_builder_begin_array (b);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "type");
  json_builder_add_string_value (b, "text");
  json_builder_set_member_name (b, "text");
  json_builder_add_string_value (b, text);
  json_builder_end_object (b);
  json_builder_end_array (b);
  return builder_result (b);
}

JsonNode *
ab_acp_prompt_params (const char *session_id, JsonNode *prompt)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "sessionId");
  json_builder_add_string_value (b, session_id);
  json_builder_set_member_name (b, "prompt");
  json_builder_add_value (b, prompt);
  json_builder_end_object (b);
  return builder_result (b);
}

JsonNode *
ab_acp_cancel_params (const char *session_id)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "sessionId");
  json_builder_add_string_value (b, session_id);
  json_builder_end_object (b);
  return builder_result (b);
}

static JsonObject *
object_or_null (JsonNode *node)
{
  return node != NULL && JSON_NODE_HOLDS_OBJECT (node)
             ? json_node_get_object (node)
             : NULL;
}

static const char *
string_member (JsonObject *obj, const char *name)
{
  JsonNode *node;

  if (obj == NULL)
    return NULL;
  node = json_object_get_member (obj, name);
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (node);
}

static JsonObject *
object_member (JsonObject *obj, const char *name)
{
  return obj != NULL ? object_or_null (json_object_get_member (obj, name))
                     : NULL;
}

static JsonArray *
array_member (JsonObject *obj, const char *name)
{
  JsonNode *node = obj != NULL ? json_object_get_member (obj, name) : NULL;

  return node != NULL && JSON_NODE_HOLDS_ARRAY (node)
             ? json_node_get_array (node)
             : NULL;
}

/* A string member of an object node, or NULL if either is not there. */
const char *
ab_acp_get_string (JsonNode *node, const char *name)
{
  return string_member (object_or_null (node), name);
}

gboolean
ab_acp_agent_can_load (JsonNode *initialize_result)
{
  JsonObject *caps
      = object_member (object_or_null (initialize_result), "agentCapabilities");
  JsonNode *node
      = caps != NULL ? json_object_get_member (caps, "loadSession") : NULL;

  return node != NULL && JSON_NODE_HOLDS_VALUE (node)
         && json_node_get_value_type (node) == G_TYPE_BOOLEAN
         && json_node_get_boolean (node);
}

/* agentCapabilities.sessionCapabilities.resume: an object ({} will do)
 * says yes; null, absent or anything else no. */
gboolean
ab_acp_agent_can_resume (JsonNode *initialize_result)
{
  JsonObject *caps
      = object_member (object_or_null (initialize_result), "agentCapabilities");

  return object_member (object_member (caps, "sessionCapabilities"), "resume")
         != NULL;
}

char *
ab_acp_describe_agent (JsonNode *initialize_result)
{
  static const char *const members[] = { "agentInfo", "agentCapabilities" };
  JsonObject *result = object_or_null (initialize_result);
  g_autoptr (JsonObject) description = json_object_new ();
  g_autoptr (JsonNode) root = json_node_new (JSON_NODE_OBJECT);

  for (gsize i = 0; i < G_N_ELEMENTS (members); i++)
    {
      JsonObject *member = object_member (result, members[i]);

      if (member != NULL)
        json_object_set_member (
            description, members[i],
            json_node_copy (json_object_get_member (result, members[i])));
    }
  json_node_set_object (root, description);
  return json_to_string (root, FALSE);
}

void
ab_acp_describe_session (char **description, JsonNode *session_result)
{
  static const struct
  {
    const char *name;
    JsonNodeType type;
  } members[]
      = { { "modes", JSON_NODE_OBJECT }, { "configOptions", JSON_NODE_ARRAY } };
  JsonObject *result = object_or_null (session_result);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (JsonNode) root = NULL;
  JsonObject *object;

  if (result == NULL || *description == NULL
      || !json_parser_load_from_data (parser, *description, -1, NULL)
      || (root = json_parser_steal_root (parser)) == NULL
      || !JSON_NODE_HOLDS_OBJECT (root))
    return;
  object = json_node_get_object (root);
  for (gsize i = 0; i < G_N_ELEMENTS (members); i++)
    {
      JsonNode *member = json_object_get_member (result, members[i].name);
      g_autofree char *text = NULL;

      json_object_remove_member (object, members[i].name);
      if (member == NULL || JSON_NODE_TYPE (member) != members[i].type)
        continue;
      text = json_to_string (member, FALSE);
      if (strlen (text) <= AB_ACP_MAX_SESSION_SETUP_BYTES)
        json_object_set_member (object, members[i].name,
                                json_node_copy (member));
    }
  g_free (*description);
  *description = json_to_string (root, FALSE);
}

char *
ab_acp_describe_auth_methods (JsonNode *initialize_result)
{
  JsonArray *methods
      = array_member (object_or_null (initialize_result), "authMethods");
  GString *text = g_string_new (NULL);

  for (guint i = 0; methods != NULL && i < json_array_get_length (methods); i++)
    {
      JsonObject *m = object_or_null (json_array_get_element (methods, i));
      const char *id = string_member (m, "id");
      const char *name = string_member (m, "name");

      if (id == NULL)
        continue;
      if (text->len > 0)
        g_string_append (text, ", ");
      g_string_append (text, id);
      if (name != NULL)
        g_string_append_printf (text, " (%s)", name);
    }
  return g_string_free (text, FALSE);
}

char *
ab_acp_session_id_from_result (JsonNode *new_session_result)
{
  const char *id
      = string_member (object_or_null (new_session_result), "sessionId");

  if (id == NULL || id[0] == '\0' || strlen (id) > 1024
      || !g_utf8_validate (id, -1, NULL))
    return NULL;
  return g_strdup (id);
}

char *
ab_acp_stop_reason (JsonNode *prompt_result)
{
  const char *reason
      = string_member (object_or_null (prompt_result), "stopReason");

  /* A reason is passed on to D-Bus clients: keep it a short token. */
  if (reason == NULL || reason[0] == '\0' || strlen (reason) > 64)
    return g_strdup ("end_turn");
  for (const char *p = reason; *p != '\0'; p++)
    if (!g_ascii_isalnum (*p) && *p != '_' && *p != '-')
      return g_strdup ("end_turn");
  return g_strdup (reason);
}

/* The option of @kind, if the agent offered one. */
static const char *
option_of_kind (JsonArray *options, const char *kind)
{
  for (guint i = 0; options != NULL && i < json_array_get_length (options); i++)
    {
      JsonObject *o = object_or_null (json_array_get_element (options, i));

      if (g_strcmp0 (string_member (o, "kind"), kind) == 0
          && string_member (o, "optionId") != NULL)
        return string_member (o, "optionId");
    }
  return NULL;
}

char *
ab_acp_permission_pick (JsonNode *params, AbPermissions policy)
{
  JsonArray *options = array_member (object_or_null (params), "options");
  const char *pick = NULL;

  if (policy == AB_PERMISSIONS_ALLOW)
    {
      pick = option_of_kind (options, "allow_always");
      if (pick == NULL)
        pick = option_of_kind (options, "allow_once");
      /* else the first option that is not a rejection */
      for (guint i = 0; pick == NULL && options != NULL
                        && i < json_array_get_length (options);
           i++)
        {
          JsonObject *o = object_or_null (json_array_get_element (options, i));
          const char *kind = string_member (o, "kind");

          if (kind != NULL && !g_str_has_prefix (kind, "reject"))
            pick = string_member (o, "optionId");
        }
    }
  else
    {
      pick = option_of_kind (options, "reject_once");
      if (pick == NULL)
        pick = option_of_kind (options, "reject_always");
    }
  return g_strdup (pick);
}

gboolean
ab_acp_permission_has_option (JsonNode *params, const char *option_id)
{
  JsonArray *options = array_member (object_or_null (params), "options");

  for (guint i = 0; options != NULL && i < json_array_get_length (options); i++)
    {
      JsonObject *o = object_or_null (json_array_get_element (options, i));

      if (g_strcmp0 (string_member (o, "optionId"), option_id) == 0)
        return TRUE;
    }
  return FALSE;
}

JsonNode *
ab_acp_permission_selected (const char *option_id)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "outcome");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "outcome");
  json_builder_add_string_value (b, "selected");
  json_builder_set_member_name (b, "optionId");
  json_builder_add_string_value (b, option_id);
  json_builder_end_object (b);
  json_builder_end_object (b);
  return builder_result (b);
}

JsonNode *
ab_acp_permission_cancelled (void)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "outcome");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "outcome");
  json_builder_add_string_value (b, "cancelled");
  json_builder_end_object (b);
  json_builder_end_object (b);
  return builder_result (b);
}

/* A note from the broker itself, shaped like agent text so every client
 * shows it. */
char *
ab_acp_text_update (const char *text)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "sessionUpdate");
  json_builder_add_string_value (b, "agent_message_chunk");
  json_builder_set_member_name (b, "content");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "type");
  json_builder_add_string_value (b, "text");
  json_builder_set_member_name (b, "text");
  json_builder_add_string_value (b, text);
  json_builder_end_object (b);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  return json_to_string (root, FALSE);
}

/* A string member read as the tree would: data NULL when absent or not a
 * string; FALSE when it has escapes (its bytes are not its value). */
static gboolean
plain_string_or_null (const AbJsonSpan *value, AbJsonSpan *out)
{
  const char *text;
  gsize len;

  *out = (AbJsonSpan){ NULL, 0 };
  if (value->data == NULL || value->data[0] != '"')
    return TRUE;
  if (!ab_json_span_get_plain_string (value, &text, &len))
    return FALSE;
  *out = (AbJsonSpan){ text, len };
  return TRUE;
}

AbAcpUpdateScan
ab_acp_scan_update (const char *params, gsize len, AbJsonSpan *session_id,
                    AbJsonSpan *update, AbJsonSpan *kind)
{
  static const char *const params_names[] = { "sessionId", "update" };
  static const char *const update_names[] = { "sessionUpdate" };
  AbJsonSpan p[G_N_ELEMENTS (params_names)];
  AbJsonSpan u[G_N_ELEMENTS (update_names)];

  if (!ab_json_object_get_members (params, len, params_names, p,
                                   G_N_ELEMENTS (p))
      || !plain_string_or_null (&p[0], session_id))
    return AB_ACP_UPDATE_UNSURE;
  if (p[1].data == NULL || p[1].data[0] != '{')
    return AB_ACP_UPDATE_IGNORED;
  if (!ab_json_object_get_members (p[1].data, p[1].len, update_names, u,
                                   G_N_ELEMENTS (u))
      || !plain_string_or_null (&u[0], kind))
    return AB_ACP_UPDATE_UNSURE;
  *update = p[1];
  return AB_ACP_UPDATE_FOUND;
}
