/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agentbroker-bench — baselines without the daemon */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* The demo agent spawned by the bench, initialized, with a session. */
typedef struct _BenchDirect BenchDirect;

BenchDirect *bench_direct_start (const char *agent_path, const char *cwd,
                                 GError **error);
/* session/prompt; reads (and parses) every line until the response.
 * @chunks: agent_message_chunk updates seen; @first_chunk_us (may be NULL):
 * monotonic time of the first; @latency_us (may be NULL): gets, for each
 * chunk stamped by the agent ("pace"), how long it took to arrive (µs). */
gboolean bench_direct_prompt (BenchDirect *d, const char *text, guint64 *chunks,
                              gint64 *first_chunk_us, GArray *latency_us,
                              GError **error);
void bench_direct_free (BenchDirect *d);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (BenchDirect, bench_direct_free)

/* `agentbroker-bench --emit`: a second connection that sends @streams × @n
 * Update signals (one update each) to @dest — at @rate per second per
 * stream, or as fast as it can when @rate is 0 — then one TurnEnded per
 * stream. Prints "ready" once connected and starts on a line on stdin. */
int bench_emitter_main (const char *address, const char *dest, guint64 n,
                        guint bytes, guint rate, guint streams);

/* `agentbroker-bench --floor`: the simplest relay there is for the
 * daemon's job at a steady rate. Spawns and handshakes @streams demo agents
 * (@agent_path, in @cwd), prints "ready" and, on a line on stdin, prompts
 * each with `pace @rate @n @bytes` starting @start_ms later, at the offsets
 * the bench gives the daemon's agents; reads their pipes in one poll()
 * loop, parses each line with json-glib and sends each update on to @dest
 * as an Update signal of its own (then a TurnEnded per answer). No
 * records, no access checks, no batching. Ends by printing "cpu R A": the
 * cores it (R) and its agents (A) used from the first update to the last
 * answer. `--agents` (@relay FALSE): the same agents, but their updates are
 * read and dropped, unparsed, and nothing is sent: their load alone. */
int bench_floor_main (const char *address, const char *dest,
                      const char *agent_path, const char *cwd, guint streams,
                      guint rate, guint64 n, guint bytes, double start_ms,
                      gboolean relay);

/* A trivial GDBus service on its own thread and connection: answers
 * ListSessions on the broker's path and interface with @reply (a copy of
 * it in the tree form the daemon answers from), doing nothing else. What
 * any GDBus daemon pays for that reply. */
typedef struct _BenchLister BenchLister;

BenchLister *bench_lister_start (const char *address, GVariant *reply,
                                 GError **error);
/* Its unique name on the bus. */
const char *bench_lister_name (BenchLister *l);
void bench_lister_stop (BenchLister *l);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (BenchLister, bench_lister_stop)

/* GDBus alone, in this process, no bus: turning @reply (the body of a
 * ListSessions answer, in the daemon's tree form) into the bytes of a
 * D-Bus message, and those bytes back into a message. */
void bench_marshal_times (GVariant *reply, double *encode_ms,
                          double *decode_ms);

G_END_DECLS
