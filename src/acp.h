/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — ACP message shapes (Agent Client Protocol, version 1) */
#pragma once

#include <json-glib/json-glib.h>

#include "ab-config.h"
#include "json-text.h"

G_BEGIN_DECLS

#define AB_ACP_PROTOCOL_VERSION 1

JsonNode *ab_acp_initialize_params (void);
JsonNode *ab_acp_authenticate_params (const char *method_id);
JsonNode *ab_acp_new_session_params (const char *cwd);
JsonNode *ab_acp_load_session_params (const char *session_id, const char *cwd);
JsonNode *ab_acp_resume_session_params (const char *session_id,
                                        const char *cwd);
/* The ACP content blocks of a prompt that is plain @text. */
JsonNode *ab_acp_text_prompt (const char *text);
/* @prompt: transfer full. */
JsonNode *ab_acp_prompt_params (const char *session_id, JsonNode *prompt);
JsonNode *ab_acp_cancel_params (const char *session_id);

const char *ab_acp_get_string (JsonNode *node, const char *name);
gboolean ab_acp_agent_can_load (JsonNode *initialize_result);
/* The agent advertised sessionCapabilities.resume. */
gboolean ab_acp_agent_can_resume (JsonNode *initialize_result);
char *ab_acp_describe_auth_methods (JsonNode *initialize_result);
/* The agent as its initialize answer describes it: a JSON object with
 * the answer's "agentInfo" and "agentCapabilities" objects, those it has
 * (free it). */
char *ab_acp_describe_agent (JsonNode *initialize_result);
/* Adds to *@description (ab_acp_describe_agent()'s, replaced) the
 * "modes" object and the "configOptions" array of a session/new or
 * session/load answer, those it has, each at most
 * AB_ACP_MAX_SESSION_SETUP_BYTES long as JSON (a longer one is left
 * out): what the agent offers a new session. */
#define AB_ACP_MAX_SESSION_SETUP_BYTES (32 * 1024)
void ab_acp_describe_session (char **description, JsonNode *session_result);
char *ab_acp_session_id_from_result (JsonNode *new_session_result);
char *ab_acp_stop_reason (JsonNode *prompt_result);

/* session/request_permission: the option a policy picks, and answers. */
char *ab_acp_permission_pick (JsonNode *params, AbPermissions policy);
gboolean ab_acp_permission_has_option (JsonNode *params, const char *option_id);
JsonNode *ab_acp_permission_selected (const char *option_id);
JsonNode *ab_acp_permission_cancelled (void);

char *ab_acp_text_update (const char *text);

/* session/update params read from their text (the JSON-RPC fast path,
 * ab_jsonrpc_set_text_handlers): what the tree-based reading would find.
 * UNSURE: escapes or duplicates where it matters, read the tree instead.
 * IGNORED: no "update" object. Otherwise @update is its text, and
 * @session_id and @kind (update.sessionUpdate) the bytes of those
 * strings, data NULL when absent or not a string. */
typedef enum
{
  AB_ACP_UPDATE_UNSURE,
  AB_ACP_UPDATE_IGNORED,
  AB_ACP_UPDATE_FOUND,
} AbAcpUpdateScan;

AbAcpUpdateScan ab_acp_scan_update (const char *params, gsize len,
                                    AbJsonSpan *session_id, AbJsonSpan *update,
                                    AbJsonSpan *kind);

G_END_DECLS
