/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker-demo-agent — running a turn: its planned steps, each after
 * its delay, from the main loop, so that a session/cancel on stdin can
 * overtake a turn that is still streaming; the permission requests and
 * their answers; the end of the turn
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib.h>
#include <json-glib/json-glib.h>

#include "demo-agent.h"

#define DEMO_GATE_POLL_MS 20
/* Steps without delay run in batches, so a fast stream still lets a
 * session/cancel on stdin in between batches. */
#define DEMO_STEPS_PER_DISPATCH 64

void
demo_step_free (gpointer data)
{
  DemoStep *step = data;

  g_free (step->text);
  if (step->update != NULL)
    json_object_unref (step->update);
  g_free (step);
}

DemoStep *
turn_add_step (DemoTurn *turn, DemoStepKind kind, guint delay_ms)
{
  DemoStep *step = g_new0 (DemoStep, 1);

  step->kind = kind;
  step->delay_ms = delay_ms;
  g_queue_push_tail (&turn->steps, step);
  return step;
}

void
turn_add_text (DemoTurn *turn, guint delay_ms, const char *text)
{
  turn_add_step (turn, STEP_TEXT, delay_ms)->text = g_strdup (text);
}

void
turn_add_update (DemoTurn *turn, guint delay_ms, JsonObject *update)
{
  turn_add_step (turn, STEP_UPDATE, delay_ms)->update = update;
}

static void
turn_free (DemoTurn *turn)
{
  if (turn->source_id != 0)
    g_source_remove (turn->source_id);
  if (turn->session != NULL && turn->session->turn == turn)
    turn->session->turn = NULL;
  json_node_unref (turn->request_id);
  g_queue_clear_full (&turn->steps, demo_step_free);
  g_free (turn->tool_call_id);
  g_free (turn->flood_title);
  g_string_free (turn->reply, TRUE);
  if (turn->pace_timerfd >= 0)
    close (turn->pace_timerfd);
  g_free (turn);
}

/* With the flag "usage": what the session has cost so far, made up from
 * the prompts it remembers (1000 tokens and 0.25 USD each, in a window
 * of 200000). */
static void
send_usage (DemoSession *session)
{
  guint prompts = session_count_prompts (session, &(const char *){ NULL });
  JsonObject *update = json_object_new ();
  JsonObject *cost = json_object_new ();

  json_object_set_string_member (update, "sessionUpdate", "usage_update");
  json_object_set_int_member (update, "used", 1000 * (gint64)prompts);
  json_object_set_int_member (update, "size", 200000);
  json_object_set_double_member (cost, "amount", 0.25 * prompts);
  json_object_set_string_member (cost, "currency", "USD");
  json_object_set_object_member (update, "cost", cost);
  send_update (session->id, update);
}

void
turn_finish (DemoTurn *turn, const char *stop_reason)
{
  JsonObject *result = json_object_new ();

  if (turn->reply->len > 0)
    session_remember (turn->session, "agent", turn->reply->str);
  if (agent.usage)
    send_usage (turn->session);
  json_object_set_string_member (result, "stopReason", stop_reason);
  send_result (turn->request_id, object_node (result));
  demo_log ("turn in session %s ended: %s", turn->session->id, stop_reason);
  turn_free (turn);
}

static void
turn_send_text (DemoTurn *turn, const char *text)
{
  g_string_append (turn->reply, text);
  send_update (turn->session->id,
               chunk_update_new ("agent_message_chunk", text));
}

/* Stream chunks are written without a JSON library: the session id has a
 * tame alphabet (session_id_is_valid) and the text is digits, "t=" and
 * 'x', so nothing needs escaping. A chunk costs one formatted write, so
 * the agent's own CPU stays small next to the daemon's in the benchmark
 * that measures the daemon. The members are in the order send_update()
 * gives them. */
static void
turn_send_stream_chunk (DemoTurn *turn)
{
  g_autoptr (GString) line = g_string_sized_new (192 + turn->stream_bytes);
  gsize text_start;

  g_string_append_printf (line,
                          "{\"jsonrpc\":\"2.0\",\"method\":\"session/update\","
                          "\"params\":{\"sessionId\":\"%s\",\"update\":{"
                          "\"sessionUpdate\":\"agent_message_chunk\","
                          "\"content\":{\"type\":\"text\",\"text\":\"",
                          turn->session->id);
  text_start = line->len;
  g_string_append_printf (line, "%" G_GUINT64_FORMAT " ", turn->stream_next);
  if (turn->stream_stamp)
    g_string_append_printf (line, "t=%" G_GINT64_FORMAT " ",
                            g_get_monotonic_time ());
  while (line->len - text_start < turn->stream_bytes)
    g_string_append_c (line, 'x');
  /* Not added to the reply: a stream of a million chunks is not history. */
  g_string_append (line, "\"}}}}");
  write_line (line->str, line->len);
}

