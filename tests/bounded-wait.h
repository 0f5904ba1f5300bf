/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker tests — waits that end at their deadline
 *
 * g_main_context_iteration (ctx, TRUE) returns only when a source is
 * dispatched: a loop that checks its deadline after it never sees the
 * deadline when no event comes, and the test hangs instead of failing.
 * These helpers put a timeout source for the deadline in the context, so
 * the iteration returns by then at the latest.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

static inline gboolean
ab_bounded_wait_wake_cb (gpointer user_data)
{
  return G_SOURCE_REMOVE;
}

/* One iteration of @context (NULL: the thread-default one), blocking at
 * most until @deadline (g_get_monotonic_time() microseconds). Returns
 * whether it dispatched anything. */
static inline gboolean
ab_iterate_until_deadline (GMainContext *context, gint64 deadline)
{
  gint64 left = deadline - g_get_monotonic_time ();
  GSource *wake;
  gboolean dispatched;

  if (left <= 0)
    return g_main_context_iteration (context, FALSE);
  wake = g_timeout_source_new ((guint)MIN ((left + 999) / 1000, G_MAXUINT));
  g_source_set_callback (wake, ab_bounded_wait_wake_cb, NULL, NULL);
  g_source_set_static_name (wake, "[agentbroker tests] deadline");
  g_source_attach (
      wake, context != NULL ? context : g_main_context_get_thread_default ());
  dispatched = g_main_context_iteration (context, TRUE);
  g_source_destroy (wake);
  g_source_unref (wake);
  return dispatched;
}

/* Iterates the thread-default main context until @cond holds; when @ms
 * pass first, whether or not any event came, the test fails naming
 * @cond. */
#define AB_ITERATE_UNTIL(cond, ms)                                             \
  G_STMT_START                                                                 \
  {                                                                            \
    gint64 _deadline = g_get_monotonic_time () + (gint64)(ms)*1000;            \
    while (!(cond))                                                            \
      {                                                                        \
        if (g_get_monotonic_time () >= _deadline)                              \
          {                                                                    \
            g_autofree char *_msg = g_strdup_printf (                          \
                "timed out after %d ms waiting for: %s", (int)(ms), #cond);    \
            g_assertion_message (G_LOG_DOMAIN, __FILE__, __LINE__, G_STRFUNC,  \
                                 _msg);                                        \
            break;                                                             \
          }                                                                    \
        ab_iterate_until_deadline (NULL, _deadline);                           \
      }                                                                        \
  }                                                                            \
  G_STMT_END

static inline void
ab_bounded_wait_done_cb (GObject *source, GAsyncResult *result,
                         gpointer user_data)
{
  *(GAsyncResult **)user_data = g_object_ref (result);
}

/* Runs an asynchronous operation to its end or @ms, in a context of its
 * own (nothing else is dispatched meanwhile): @start (@object, @callback,
 * @callback_data) begins it; returns its result to pass to the _finish()
 * function, or NULL when @ms passed first. */
typedef void (*AbBoundedStartFunc) (gpointer object,
                                    GAsyncReadyCallback callback,
                                    gpointer callback_data);

static inline GAsyncResult *
ab_run_bounded (gpointer object, AbBoundedStartFunc start, guint ms)
{
  g_autoptr (GMainContext) context = g_main_context_new ();
  gint64 deadline = g_get_monotonic_time () + (gint64)ms * 1000;
  GAsyncResult *result = NULL;

  g_main_context_push_thread_default (context);
  start (object, ab_bounded_wait_done_cb, &result);
  while (result == NULL && g_get_monotonic_time () < deadline)
    ab_iterate_until_deadline (context, deadline);
  g_main_context_pop_thread_default (context);
  return result;
}

G_END_DECLS
