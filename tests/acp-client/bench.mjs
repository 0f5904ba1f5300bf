/* SPDX-License-Identifier: LGPL-2.1-or-later */
// agentbroker-acp-bench — how fast the official SDK's client reads a
// streamed answer from an ACP agent command, for `make bench`
// (acp_proxy_vs_direct: the same client reading `agentctl acp` and reading
// the demo agent itself).
//
//   node bench.mjs N CWD -- AGENT [ARGS...]
//
// initialize; session/new {CWD}; a warm-up prompt ("stream 10", so that
// an agent started on the first prompt is running); then "stream N 16",
// timed from the request to its answer, counting the agent_message_chunk
// updates that arrived meanwhile.  Prints "rate UPDATES_PER_SECOND
// UPDATES" and exits 0; exits 1 with the reason on stderr otherwise.

import { spawn } from "node:child_process";
import { performance } from "node:perf_hooks";
import { Readable, Writable } from "node:stream";

import * as acp from "@agentclientprotocol/sdk";

const dash = process.argv.indexOf("--");
if (dash !== 4 || dash + 1 >= process.argv.length) {
  console.error("usage: node bench.mjs N CWD -- AGENT [ARGS...]");
  process.exit(2);
}
const count = Number(process.argv[2]);
const cwd = process.argv[3];
const command = process.argv.slice(dash + 1);

let chunks = 0;
const clientApp = acp
  .client({ name: "agentbroker-acp-bench" })
  .onNotification(acp.methods.client.session.update, ({ params }) => {
    if (params.update.sessionUpdate === "agent_message_chunk") chunks++;
  })
  .onRequest(acp.methods.client.session.requestPermission, () => ({ outcome: { outcome: "cancelled" } }));

const child = spawn(command[0], command.slice(1), { stdio: ["pipe", "pipe", "inherit"] });
const exited = new Promise((resolve) => child.on("exit", resolve));
const stream = acp.ndJsonStream(Writable.toWeb(child.stdin), Readable.toWeb(child.stdout));
try {
  const result = await clientApp.connectWith(stream, async (agent) => {
    await agent.request(acp.methods.agent.initialize, {
      protocolVersion: acp.PROTOCOL_VERSION,
      clientCapabilities: {},
      clientInfo: { name: "agentbroker-acp-bench", version: "0.1.0" },
    });
    const { sessionId } = await agent.request(acp.methods.agent.session.new, { cwd, mcpServers: [] });
    const text = (t) => [{ type: "text", text: t }];
    await agent.request(acp.methods.agent.session.prompt, { sessionId, prompt: text("stream 10") });
    chunks = 0;
    const t0 = performance.now();
    const answer = await agent.request(acp.methods.agent.session.prompt, {
      sessionId,
      prompt: text(`stream ${count} 16`),
    });
    const seconds = (performance.now() - t0) / 1000;
    if (answer.stopReason !== "end_turn") throw new Error(`the turn ended ${answer.stopReason}`);
    if (chunks !== count) throw new Error(`${chunks} of ${count} updates arrived`);
    return chunks / seconds;
  });
  console.log(`rate ${result} ${chunks}`);
  child.stdin.end();
  await exited;
  process.exit(0);
} catch (error) {
  console.error(`agentbroker-acp-bench: ${error.stack ?? error}`);
  child.kill();
  process.exit(1);
}
