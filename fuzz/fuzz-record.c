/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — libFuzzer target for the session-record loader
 *
 * Session records in the state directory are read back as untrusted input
 * (a previous instance cut off mid-write, a disk error, a hand edit).
 * Arbitrary bytes go to ab_session_record_parse(); a record it accepts
 * must satisfy every bound it promises, and writing it out again must
 * give a file that is read back to the same record and still fits the
 * size limit, or the next start would move a good session aside.
 *
 * Every text is read twice, by the fast reader of the daemon's own format
 * and by json-glib alone: both must refuse it with the same message, or
 * both accept the same record.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "error.h"
#include "store.h"
#include "thread-id.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
check_bounds (const AbSessionRecord *r)
{
  if (!ab_thread_id_validate (r->thread, NULL) || r->agent == NULL
      || strlen (r->agent) > 64 || r->cwd == NULL || strlen (r->cwd) > 4096
      || (r->acp_session != NULL && strlen (r->acp_session) > 1024)
      || (r->last_reason != NULL && strlen (r->last_reason) > 64)
      || (r->running_text != NULL && strlen (r->running_text) > 1024 * 1024))
    abort ();
  if (r->last_turn > r->turns || r->running_turn > r->turns
      || r->interrupted_turn > r->turns || r->created < 0
      || r->last_activity < 0)
    abort ();
}

/* Every field but running_text */
static gboolean
same_fields (const AbSessionRecord *a, const AbSessionRecord *b)
{
  return g_strcmp0 (a->thread, b->thread) == 0
         && g_strcmp0 (a->agent, b->agent) == 0 && a->owner == b->owner
         && g_strcmp0 (a->cwd, b->cwd) == 0
         && g_strcmp0 (a->acp_session, b->acp_session) == 0
         && a->created == b->created && a->last_activity == b->last_activity
         && a->turns == b->turns && a->last_turn == b->last_turn
         && g_strcmp0 (a->last_reason, b->last_reason) == 0
         && a->running_turn == b->running_turn
         && a->interrupted_turn == b->interrupted_turn
         && a->interrupted_reported == b->interrupted_reported;
}

static void
check_same (const AbSessionRecord *a, const AbSessionRecord *b)
{
  /* running_text is written only with the turn it belongs to */
  const char *text_a = a->running_turn != 0 ? a->running_text : NULL;

  if (!same_fields (a, b))
    abort ();
  if (a->running_turn != 0
      && g_strcmp0 (text_a != NULL ? text_a : "", b->running_text) != 0)
    abort ();
}

/* Every field, running_text too */
static void
check_identical (const AbSessionRecord *a, const AbSessionRecord *b)
{
  if (!same_fields (a, b) || g_strcmp0 (a->running_text, b->running_text) != 0)
    abort ();
}

/* @data read the daemon's way, after checking that json-glib alone reads
 * the same */
static AbSessionRecord *
parse (const char *data, size_t size, GError **error)
{
  g_autoptr (GError) slow_error = NULL;
  g_autoptr (AbSessionRecord) slow = NULL;
  AbSessionRecord *fast;

  fast = ab_session_record_parse_full (data, size, TRUE, error);
  slow = ab_session_record_parse_full (data, size, FALSE, &slow_error);
  if ((fast == NULL) != (slow == NULL))
    {
      fprintf (stderr, "fast reader %s, json-glib %s\n",
               fast != NULL ? "accepts" : (*error)->message,
               slow != NULL ? "accepts" : slow_error->message);
      abort ();
    }
  if (fast == NULL)
    {
      if ((*error)->domain != slow_error->domain
          || (*error)->code != slow_error->code
          || strcmp ((*error)->message, slow_error->message) != 0)
        {
          fprintf (stderr, "fast reader: %s\njson-glib: %s\n",
                   (*error)->message, slow_error->message);
          abort ();
        }
      return NULL;
    }
  check_identical (fast, slow);
  return fast;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GError) again_error = NULL;
  g_autoptr (AbSessionRecord) record = NULL;
  g_autoptr (AbSessionRecord) again = NULL;
  g_autofree char *json = NULL;

  record = parse ((const char *)data, size, &error);
  if ((record == NULL) == (error == NULL))
    abort ();
  if (record == NULL)
    return 0;

  check_bounds (record);
  json = ab_session_record_to_json (record);
  if (strlen (json) > AB_STORE_MAX_RECORD_BYTES)
    abort ();
  again = parse (json, strlen (json), &again_error);
  if (again == NULL)
    abort ();
  check_same (record, again);
  return 0;
}
