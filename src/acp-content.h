/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — ACP content blocks from a client (PromptContent, the ACP
 * front door): validated before anything else sees them
 *
 * A prompt of content blocks is a JSON array of 1 to
 * AB_ACP_CONTENT_MAX_BLOCKS objects, each with a known "type" and the
 * members ACP requires of it:
 *
 *   text           "text" (string)
 *   image, audio   "data" (base64 string) and "mimeType" (string)
 *   resource       "resource" (object) with "uri" (string) and "text"
 *                  or "blob" (string)
 *   resource_link  "uri" and "name" (strings)
 *
 * Other members are passed on as they are.  The text is at most
 * AB_ACP_CONTENT_MAX_BYTES long, valid UTF-8, nested at most
 * AB_JSON_MAX_DEPTH deep.
 */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define AB_ACP_CONTENT_MAX_BYTES (4 * 1024 * 1024)
#define AB_ACP_CONTENT_MAX_BLOCKS 256

/* Parses and checks @json (@len bytes).  Returns the array of blocks
 * (transfer full) and, in @text, the text of its text blocks joined,
 * what the session's record keeps of the prompt (at most @max_text
 * bytes, cut at a character boundary); NULL with AB_ERROR_INVALID_ARGUMENT
 * naming the block at fault otherwise. */
JsonNode *ab_acp_content_parse (const char *json, gsize len, gsize max_text,
                                char **text, GError **error);

G_END_DECLS