static void
turn_send_long_line (DemoTurn *turn, guint64 target)
{
  g_autoptr (JsonObject) message = message_new ();
  JsonObject *params = json_object_new ();
  JsonObject *update = chunk_update_new ("agent_message_chunk", "");
  g_autoptr (JsonNode) node = NULL;
  g_autofree char *empty = NULL;
  g_autofree char *padding = NULL;
  g_autofree char *text = NULL;
  gsize overhead;

  json_object_set_string_member (message, "method", "session/update");
  json_object_set_string_member (params, "sessionId", turn->session->id);
  json_object_set_object_member (params, "update", update);
  json_object_set_object_member (message, "params", params);
  node = json_node_init_object (json_node_alloc (), message);

  /* Measure the envelope, then pad the text so the line has target bytes
   * (not counting the newline). */
  empty = json_to_string (node, FALSE);
  overhead = strlen (empty);
  padding = g_strnfill (target > overhead ? target - overhead : 0, 'x');
  json_object_set_string_member (
      json_object_get_object_member (update, "content"), "text", padding);
  text = json_to_string (node, FALSE);
  write_line (text, strlen (text));
}

/* Asks for permission to run a tool call titled @title; returns the
 * request's id. */
static gint64
send_permission_request (DemoTurn *turn, const char *title)
{
  static const char *const options[][3] = {
    { "allow_once", "Allow once", "allow_once" },
    { "allow_always", "Always allow", "allow_always" },
    { "reject_once", "Reject", "reject_once" },
  };
  g_autoptr (JsonObject) message = message_new ();
  JsonObject *params = json_object_new ();
  JsonArray *array = json_array_new ();
  gint64 id = ++agent.next_request_id;

  json_object_set_int_member (message, "id", id);
  json_object_set_string_member (message, "method",
                                 "session/request_permission");
  json_object_set_string_member (params, "sessionId", turn->session->id);
  json_object_set_object_member (
      params, "toolCall",
      tool_call_new (NULL, turn->tool_call_id, title, "edit", "pending"));
  for (guint i = 0; i < G_N_ELEMENTS (options); i++)
    {
      JsonObject *option = json_object_new ();

      json_object_set_string_member (option, "optionId", options[i][0]);
      json_object_set_string_member (option, "name", options[i][1]);
      json_object_set_string_member (option, "kind", options[i][2]);
      json_array_add_object_element (array, option);
    }
  json_object_set_array_member (params, "options", array);
  json_object_set_object_member (message, "params", params);
  send_message (message);
  return id;
}

static void
turn_send_permission_request (DemoTurn *turn)
{
  turn->permission_id = send_permission_request (turn, "Write demo.txt");
}

static void
turn_send_flood_request (DemoTurn *turn)
{
  gint64 id = send_permission_request (turn, turn->flood_title);

  if (agent.flood_first_id == 0)
    agent.flood_first_id = id;
  agent.flood_last_id = id;
  turn->flood_sent++;
}

void
turn_permission_answered (DemoTurn *turn, JsonObject *response)
{
  const char *chosen = "cancelled";
  JsonObject *result = NULL;
  JsonObject *outcome = NULL;
  g_autofree char *text = NULL;

  turn->permission_id = 0;
  if (json_object_has_member (response, "result")
      && JSON_NODE_HOLDS_OBJECT (json_object_get_member (response, "result")))
    result = json_object_get_object_member (response, "result");
  if (result != NULL && json_object_has_member (result, "outcome")
      && JSON_NODE_HOLDS_OBJECT (json_object_get_member (result, "outcome")))
    outcome = json_object_get_object_member (result, "outcome");
  if (outcome != NULL
      && g_strcmp0 (json_object_get_string_member_with_default (
                        outcome, "outcome", NULL),
                    "selected")
             == 0)
    chosen
        = json_object_get_string_member_with_default (outcome, "optionId", "?");
  else if (result == NULL)
    chosen = "error";

  text = g_strdup_printf ("permission: %s", chosen);
  turn_add_update (
      turn, 0,
      tool_call_new ("tool_call_update", turn->tool_call_id, NULL, NULL,
                     g_str_has_prefix (chosen, "allow") ? "completed"
                                                        : "failed"));
  turn_add_text (turn, 0, text);
  turn_schedule (turn);
}

static gboolean turn_run_cb (gpointer user_data);

