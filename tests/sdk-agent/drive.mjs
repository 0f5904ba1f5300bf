/* SPDX-License-Identifier: LGPL-2.1-or-later */
// Smoke check: drive an ACP agent through the official SDK's client side.
//
//   node drive.mjs                       # drives agent.mjs (this directory)
//   node drive.mjs -- CMD [ARGS...]      # drives any agent, e.g.
//   node drive.mjs -- ../../src/agentbroker-demo-agent
//
// Runs initialize → session/new → prompt → prompt "sleep 10" + session/cancel
// → prompt → restart the agent → session/load (history replayed) → prompt,
// checking the answers.  The SDK validates everything the agent sends, so this
// also checks an agent's wire format.  Exits 0 on success, 1 on failure.

import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable, Writable } from "node:stream";
import { fileURLToPath } from "node:url";

import * as acp from "@agentclientprotocol/sdk";

const here = path.dirname(fileURLToPath(import.meta.url));
const dash = process.argv.indexOf("--");
const command =
  dash >= 0 ? process.argv.slice(dash + 1) : [process.execPath, path.join(here, "agent.mjs")];

const updates = []; // every session/update received, in order
let permissionRequests = 0;

function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
  console.log(`ok - ${what}`);
}

function textSince(start, kind = "agent_message_chunk") {
  return updates
    .slice(start)
    .filter((n) => n.update.sessionUpdate === kind && n.update.content.type === "text")
    .map((n) => n.update.content.text)
    .join("");
}

async function waitFor(predicate, what, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const clientApp = acp
  .client({ name: "agentbroker-sdk-drive" })
  .onNotification(acp.methods.client.session.update, ({ params }) => {
    updates.push(params);
  })
  .onRequest(acp.methods.client.session.requestPermission, ({ params }) => {
    permissionRequests++;
    const option = params.options.find((o) => o.kind === "allow_once") ?? params.options[0];
    return { outcome: { outcome: "selected", optionId: option.optionId } };
  });

// Spawns the agent and runs op with a connected ClientContext.
async function withAgent(op) {
  const child = spawn(command[0], command.slice(1), { stdio: ["pipe", "pipe", "inherit"] });
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const stream = acp.ndJsonStream(Writable.toWeb(child.stdin), Readable.toWeb(child.stdout));
  try {
    return await clientApp.connectWith(stream, async (agent) => {
      const init = await agent.request(acp.methods.agent.initialize, {
        protocolVersion: acp.PROTOCOL_VERSION,
        clientCapabilities: {},
        clientInfo: { name: "agentbroker-sdk-drive", version: "0.1.0" },
      });
      check(init.protocolVersion === 1, "initialize: protocolVersion 1");
      check(init.agentCapabilities?.loadSession === true, "initialize: loadSession advertised");
      return await op(agent, init);
    });
  } finally {
    child.stdin.end();
    const { code, signal } = await exited;
    check(code === 0, `agent exited with 0 after stdin closed (code ${code}, signal ${signal})`);
  }
}

function prompt(agent, sessionId, text) {
  return agent.request(acp.methods.agent.session.prompt, {
    sessionId,
    prompt: [{ type: "text", text }],
  });
}

const cwd = await mkdtemp(path.join(tmpdir(), "sdk-drive-"));
try {
  let sessionId;
  let agentName;

  await withAgent(async (agent, init) => {
    agentName = init.agentInfo?.name;
    ({ sessionId } = await agent.request(acp.methods.agent.session.new, { cwd, mcpServers: [] }));
    check(typeof sessionId === "string" && sessionId.length > 0, `session/new → ${sessionId}`);

    let start = updates.length;
    let res = await prompt(agent, sessionId, "hello");
    check(res.stopReason === "end_turn", "prompt 1: end_turn");
    const first = updates.slice(start).find((n) => n.update.sessionUpdate === "agent_message_chunk");
    if (agentName === "agentbroker-sdk-agent")
      check(first.update.content.text.startsWith("sdk-agent:"), "prompt 1: first chunk starts with sdk-agent:");
    check(textSince(start).includes("I remember 0 earlier prompts"), "prompt 1: remembers 0 prompts");
    check(
      updates.some((n) => n.update.sessionUpdate === "available_commands_update"),
      "available_commands_update arrived",
    );

    start = updates.length;
    const sleeping = prompt(agent, sessionId, "sleep 10");
    await waitFor(() => textSince(start).length > 0, "first chunk of sleep 10");
    const t0 = Date.now();
    await agent.notify(acp.methods.agent.session.cancel, { sessionId });
    res = await sleeping;
    check(res.stopReason === "cancelled", `sleep 10 + session/cancel: cancelled after ${Date.now() - t0} ms`);

    start = updates.length;
    res = await prompt(agent, sessionId, "second");
    check(res.stopReason === "end_turn", "prompt 3: end_turn");
    check(textSince(start).includes("I remember 2 earlier prompts"), "prompt 3: remembers 2 prompts");
    check(textSince(start).includes('"sleep 10"'), "prompt 3: quotes the previous prompt");

    if (agentName === "agentbroker-demo-agent") {
      start = updates.length;
      res = await prompt(agent, sessionId, "permission");
      check(res.stopReason === "end_turn" && permissionRequests === 1, "demo permission: asked once");
      check(textSince(start).includes("permission: allow_once"), "demo permission: reports allow_once");
      check(
        updates.slice(start).some((n) => n.update.sessionUpdate === "tool_call_update"),
        "demo permission: tool_call_update",
      );
      start = updates.length;
      res = await prompt(agent, sessionId, "stream 500 24 stamp");
      const chunks = updates.slice(start).map((n) => n.update.content.text);
      check(
        chunks.length === 500 && chunks.every((t, i) => t.startsWith(`${i + 1} t=`)),
        "demo stream: 500 ordered, stamped chunks",
      );
      try {
        await prompt(agent, sessionId, "error");
        check(false, "demo error: rejected");
      } catch (error) {
        check(error.code === -32603 && error.data?.message === "detailed demo failure", "demo error: -32603 with data");
      }
    }
  });

  // A new process must find the history on disk.
  await withAgent(async (agent) => {
    const start = updates.length;
    await agent.request(acp.methods.agent.session.load, { sessionId, cwd, mcpServers: [] });
    const replayed = updates.slice(start);
    check(
      replayed.some((n) => n.update.sessionUpdate === "user_message_chunk" && n.update.content.text === "hello"),
      `session/load replayed history (${replayed.length} updates)`,
    );
    const afterLoad = updates.length;
    const res = await prompt(agent, sessionId, "third");
    check(res.stopReason === "end_turn", "prompt after load: end_turn");
    const expected = agentName === "agentbroker-demo-agent" ? 6 : 3;
    check(
      textSince(afterLoad).includes(`I remember ${expected} earlier prompts`),
      `prompt after load: remembers ${expected} prompts`,
    );
    try {
      await agent.request(acp.methods.agent.session.load, {
        sessionId: sessionId.replace(/.$/, sessionId.endsWith("0") ? "1" : "0"),
        cwd,
        mcpServers: [],
      });
      check(false, "load of an unknown session fails");
    } catch (error) {
      check(typeof error.code === "number", `load of an unknown session fails (${error.code} ${error.message})`);
    }
  });
  console.log("all checks passed");
} catch (error) {
  console.error("FAIL:", error);
  process.exitCode = 1;
} finally {
  await rm(cwd, { recursive: true, force: true });
}
