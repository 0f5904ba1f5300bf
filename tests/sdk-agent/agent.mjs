/* SPDX-License-Identifier: LGPL-2.1-or-later */
// agentbroker-sdk-agent — a small ACP agent built on the official TypeScript
// SDK (@agentclientprotocol/sdk, pinned in package.json).  The SDK validates
// every request and notification it receives against the ACP schema, so
// running this agent behind agentbroker proves the broker speaks ACP the way
// the reference implementation expects.
//
// Behaviour (kept close to agentbroker-demo-agent so the same tests apply):
//   initialize    → loadSession: true, no auth methods
//   session/new   → fresh id; history kept in memory and in
//                   <cwd>/.sdk-agent/<sessionId>.json, so session/load works
//                   after a restart; an available_commands_update follows
//   session/load  → replays the history as user_message_chunk /
//                   agent_message_chunk updates, then answers {}
//   session/prompt→ several agent_message_chunk updates, the first one
//                   "sdk-agent: ", mentioning "I remember N earlier prompt(s)"
//                   and the previous prompt; end_turn
//   "sleep N"     → one chunk, then waits N seconds; session/cancel ends the
//                   turn with stopReason "cancelled"
//   "stream N"    → N chunks "1 ", "2 ", … "N " (at most 100000), written
//                   as fast as the connection takes them; session/cancel
//                   stops them
//
// Run: node agent.mjs   (speaks ACP on stdin/stdout, logs on stderr)

import { randomUUID } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { Readable, Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";

import * as acp from "@agentclientprotocol/sdk";

const NAME = "agentbroker-sdk-agent";
const CHUNK_DELAY_MS = 20;

// sessionId → { cwd, history: [{ role, text }], abort: AbortController|null }
const sessions = new Map();

function log(...args) {
  console.error(`${NAME}[${process.pid}]:`, ...args);
}

function historyFile(cwd, sessionId) {
  return path.join(cwd, ".sdk-agent", `${sessionId}.json`);
}

// Session ids become file names: accept only what we hand out.
function checkSessionId(sessionId) {
  if (!/^sdk-[0-9a-f-]{36}$/.test(sessionId))
    throw acp.RequestError.invalidParams({ sessionId }, "malformed sessionId");
}

async function saveHistory(sessionId, session) {
  const file = historyFile(session.cwd, sessionId);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  // Write then rename, so a crash mid-write never leaves half a history.
  await writeFile(`${file}.tmp`, JSON.stringify(session.history), { mode: 0o600 });
  await rename(`${file}.tmp`, file);
}

function textOf(prompt) {
  return prompt
    .filter((block) => block.type === "text")
    .map((block) => block.text)
    .join("");
}

function chunk(kind, text) {
  return { sessionUpdate: kind, content: { type: "text", text } };
}

const app = acp
  .agent({ name: NAME })
  .onRequest(acp.methods.agent.initialize, ({ params }) => {
    log("initialize, client protocol version", params.protocolVersion);
    return {
      protocolVersion: acp.PROTOCOL_VERSION,
      agentCapabilities: {
        loadSession: true,
        promptCapabilities: { image: false, audio: false, embeddedContext: false },
      },
      authMethods: [],
      agentInfo: { name: NAME, version: "0.1.0" },
    };
  })
  .onRequest(acp.methods.agent.session.new, async ({ params, client }) => {
    const sessionId = `sdk-${randomUUID()}`;
    const session = { cwd: params.cwd, history: [], abort: null };
    sessions.set(sessionId, session);
    await saveHistory(sessionId, session);
    log("session/new", sessionId, "in", params.cwd);
    // Like real agents: an update outside any turn, after the response.
    setImmediate(() =>
      client
        .notify(acp.methods.client.session.update, {
          sessionId,
          update: {
            sessionUpdate: "available_commands_update",
            availableCommands: [
              { name: "sleep", description: "Answer, then wait N seconds" },
            ],
          },
        })
        .catch((error) => log("available_commands_update failed:", error)),
    );
    return { sessionId };
  })
  .onRequest(acp.methods.agent.session.load, async ({ params, client }) => {
    const { sessionId, cwd } = params;
    checkSessionId(sessionId);
    let history;
    try {
      history = JSON.parse(await readFile(historyFile(cwd, sessionId), "utf8"));
    } catch (error) {
      log("session/load", sessionId, "failed:", error.message);
      throw acp.RequestError.sessionNotFound(sessionId);
    }
    sessions.get(sessionId)?.abort?.abort();
    sessions.set(sessionId, { cwd, history, abort: null });
    for (const entry of history) {
      const kind = entry.role === "agent" ? "agent_message_chunk" : "user_message_chunk";
      await client.notify(acp.methods.client.session.update, {
        sessionId,
        update: chunk(kind, entry.text),
      });
    }
    log("session/load", sessionId, `replayed ${history.length} entries`);
    return {};
  })
  .onRequest(acp.methods.agent.session.prompt, async ({ params, client }) => {
    const { sessionId } = params;
    const session = sessions.get(sessionId);
    if (!session) throw acp.RequestError.sessionNotFound(sessionId);
    if (session.abort) throw acp.RequestError.invalidRequest({ sessionId }, "a prompt is already running");

    const text = textOf(params.prompt);
    const earlier = session.history.filter((entry) => entry.role === "user");
    const last = earlier.at(-1)?.text;
    const abort = new AbortController();
    session.abort = abort;
    session.history.push({ role: "user", text });
    await saveHistory(sessionId, session);
    log("session/prompt", sessionId, JSON.stringify(text));

    let reply = "";
    const say = async (piece) => {
      reply += piece;
      await client.notify(acp.methods.client.session.update, {
        sessionId,
        update: chunk("agent_message_chunk", piece),
      });
    };

    let stopReason = "end_turn";
    try {
      const words = text.trim().split(/\s+/);
      if (words[0] === "sleep") {
        const seconds = Number(words[1] ?? 1) || 0;
        await say(`sdk-agent: sleeping ${seconds} s`);
        await sleep(seconds * 1000, undefined, { signal: abort.signal });
      } else if (words[0] === "stream") {
        const count = Math.min(Math.max(Number(words[1] ?? 1) || 0, 0), 100000);
        for (let i = 1; i <= count; i++) {
          if (abort.signal.aborted) throw abort.signal.reason;
          await say(`${i} `);
        }
      } else {
        const pieces = [
          "sdk-agent: ",
          `I remember ${earlier.length} earlier prompt${earlier.length === 1 ? "" : "s"} in this session`,
          last === undefined ? ". " : `; the last one was "${last}". `,
          `You said: "${text}".`,
        ];
        for (const [i, piece] of pieces.entries()) {
          if (abort.signal.aborted) throw abort.signal.reason;
          if (i > 0) await sleep(CHUNK_DELAY_MS, undefined, { signal: abort.signal });
          await say(piece);
        }
      }
    } catch (error) {
      if (!abort.signal.aborted) throw error;
      stopReason = "cancelled";
    } finally {
      session.abort = null;
      if (reply) {
        session.history.push({ role: "agent", text: reply });
        await saveHistory(sessionId, session);
      }
    }
    log("turn in", sessionId, "ended:", stopReason);
    return { stopReason };
  })
  .onNotification(acp.methods.agent.session.cancel, ({ params }) => {
    log("session/cancel", params.sessionId);
    sessions.get(params.sessionId)?.abort?.abort();
  });

const stream = acp.ndJsonStream(Writable.toWeb(process.stdout), Readable.toWeb(process.stdin));
const connection = app.connect(stream);
log("started");
await connection.closed;
log("stdin closed; exiting");
process.exit(0);
