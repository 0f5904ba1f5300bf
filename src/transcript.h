/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — a session's transcript: its prompts and its agent's
 * updates, in order, for clients that come back to a conversation
 * (GetTranscript, agentctl acp's session/load)
 *
 * One JSON object a line in STORE_DIR/<SHA-256 of the thread>.transcript,
 * beside the session's record: {"turn":N,"prompt":[content blocks]} or
 * {"turn":N,"update":{session update}}, turn 0 for updates outside a
 * turn.  Appended as the session goes; when an append would take the
 * file past its bound (pool.transcript_bytes), the oldest lines are
 * dropped until it holds at most half of it, written anew (a temporary
 * file, then a rename).  Removed with the record.  Every write is a small
 * local one on the main loop; a failure is logged and costs only the
 * transcript, never the session.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Largest transcript read back (pool.transcript_bytes' limit). */
#define AB_TRANSCRIPT_MAX_BYTES (16 * 1024 * 1024)

typedef struct _AbTranscript AbTranscript;

AbTranscript *ab_transcript_new (const char *store_dir, const char *thread);
void ab_transcript_free (AbTranscript *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AbTranscript, ab_transcript_free)

/* A prompt of @turn: @content, the JSON text of its content blocks. */
void ab_transcript_add_prompt (AbTranscript *self, guint64 turn,
                               const char *content, guint64 max_bytes);
/* Updates of @turn (JSON text each, NULL-terminated). */
void ab_transcript_add_updates (AbTranscript *self, guint64 turn,
                                const char *const *updates, guint64 max_bytes);

/* The transcript of @thread as its lines, "" when there is none. */
char *ab_transcript_read (const char *store_dir, const char *thread,
                          GError **error);
/* Removes the transcript of @thread, if there is one. */
void ab_transcript_delete (const char *store_dir, const char *thread);

G_END_DECLS
