/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker — ListSessions: a caller's filter and the compact reply
 *
 * The reply is an array of structs in a fixed order rather than one
 * dictionary per session: no key strings and no variant wrappers to
 * encode and decode, which was most of the cost of listing 10,000
 * sessions. The filter is applied here, in the daemon, so a client
 * asking for the running sessions does not receive the suspended ones.
 */

#include "config.h"

#include <string.h>

#include <glib/gi18n.h>

#include "error.h"
#include "session-list.h"

const char *const ab_session_list_fields[]
    = { "thread",    "agent",       "state",         "pid",   "owner",
        "cwd",       "created",     "last_activity", "turns", "queued",
        "last_turn", "last_reason", "switching",     "path",  "unit",
        "memory",    "cpu_nsec",    "tasks",         NULL };

static const struct
{
  const char *name;
  AbSessionState state;
} known_states[] = {
  { "starting", AB_SESSION_STATE_STARTING },
  { "idle", AB_SESSION_STATE_IDLE },
  { "busy", AB_SESSION_STATE_BUSY },
  { "suspended", AB_SESSION_STATE_SUSPENDED },
  { "failed", AB_SESSION_STATE_FAILED },
};

/* InvalidArgument naming the unknown @name (shown as valid UTF-8 of at
 * most 64 bytes) and the @known ones. */
static void
set_unknown (GError **error, const char *what, const char *name,
             const char *known)
{
  g_autofree char *shown = g_utf8_make_valid (name, strnlen (name, 64));

  /* TRANSLATORS: what (e.g. "session state"), the name, the known names */
  g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
               _ ("unknown %s \"%s\"; known: %s"), what, shown, known);
}

static gboolean
parse_states (AbSessionFilter *filter, GVariant *value, GError **error)
{
  GVariantIter iter;
  const char *name;

  if (g_variant_n_children (value) > AB_SESSION_LIST_MAX_STATES)
    {
      g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                   _ ("more than %u states in \"states\""),
                   AB_SESSION_LIST_MAX_STATES);
      return FALSE;
    }
  g_variant_iter_init (&iter, value);
  while (g_variant_iter_next (&iter, "&s", &name))
    {
      gsize i;

      for (i = 0; i < G_N_ELEMENTS (known_states); i++)
        if (g_str_equal (name, known_states[i].name))
          break;
      if (i == G_N_ELEMENTS (known_states))
        {
          set_unknown (error, _ ("session state"), name,
                       "starting, idle, busy, suspended, failed");
          return FALSE;
        }
      filter->states |= 1u << known_states[i].state;
    }
  return TRUE;
}

gboolean
ab_session_filter_parse (AbSessionFilter *filter, GVariant *options,
                         GError **error)
{
  GVariantIter iter;
  const char *key;
  GVariant *value;

  *filter = (AbSessionFilter){ 0 };
  g_variant_iter_init (&iter, options);
  while (g_variant_iter_loop (&iter, "{&sv}", &key, &value))
    {
      const GVariantType *want;

      if (g_str_equal (key, "states"))
        want = G_VARIANT_TYPE_STRING_ARRAY;
      else if (g_str_equal (key, "profile"))
        want = G_VARIANT_TYPE_STRING;
      else if (g_str_equal (key, "owner"))
        want = G_VARIANT_TYPE_UINT32;
      else if (g_str_equal (key, "own"))
        want = G_VARIANT_TYPE_BOOLEAN;
      else
        {
          set_unknown (error, _ ("option"), key, "states, profile, owner, own");
          goto fail;
        }
      if (!g_variant_is_of_type (value, want))
        {
          g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                       _ ("option \"%s\" must be of type %s"), key,
                       g_variant_type_peek_string (want));
          goto fail;
        }
      if (g_str_equal (key, "states"))
        {
          if (!parse_states (filter, value, error))
            goto fail;
        }
      else if (g_str_equal (key, "profile"))
        {
          gsize length;
          const char *profile = g_variant_get_string (value, &length);

          if (length == 0 || length > AB_SESSION_LIST_MAX_PROFILE)
            {
              g_set_error (error, AB_ERROR, AB_ERROR_INVALID_ARGUMENT,
                           _ ("option \"profile\" must be 1 to %u bytes"),
                           AB_SESSION_LIST_MAX_PROFILE);
              goto fail;
            }
          g_free (filter->profile);
          filter->profile = g_strdup (profile);
        }
      else if (g_str_equal (key, "own"))
        filter->own = g_variant_get_boolean (value);
      else
        {
          filter->by_owner = TRUE;
          filter->owner = g_variant_get_uint32 (value);
        }
    }
  return TRUE;

fail:
  g_variant_unref (value);
  ab_session_filter_clear (filter);
  return FALSE;
}

void
ab_session_filter_clear (AbSessionFilter *filter)
{
  g_clear_pointer (&filter->profile, g_free);
  *filter = (AbSessionFilter){ 0 };
}

gboolean
ab_session_filter_match (const AbSessionFilter *filter, AbSession *session)
{
  if (filter->states != 0
      && (filter->states & (1u << ab_session_get_state (session))) == 0)
    return FALSE;
  if (filter->by_owner && ab_session_get_owner (session) != filter->owner)
    return FALSE;
  if (filter->profile != NULL
      && !g_str_equal (filter->profile, ab_session_get_agent (session)))
    return FALSE;
  return TRUE;
}

static const char *
or_empty (const char *s)
{
  return s != NULL ? s : "";
}