static gboolean
on_pace_due (int fd, GIOCondition condition, gpointer user_data)
{
  guint64 expirations;

  if (read (fd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
    demo_log ("cannot read a timer: %s", g_strerror (errno));
  return turn_run_cb (user_data);
}

/* A paced stream's chunks are due at fixed times from its start, not a
 * fixed delay after the chunk before: timers re-armed after each chunk
 * drift, and agents started apart would drift into step.  A timerfd
 * rather than a GLib timeout, whose resolution is a millisecond. */
static void
pace_wait (DemoTurn *turn)
{
  struct itimerspec due = {
    .it_value = { .tv_sec = turn->pace_due_us / G_USEC_PER_SEC,
                  .tv_nsec = turn->pace_due_us % G_USEC_PER_SEC * 1000 },
  };

  if (turn->pace_timerfd < 0)
    turn->pace_timerfd
        = timerfd_create (CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  if (turn->pace_timerfd < 0
      || timerfd_settime (turn->pace_timerfd, TFD_TIMER_ABSTIME, &due, NULL)
             != 0)
    {
      demo_log ("cannot set a timer: %s; exiting", g_strerror (errno));
      exit (1);
    }
  turn->source_id
      = g_unix_fd_add (turn->pace_timerfd, G_IO_IN, on_pace_due, turn);
}

static gboolean
turn_run_cb (gpointer user_data)
{
  DemoTurn *turn = user_data;

  turn->source_id = 0;
  for (guint budget = DEMO_STEPS_PER_DISPATCH; budget > 0; budget--)
    {
      DemoStep *step = g_queue_peek_head (&turn->steps);

      if (step == NULL)
        {
          turn_finish (turn, "end_turn");
          return G_SOURCE_REMOVE;
        }
      if (step->delay_ms > 0)
        break;

      switch (step->kind)
        {
        case STEP_TEXT:
          turn_send_text (turn, step->text);
          break;
        case STEP_UPDATE:
          send_update (turn->session->id, g_steal_pointer (&step->update));
          break;
        case STEP_STREAM:
          if (turn->pace_interval_us > 0
              && g_get_monotonic_time () < turn->pace_due_us)
            {
              pace_wait (turn);
              return G_SOURCE_REMOVE;
            }
          turn_send_stream_chunk (turn);
          turn->pace_due_us += turn->pace_interval_us;
          if (turn->stream_next++ < step->n)
            continue; /* stay on this step */
          break;
        case STEP_PAUSE:
          break;
        case STEP_GATE:
          if (!g_file_test (step->text, G_FILE_TEST_EXISTS))
            {
              step->delay_ms = DEMO_GATE_POLL_MS;
              continue;
            }
          break;
        case STEP_HANG:
          demo_log ("hanging in session %s%s", turn->session->id,
                    turn->ignore_cancel ? " (ignoring cancel)" : "");
          return G_SOURCE_REMOVE;
        case STEP_CRASH:
          demo_log ("crashing on purpose in session %s", turn->session->id);
          _exit (3);
        case STEP_GARBAGE:
          write_line ("{this is not json", strlen ("{this is not json"));
          break;
        case STEP_LONGLINE:
          turn_send_long_line (turn, step->n);
          break;
        case STEP_PERMISSION:
          g_queue_pop_head (&turn->steps);
          demo_step_free (step);
          turn_send_permission_request (turn);
          return G_SOURCE_REMOVE; /* resumed by the client's answer */
        case STEP_FLOOD:
          if (step->n == 0)
            break;
          turn_send_flood_request (turn);
          if (turn->flood_sent < step->n)
            continue; /* stay on this step */
          break;
        case STEP_FAIL:
          send_error (turn->request_id, RPC_INTERNAL_ERROR, "demo failure",
                      "detailed demo failure");
          demo_log ("turn in session %s failed on purpose", turn->session->id);
          turn_free (turn);
          return G_SOURCE_REMOVE;
        }
      g_queue_pop_head (&turn->steps);
      demo_step_free (step);
    }
  turn_schedule (turn);
  return G_SOURCE_REMOVE;
}

void
turn_schedule (DemoTurn *turn)
{
  DemoStep *step = g_queue_peek_head (&turn->steps);

  g_assert (turn->source_id == 0);
  if (step != NULL && step->delay_ms > 0)
    {
      turn->source_id = g_timeout_add (step->delay_ms, turn_run_cb, turn);
      step->delay_ms = 0; /* waited for once the timer fires */
    }
  else
    turn->source_id = g_idle_add (turn_run_cb, turn);
}

void
turn_cancel (DemoTurn *turn)
{
  if (turn->ignore_cancel)
    {
      demo_log ("ignoring session/cancel for session %s", turn->session->id);
      return;
    }
  /* A late answer to a pending permission request is dropped: its turn is
   * over. */
  turn_finish (turn, "cancelled");
}
