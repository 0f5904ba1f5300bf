/* SPDX-License-Identifier: LGPL-2.1-or-later */
// agentbroker-acp-client — an ACP client on the official TypeScript SDK
// (@agentclientprotocol/sdk, pinned in package-lock.json) that drives
// `agentctl acp`, the broker's ACP front door.  The SDK validates every
// message the front door sends against the ACP schema.
//
//   node client.mjs first -- agentctl --user acp
//       initialize; session/new; a prompt streaming 1000 chunks (in
//       order); an image block the agent reports byte-identical; a
//       permission request allowed, then one rejected, by this client;
//       a prompt cancelled with session/cancel.  Prints the session id.
//   node client.mjs resume SESSION -- agentctl --user acp
//       a new client: initialize (the agent's prompt capabilities are
//       known now); session/list shows SESSION; session/resume SESSION
//       with no replay; a prompt goes on in the same broker session; the
//       agent titles it and session/list shows the title; session/new
//       answers with the modes and options the agent gave;
//       session/set_mode and session/set_config_option reach the agent;
//       session/close; a prompt on the closed session is refused.
//   node client.mjs load SESSION -- agentctl --user acp
//       a new client: session/load SESSION replays the conversation (the
//       prompts, the 1000 chunks in order, the image) as session/update
//       notifications before it answers; a prompt goes on.
//   node client.mjs delete SESSION -- agentctl --user acp
//       session/delete SESSION; resuming it again is resource-not-found.
//
//   node client.mjs load-live SESSION GATE -- agentctl --user acp
//       SESSION has a turn waiting (the demo agent's "gate GATE pace 2000
//       3000", prompted by someone else): this client opens the gate, and
//       while the chunks flow, session/load replays the turn so far and
//       the rest follows live: 3000 chunks in order, none missed, none
//       twice.
//
// Against a broker whose profile runs tests/sdk-agent (the official SDK's
// agent), with what that agent reports of its own memory checked:
//   node client.mjs sdk-first -- agentctl --user acp
//       initialize; session/new; a prompt the agent answers remembering
//       nothing; a prompt streaming 500
//       chunks in order; a prompt cancelled with session/cancel.
//   node client.mjs sdk-resume SESSION -- agentctl --user acp
//       initialize names the SDK agent (the broker has seen it now);
//       session/resume with no replay; the agent remembers the 3 prompts.
//   node client.mjs sdk-load SESSION -- agentctl --user acp
//       session/load replays the 4 prompts and the 500 chunks in order;
//       the agent then remembers the 4 prompts.
//
// Each step prints "ok - WHAT"; the last line is "result JSON".  Exits 0
// when every check held, 1 otherwise (the reason on stderr).

import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { Readable, Writable } from "node:stream";

import * as acp from "@agentclientprotocol/sdk";

const dash = process.argv.indexOf("--");
if (dash < 0 || dash + 1 >= process.argv.length) {
  console.error("usage: node client.mjs PHASE [SESSION] -- AGENT [ARGS...]");
  process.exit(2);
}
const [phase, sessionArg] = process.argv.slice(2, dash);
// load-live's gate is process.argv[4], before the "--"
const command = process.argv.slice(dash + 1);
const TURN_MS = 30000;
const [LIVE_RATE, LIVE_N] = [2000, 3000]; // load-live's stream

const updates = []; // every session/update received, in order
const permissionAnswers = []; // the optionId this client picks, in order
let permissionRequests = [];

function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
  console.log(`ok - ${what}`);
}

function chunksSince(start) {
  return updates
    .slice(start)
    .filter((n) => n.update.sessionUpdate === "agent_message_chunk" && n.update.content.type === "text")
    .map((n) => n.update.content.text);
}

async function waitFor(predicate, what, ms = TURN_MS) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function rejects(promise, code, what) {
  try {
    await promise;
  } catch (error) {
    check(error.code === code, `${what}: error ${error.code} (${error.message})`);
    return error;
  }
  throw new Error(`check failed: ${what}: no error`);
}