/* Built from its children rather than from a format string: parsing
 * the format for each of 10,000 sessions was a third of the reply's
 * cost. */
GVariant *
ab_session_list_entry (AbSession *session)
{
  AbAgentUsage usage;

  ab_session_get_usage (session, &usage);
  GVariant *fields[] = {
    g_variant_new_string (ab_session_get_thread (session)),
    g_variant_new_string (ab_session_get_agent (session)),
    g_variant_new_string (
        ab_session_state_to_string (ab_session_get_state (session))),
    g_variant_new_uint32 (ab_session_get_pid (session)),
    g_variant_new_uint32 ((guint32)ab_session_get_owner (session)),
    g_variant_new_string (or_empty (ab_session_get_cwd (session))),
    g_variant_new_uint64 ((guint64)ab_session_get_created (session)),
    g_variant_new_uint64 ((guint64)ab_session_get_last_activity (session)),
    g_variant_new_uint32 ((guint32)ab_session_get_turns (session)),
    g_variant_new_uint32 (ab_session_get_queued (session)),
    g_variant_new_uint64 (ab_session_get_last_turn (session)),
    g_variant_new_string (or_empty (ab_session_get_last_reason (session))),
    g_variant_new_boolean (ab_session_is_switching (session)),
    g_variant_new_object_path (ab_session_get_path (session)),
    g_variant_new_string (or_empty (ab_session_get_unit (session))),
    g_variant_new_uint64 (usage.memory_bytes),
    g_variant_new_uint64 (usage.cpu_nsec),
    g_variant_new_uint64 (usage.tasks),
  };

  G_STATIC_ASSERT (G_N_ELEMENTS (fields)
                   == G_N_ELEMENTS (ab_session_list_fields) - 1);
  return g_variant_new_tuple (fields, G_N_ELEMENTS (fields));
}

static GVariant *
details_entry (const char *key, GVariant *value)
{
  return g_variant_new_dict_entry (g_variant_new_string (key),
                                   g_variant_new_variant (value));
}

/* The keys after ListSessions' own. */
#define N_DETAILS 9

GVariant *
ab_session_details (AbSession *session)
{
  GVariant *cached = ab_session_to_variant (session);
  gsize n = g_variant_n_children (cached);
  g_autofree GVariant **entries = g_new (GVariant *, n + N_DETAILS);
  GVariant *details;
  AbAgentUsage usage;
  AbAcpUsage tokens;

  ab_session_get_usage (session, &usage);
  ab_session_get_token_usage (session, &tokens);
  for (gsize i = 0; i < n; i++)
    entries[i] = g_variant_get_child_value (cached, i);
  entries[n] = details_entry (
      "unit", g_variant_new_string (or_empty (ab_session_get_unit (session))));
  entries[n + 1]
      = details_entry ("memory", g_variant_new_uint64 (usage.memory_bytes));
  entries[n + 2]
      = details_entry ("cpu_nsec", g_variant_new_uint64 (usage.cpu_nsec));
  entries[n + 3] = details_entry ("tasks", g_variant_new_uint64 (usage.tasks));
  entries[n + 4]
      = details_entry ("context_used", g_variant_new_uint64 (tokens.used));
  entries[n + 5]
      = details_entry ("context_size", g_variant_new_uint64 (tokens.size));
  entries[n + 6] = details_entry ("cost", g_variant_new_double (tokens.cost));
  entries[n + 7]
      = details_entry ("cost_currency", g_variant_new_string (tokens.currency));
  entries[n + 8] = details_entry (
      "title", g_variant_new_string (ab_session_get_title (session)));
  details
      = g_variant_new_array (G_VARIANT_TYPE ("{sv}"), entries, n + N_DETAILS);
  /* The array took its own references to the cached dictionary's entries. */
  for (gsize i = 0; i < n; i++)
    g_variant_unref (entries[i]);
  return details;
}

GVariant *
ab_session_list_build (GPtrArray *sessions, const AbSessionFilter *filter)
{
  g_autofree GVariant **entries = g_new (GVariant *, sessions->len + 1);
  guint n = 0;

  for (guint i = 0; i < sessions->len; i++)
    {
      AbSession *session = g_ptr_array_index (sessions, i);

      if (ab_session_filter_match (filter, session))
        entries[n++] = ab_session_list_entry (session);
    }
  return g_variant_new_array (G_VARIANT_TYPE (AB_SESSION_LIST_ENTRY_TYPE),
                              entries, n);
}

GPtrArray *
ab_session_list_to_dicts (GVariant *sessions)
{
  GPtrArray *dicts
      = g_ptr_array_new_with_free_func ((GDestroyNotify)g_variant_unref);
  GVariantIter iter;
  GVariant *entry;

  g_variant_iter_init (&iter, sessions);
  while ((entry = g_variant_iter_next_value (&iter)) != NULL)
    {
      g_auto (GVariantDict) dict = G_VARIANT_DICT_INIT (NULL);
      gsize n = g_variant_n_children (entry);

      for (gsize i = 0; i < n && ab_session_list_fields[i] != NULL; i++)
        {
          g_autoptr (GVariant) field = g_variant_get_child_value (entry, i);

          g_variant_dict_insert_value (&dict, ab_session_list_fields[i], field);
        }
      g_ptr_array_add (dicts, g_variant_ref_sink (g_variant_dict_end (&dict)));
      g_variant_unref (entry);
    }
  return dicts;
}
