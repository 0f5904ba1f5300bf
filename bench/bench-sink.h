/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker-bench — the receiving client: counts Update and TurnEnded
 * signals as they come off the socket, on GDBus's worker thread, so the
 * client is never what limits a measurement. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define BENCH_SESSION_IFACE "org.agentbroker.Session1"

typedef struct
{
  GMutex lock;
  guint64 updates;  /* updates (array elements) in turns >= 1 */
  guint64 messages; /* Update signals in turns >= 1 */
  guint64 turns_ended;
  gint64 first_update_us; /* monotonic; 0 until one arrives */
  gint64 last_turn_ended_us;
  gboolean collect_latency;
  GArray *latency_us; /* of gint64: arrival - the agent's stamp */
  guint64 unstamped;
} BenchSink;

void bench_sink_init (BenchSink *sink, GDBusConnection *connection);
/* Forgets all counts; @collect_latency turns stamp parsing on. */
void bench_sink_reset (BenchSink *sink, gboolean collect_latency);
guint64 bench_sink_turns_ended (BenchSink *sink);
gint64 bench_sink_first_update (BenchSink *sink);
/* Runs the main context until @turns TurnEnded signals have arrived;
 * FALSE after @timeout_ms. */
gboolean bench_sink_wait_turns (BenchSink *sink, guint64 turns,
                                guint timeout_ms);
/* Same, until a first Update of a turn >= 1 has arrived. */
gboolean bench_sink_wait_first_update (BenchSink *sink, guint timeout_ms);

G_END_DECLS
