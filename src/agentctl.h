/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentctl — what the files of the command-line client share: the
 * client's state, its verbs, its exit statuses and the helpers that more
 * than one verb calls */
#pragma once

#include <stdio.h>

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "ab-dbus.h"

G_BEGIN_DECLS

/* Exit statuses besides EXIT_SUCCESS and EXIT_FAILURE. */
#define AB_EXIT_CANCELLED 3  /* prompt: cancelled, interrupted, timeout */
#define AB_EXIT_LIMIT 4      /* prompt: max_tokens, max_turn_requests, … */
#define AB_EXIT_NO_SESSION 4 /* other verbs: as systemctl's "no such unit" */
#define AB_EXIT_SIGINT 130   /* a second Ctrl+C */

typedef struct _AbCtlVerb AbCtlVerb;

typedef struct
{
  GDBusConnection *connection;
  AbDBusBroker1 *broker;
  const AbCtlVerb *verb;
  gboolean system_bus;
  /* display options, before or after the verb */
  gboolean json;        /* -o json, -o json-pretty, --json */
  gboolean json_pretty; /* one object over several lines */
  gboolean no_legend;
  gboolean no_pager; /* accepted: agentctl has no pager */
  gboolean quiet;
  gboolean full;
  gboolean value;
  GPtrArray *properties; /* -p NAME, as given; NULL: all */
} AbCtl;

/* A verb, with @argv[0] its name; returns the exit status. */
typedef int (*AbCtlVerbFunc) (AbCtl *ctl, int argc, char **argv);

struct _AbCtlVerb
{
  const char *name;
  const char *options; /* the verb's own, for the usage line */
  const char *args;
  const char *summary;
  AbCtlVerbFunc func;
  gboolean admin; /* for access.admins only */
};

/* ---- agentctl.c: options, the verb table, main --------------------- */

/* "agentctl: MESSAGE" on standard error; returns EXIT_FAILURE. */
int fail (const char *format, ...) G_GNUC_PRINTF (1, 2);
/* The verb's usage line on standard error; returns EXIT_FAILURE. */
int fail_usage (AbCtl *ctl);
/* @node on standard output, pretty with -o json-pretty; @node stays the
 * caller's. */
void print_json (AbCtl *ctl, JsonNode *node);
/* Parses the options after the verb (@entries, the verb's own, beside
 * the display options) and connects to the broker.  On failure, the
 * message is printed and *@status is the exit status. */
gboolean parse_verb_options (AbCtl *ctl, const GOptionEntry *entries,
                             gboolean strict_posix, int *argc, char ***argv,
                             int *status);

/* ---- agentctl-bus.c: the broker on the bus ------------------------- */

/* The verb being run, and whether it is one for admins only: what an
 * access refusal is explained with.  Set by main (). */
extern const char *running_verb;
extern gboolean running_admin_verb;

/* Sets @ctl's connection and broker proxy (both owned by @ctl). */
gboolean connect_broker (AbCtl *ctl, GError **error);
/* @error (a D-Bus error, whose remote name is stripped) as one line;
 * returns the exit status. */
int fail_dbus (GError *error);
/* ListSessions(), only the sessions in @states if not NULL. */
gboolean list_sessions (AbCtl *ctl, const char *const *states,
                        GVariant **sessions, GError **error);
/* A session dictionary's string (or object path) at @key, "" when it
 * has none; owned by @dict. */
const char *dict_string (GVariant *dict, const char *key);
/* A session dictionary's number at @key, 0 when it has none. */
guint64 dict_number (GVariant *dict, const char *key);
/* The object path of @thread's session (free it). */
char *session_path (const char *thread);
/* The thread of a session object path, or @path itself (free it). */
char *thread_from_path (const char *path);

/* ---- agentctl-list.c: list, and times and users as text ------------ */

/* The user name of @uid, or the number when it has none (free it). */
char *user_name (guint32 uid);
/* @usec since the epoch as a local date, "-" for 0 (free it). */
char *format_time (guint64 usec);
/* How long ago @usec was: "5s", "3m", "2h", "4d"; "-" for 0 (free it). */
char *format_age (guint64 usec);
/* A unit's memory as systemctl shows it ("12.4M"), "-" when unknown
 * (G_MAXUINT64). */
char *format_bytes (guint64 bytes);
/* CPU time: "1.2s", "3min 4s", "2h 5min"; "-" when unknown. */
char *format_cpu (guint64 nsec);

int verb_list (AbCtl *ctl, int argc, char **argv);

/* ---- agentctl-show.c ----------------------------------------------- */

int verb_show (AbCtl *ctl, int argc, char **argv);
int verb_status (AbCtl *ctl, int argc, char **argv);

/* ---- agentctl-stream.c: streamed answers as text ------------------- */

/* Standard output while answers stream: message chunks arrive in pieces
 * and may end mid-line; every other event takes a line of its own on
 * @events: standard output for watch, standard error for prompt, whose
 * standard output is the answer alone.  Each line starts with @prefix
 * (empty for prompt, "<thread> <turn>: " for watch). */
typedef struct
{
  gboolean mid_line;
  char *prefix;       /* of the unfinished line */
  FILE *events;       /* NULL: stdout */
  GHashTable *titles; /* "<prefix>\n<toolCallId>" → the tool call's title */
} AbStream;

/* Ends an unfinished line of standard output. */
void stream_end_line (AbStream *stream);
/* Before a line on @stream's events: ends the unfinished answer line on
 * a terminal. */
void stream_break (AbStream *stream);
/* Frees what @stream holds; the struct stays the caller's. */
void stream_clear (AbStream *stream);
/* @line, after @prefix, as a line of its own on @stream's events. */
void stream_line (AbStream *stream, const char *prefix, const char *line);
/* One ACP SessionUpdate (JSON text) as text. */
void stream_update (AbStream *stream, const char *prefix,
                    const char *update_json);
/* The title of a session/request_permission and its option ids (free
 * both). */
void describe_permission (const char *request_json, char **out_title,
                          char **out_options);

/* ---- agentctl-prompt.c --------------------------------------------- */

int verb_prompt (AbCtl *ctl, int argc, char **argv);
int verb_watch (AbCtl *ctl, int argc, char **argv);

/* ---- agentctl-acp.c ------------------------------------------------ */

int verb_acp (AbCtl *ctl, int argc, char **argv);

/* ---- agentctl-acp-info.c ------------------------------------------- */

/* ListProfiles' "agent" of a profile as an object; NULL if none. */
JsonNode *acp_parse_agent (const char *description);
/* The front door's initialize answer for @profile, whose agent @agent
 * (may be NULL) describes. */
JsonNode *acp_initialize_result (const char *profile, JsonObject *agent);
/* Adds to a session/new @answer the "modes" and "configOptions" @agent
 * (may be NULL) last gave a session, those of ACP's shape. */
void acp_add_session_setup (JsonObject *answer, JsonObject *agent);

/* ---- agentctl-control.c -------------------------------------------- */

int verb_cancel (AbCtl *ctl, int argc, char **argv);
int verb_remove (AbCtl *ctl, int argc, char **argv);
int verb_kill (AbCtl *ctl, int argc, char **argv);
int verb_answer (AbCtl *ctl, int argc, char **argv);
int verb_resume (AbCtl *ctl, int argc, char **argv);
int verb_drain (AbCtl *ctl, int argc, char **argv);
int verb_reload (AbCtl *ctl, int argc, char **argv);

G_END_DECLS