const clientApp = acp
  .client({ name: "agentbroker-acp-client" })
  .onNotification(acp.methods.client.session.update, ({ params }) => {
    updates.push(params);
  })
  .onRequest(acp.methods.client.session.requestPermission, ({ params }) => {
    permissionRequests.push(params);
    const kind = permissionAnswers.shift() ?? "reject_once";
    const option = params.options.find((o) => o.kind === kind);
    if (!option) return { outcome: { outcome: "cancelled" } };
    return { outcome: { outcome: "selected", optionId: option.optionId } };
  });

async function withFrontDoor(op) {
  const child = spawn(command[0], command.slice(1), { stdio: ["pipe", "pipe", "inherit"] });
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  const stream = acp.ndJsonStream(Writable.toWeb(child.stdin), Readable.toWeb(child.stdout));
  try {
    return await clientApp.connectWith(stream, async (agent) => {
      const init = await agent.request(acp.methods.agent.initialize, {
        protocolVersion: acp.PROTOCOL_VERSION,
        clientCapabilities: { fs: { readTextFile: true, writeTextFile: true }, terminal: true },
        clientInfo: { name: "agentbroker-acp-client", version: "0.1.0" },
      });
      check(init.protocolVersion === 1, "initialize: protocolVersion 1");
      check(init.agentInfo?.name === "agentbroker", "initialize: the broker's agent info");
      check((init.authMethods ?? []).length === 0, "initialize: no auth methods");
      const sc = init.agentCapabilities?.sessionCapabilities ?? {};
      check(sc.list && sc.resume && sc.close, "initialize: session list, resume and close");
      return await op(agent, init);
    });
  } finally {
    child.stdin.end();
    const { code, signal } = await exited;
    console.log(`# agentctl acp exited: code ${code} signal ${signal}`);
  }
}

async function prompt(agent, sessionId, blocks) {
  const start = updates.length;
  const answer = await agent.request(acp.methods.agent.session.prompt, { sessionId, prompt: blocks });
  return { answer, chunks: chunksSince(start) };
}

const text = (t) => ({ type: "text", text: t });

async function first(agent) {
  const created = await agent.request(acp.methods.agent.session.new, { cwd: "/", mcpServers: [] });
  const { sessionId } = created;
  check(typeof sessionId === "string" && sessionId.startsWith("acp:"), `session/new: ${sessionId}`);
  // The profile's agent has never run on this broker: nothing to tell.
  check(created.modes === undefined && created.configOptions === undefined, "session/new: no modes yet");

  // 1000 chunks, in order, none lost.
  let { answer, chunks } = await prompt(agent, sessionId, [text("stream 1000 16")]);
  check(answer.stopReason === "end_turn", "stream: end_turn");
  check(chunks.length === 1000, `stream: 1000 chunks (${chunks.length})`);
  check(
    chunks.every((c, i) => c.startsWith(`${i + 1} `)),
    "stream: chunk i starts with i, in order",
  );
  // What the agent says outside a turn comes too.
  check(
    updates.some((n) => n.sessionId === sessionId && n.update.sessionUpdate === "available_commands_update"),
    "an update outside the turn: available_commands_update",
  );

  // An image arrives byte-identical.
  const image = randomBytes(48 * 1024);
  const sum = createHash("sha256").update(image).digest("hex");
  ({ answer, chunks } = await prompt(agent, sessionId, [
    text("blocks"),
    { type: "image", mimeType: "image/png", data: image.toString("base64") },
  ]));
  check(answer.stopReason === "end_turn", "image: end_turn");
  check(
    chunks.join("") === `block 0: text blocks\nblock 1: image image/png ${image.length} bytes sha256 ${sum}\n`,
    "image: the agent got it byte-identical",
  );

  // Permission requests come to this client: allowed, then rejected.
  permissionAnswers.push("allow_once", "reject_once");
  ({ answer, chunks } = await prompt(agent, sessionId, [text("permission")]));
  check(permissionRequests.length === 1, "permission: asked once");
  check(permissionRequests[0].sessionId === sessionId, "permission: about this session");
  check(chunks.join("").includes("permission: allow_once"), "permission: allowed");
  ({ answer, chunks } = await prompt(agent, sessionId, [text("permission")]));
  check(permissionRequests.length === 2, "permission: asked again");
  check(chunks.join("").includes("permission: reject_once"), "permission: rejected");

  // session/cancel ends the running prompt "cancelled".
  const start = updates.length;
  const running = agent.request(acp.methods.agent.session.prompt, { sessionId, prompt: [text("sleep 30")] });
  await waitFor(() => chunksSince(start).length > 0, "the first chunk of sleep");
  await agent.notify(acp.methods.agent.session.cancel, { sessionId });
  answer = await running;
  check(answer.stopReason === "cancelled", "cancel: cancelled");
  return { sessionId };
}

async function resume(agent, init) {
  const sessionId = sessionArg;
  check(
    init.agentCapabilities?.promptCapabilities?.image === true,
    "initialize: the agent's prompt capabilities as it advertised them",
  );
  const listed = await agent.request(acp.methods.agent.session.list, {});
  check(
    listed.sessions.some((s) => s.sessionId === sessionId && s.cwd.startsWith("/")),
    "session/list: the session, with its cwd",
  );
  const before = updates.length;
  await agent.request(acp.methods.agent.session.resume, { sessionId, cwd: "/", mcpServers: [] });
  check(updates.length === before, "session/resume: nothing replayed");
  const { answer, chunks } = await prompt(agent, sessionId, [text("echo after the resume")]);
  check(answer.stopReason === "end_turn", "resumed prompt: end_turn");
  check(chunks.join("") === "echo after the resume", "resumed prompt: answered");
  // The agent titles the session: session/list says so.
  const titled = await prompt(agent, sessionId, [text("title A refactor, titled")]);
  check(titled.chunks.join("") === "title set", "title: the agent set it");
  const relisted = await agent.request(acp.methods.agent.session.list, {});
  check(
    relisted.sessions.find((s) => s.sessionId === sessionId)?.title === "A refactor, titled",
    "session/list: the title the agent gave",
  );
  // A new session: the modes and options the profile's agent gave the
  // last session it opened (here: the one resumed, at its first start).
  const fresh = await agent.request(acp.methods.agent.session.new, { cwd: "/", mcpServers: [] });
  check(
    fresh.modes?.currentModeId === "ask" &&
      JSON.stringify(fresh.modes.availableModes.map((m) => m.id)) === JSON.stringify(["ask", "code"]),
    "session/new: the agent's modes",
  );
  check(
    fresh.configOptions?.length === 1 &&
      fresh.configOptions[0].id === "model" &&
      fresh.configOptions[0].currentValue === "demo-small",
    "session/new: the agent's config options",
  );
  check(
    (await agent.request(acp.methods.agent.session.list, {})).sessions.find((s) => s.sessionId === fresh.sessionId)
      ?.title === undefined,
    "session/list: no title where the agent gave none",
  );
  await agent.request(acp.methods.agent.session.delete, { sessionId: fresh.sessionId });
  // Mode and configuration options reach the agent.
  const modeFrom = updates.length;
  await agent.request(acp.methods.agent.session.setMode, { sessionId, modeId: "code" });
  await waitFor(
    () => updates.slice(modeFrom).some((n) => n.update.sessionUpdate === "current_mode_update" && n.update.currentModeId === "code"),
    "current_mode_update",
  );
  check(true, "session/set_mode: the agent's current_mode_update");
  const set = await agent.request(acp.methods.agent.session.setConfigOption, {
    sessionId,
    configId: "model",
    value: "demo-large",
  });
  check(set.configOptions[0]?.currentValue === "demo-large", "session/set_config_option: the agent's options");
  await rejects(
    agent.request(acp.methods.agent.session.setMode, { sessionId, modeId: "bogus" }),
    -32603,
    "session/set_mode of a mode the agent refuses",
  );
  await agent.request(acp.methods.agent.session.close, { sessionId });
  await rejects(
    agent.request(acp.methods.agent.session.prompt, { sessionId, prompt: [text("echo closed")] }),
    -32002,
    "a prompt after session/close",
  );
  return { sessionId, sessions: listed.sessions.length };
}

async function load(agent, init) {
  const sessionId = sessionArg;
  check(init.agentCapabilities?.loadSession === true, "initialize: loadSession");
  const before = updates.length;
  await agent.request(acp.methods.agent.session.load, { sessionId, cwd: "/", mcpServers: [] });
  const history = updates.slice(before);
  check(history.length > 1000 && history.every((n) => n.sessionId === sessionId), "session/load: history replayed");
  const prompts = history
    .filter((n) => n.update.sessionUpdate === "user_message_chunk" && n.update.content.type === "text")
    .map((n) => n.update.content.text);
  check(
    JSON.stringify(prompts) ===
      JSON.stringify([
        "stream 1000 16",
        "blocks",
        "permission",
        "permission",
        "sleep 30",
        "echo after the resume",
        "title A refactor, titled",
      ]),
    `session/load: the prompts, in order (${JSON.stringify(prompts)})`,
  );
  const image = history.find((n) => n.update.sessionUpdate === "user_message_chunk" && n.update.content.type === "image");
  check(image && Buffer.from(image.update.content.data, "base64").length === 48 * 1024, "session/load: the image");
  const streamed = history.findIndex((n) => n.update.sessionUpdate === "user_message_chunk" && n.update.content.text === "stream 1000 16");
  const chunks = history
    .slice(streamed + 1)
    .filter((n) => n.update.sessionUpdate === "agent_message_chunk")
    .slice(0, 1000)
    .map((n) => n.update.content.text);
  check(chunks.every((c, i) => c.startsWith(`${i + 1} `)), "session/load: the 1000 chunks, in order");
  check(updates.slice(before).length === history.length, "session/load: answered after the replay");
  const { answer, chunks: after } = await prompt(agent, sessionId, [text("echo after the load")]);
  check(answer.stopReason === "end_turn" && after.join("") === "echo after the load", "loaded session: goes on");
  return { sessionId };
}

async function loadLive(agent) {
  const [sessionId, gate] = [sessionArg, process.argv[4]];
  // The turn streams from now on, LIVE_N chunks at LIVE_RATE a second.
  writeFileSync(gate, "");
  await new Promise((resolve) => setTimeout(resolve, 100));
  await agent.request(acp.methods.agent.session.load, { sessionId, cwd: "/", mcpServers: [] });
  const replayed = updates.length;
  const history = updates.map((n) => n.update);
  check(
    history.some((u) => u.sessionUpdate === "user_message_chunk" && u.content.text === `gate ${gate} pace ${LIVE_RATE} ${LIVE_N}`),
    "session/load: the running turn's prompt",
  );
  check(
    history.some((u) => u.sessionUpdate === "agent_message_chunk" && u.content.text === `waiting for ${gate}`),
    "session/load: the running turn's first update",
  );
  const numbered = () => chunksSince(0).filter((c) => /^[0-9]+ /.test(c));
  await waitFor(() => numbered().some((c) => c.startsWith(`${LIVE_N} `)), `the turn's last chunk`);
  const all = numbered();
  const replayedChunks = chunksSince(0).length - chunksSince(replayed).length;
  console.log(`# ${replayedChunks} chunks replayed, ${chunksSince(replayed).length} live`);
  check(
    all.length === LIVE_N && all.every((c, i) => c.startsWith(`${i + 1} `)),
    `replayed, then live: the turn's ${LIVE_N} chunks in order, none missed, none twice (${all.length})`,
  );
  return { sessionId, live: chunksSince(replayed).length };
}

async function remove(agent) {
  const sessionId = sessionArg;
  await agent.request(acp.methods.agent.session.delete, { sessionId });
  check(true, "session/delete");
  await rejects(
    agent.request(acp.methods.agent.session.resume, { sessionId, cwd: "/", mcpServers: [] }),
    -32002,
    "session/resume of a deleted session",
  );
  return { sessionId };
}

// ---- the official SDK's agent behind the front door ----

const SDK_STREAM = 500;

function checkSdkAgent(init) {
  check(
    init._meta?.agentbroker?.agentInfo?.name === "agentbroker-sdk-agent",
    "initialize: the profile's agent is the SDK agent, as the broker saw it",
  );
  check(init.agentCapabilities?.promptCapabilities?.image === false, "initialize: the SDK agent takes no images");
}

// A prompt the SDK agent answers with what it remembers; its answer.
async function sdkRemembers(agent, sessionId, said, earlier, last) {
  const { answer, chunks } = await prompt(agent, sessionId, [text(said)]);
  const memory =
    `I remember ${earlier} earlier prompt${earlier === 1 ? "" : "s"} in this session` +
    (last === undefined ? ". " : `; the last one was "${last}". `);
  check(answer.stopReason === "end_turn", `"${said}": end_turn`);
  check(chunks[0] === "sdk-agent: ", `"${said}": the SDK agent answers (${chunks[0]})`);
  check(chunks.join("") === `sdk-agent: ${memory}You said: "${said}".`, `"${said}": the agent reports: ${chunks.join("")}`);
}

async function sdkFirst(agent) {
  const { sessionId } = await agent.request(acp.methods.agent.session.new, { cwd: "/", mcpServers: [] });
  check(typeof sessionId === "string" && sessionId.startsWith("acp:"), `session/new: ${sessionId}`);
  await sdkRemembers(agent, sessionId, "hello sdk", 0, undefined);

  const { answer, chunks } = await prompt(agent, sessionId, [text(`stream ${SDK_STREAM}`)]);
  check(answer.stopReason === "end_turn", "stream: end_turn");
  check(chunks.length === SDK_STREAM, `stream: ${SDK_STREAM} chunks (${chunks.length})`);
  check(
    chunks.every((c, i) => c === `${i + 1} `),
    "stream: chunk i is i, in order",
  );

  // The SDK agent sleeps until cancelled.
  const start = updates.length;
  const running = agent.request(acp.methods.agent.session.prompt, { sessionId, prompt: [text("sleep 30")] });
  await waitFor(() => chunksSince(start).length > 0, "the first chunk of sleep");
  check(chunksSince(start)[0] === "sdk-agent: sleeping 30 s", "sleep: the agent's first chunk");
  await agent.notify(acp.methods.agent.session.cancel, { sessionId });
  check((await running).stopReason === "cancelled", "cancel: cancelled");
  return { sessionId };
}

async function sdkResume(agent, init) {
  const sessionId = sessionArg;
  checkSdkAgent(init);
  const before = updates.length;
  await agent.request(acp.methods.agent.session.resume, { sessionId, cwd: "/", mcpServers: [] });
  check(updates.length === before, "session/resume: nothing replayed");
  await sdkRemembers(agent, sessionId, "after the resume", 3, "sleep 30");
  return { sessionId };
}

async function sdkLoad(agent, init) {
  const sessionId = sessionArg;
  checkSdkAgent(init);
  const before = updates.length;
  await agent.request(acp.methods.agent.session.load, { sessionId, cwd: "/", mcpServers: [] });
  const history = updates.slice(before);
  check(history.every((n) => n.sessionId === sessionId), "session/load: about this session");
  const prompts = history
    .filter((n) => n.update.sessionUpdate === "user_message_chunk")
    .map((n) => n.update.content.text);
  check(
    JSON.stringify(prompts) === JSON.stringify(["hello sdk", `stream ${SDK_STREAM}`, "sleep 30", "after the resume"]),
    `session/load: the prompts, in order (${JSON.stringify(prompts)})`,
  );
  const streamed = history.findIndex((n) => n.update.content?.text === `stream ${SDK_STREAM}`);
  const chunks = history
    .slice(streamed + 1)
    .filter((n) => n.update.sessionUpdate === "agent_message_chunk")
    .slice(0, SDK_STREAM)
    .map((n) => n.update.content.text);
  check(chunks.every((c, i) => c === `${i + 1} `), `session/load: the ${SDK_STREAM} chunks, in order`);
  await sdkRemembers(agent, sessionId, "after the load", 4, "after the resume");
  return { sessionId };
}

const phases = {
  first,
  resume,
  load,
  delete: remove,
  "load-live": loadLive,
  "sdk-first": sdkFirst,
  "sdk-resume": sdkResume,
  "sdk-load": sdkLoad,
};
if (!phases[phase]) {
  console.error(`unknown phase ${phase}`);
  process.exit(2);
}
try {
  const result = await withFrontDoor(phases[phase]);
  console.log(`result ${JSON.stringify(result)}`);
  process.exit(0);
} catch (error) {
  console.error(`agentbroker-acp-client: ${error.stack ?? error}`);
  process.exit(1);
}
