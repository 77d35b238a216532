// Drive a running chat server with the REAL Vercel AI SDK client (`ai` 6, `ai-v5` = 5.0.277, `ai-v5-0` = 5.0.0, `ai-v7`): an
// `AbstractChat` subclass with an in-memory ChatState and `DefaultChatTransport`, as `useChat`
// uses them, over real HTTP. Prints ONE JSON line on stdout and exits 0 when the scenario ran
// (the caller asserts on the fields); usage errors exit 2, a scenario timeout exits 3 (the JSON
// line is still printed, with `timedOut: true`).
//
// Usage:
//   node aisdk_chat_driver.mjs <scenario> --base http://127.0.0.1:PORT --chat ID [options]
//
// Options (all scenarios):
//   --package ai|ai-v5|ai-v5-0|ai-v7  client package (default ai; ai-v7 runs under Node 22)
//   --api PATH             transport `api` path (default /api/chat)
//   --timeout-ms N         give up after N ms (default 30000)
//   --body last-message    POST `{id, message}` (the newest message only) through
//                          `prepareSendMessagesRequest`, as the AI SDK docs show for a server
//                          that keeps the history; default: the transport's whole body
//
// Scenarios:
//   send         `sendMessage({text})` and wait until the chat settles.
//                --text T              the user text (default "hello")
//                --texts JSON          several turns instead, each sent the moment the one
//                                      before settled (as `sendAutomaticallyWhen` does)
//                --files JSON          `FileUIPart`s sent with each text
//                                      (`sendMessage({text, files})`, as a page does with the
//                                      files a user attached)
//                --messages JSON       initial chat messages (history), default []
//                --stop-after-deltas N after N text-delta chunks, `DELETE {api}/{id}/stream`
//                                      (plain fetch, the page's Stop button); the chat keeps
//                                      reading until the server ends the answer
//                --regenerate 1        then `regenerate()` (a new answer to the last user
//                                      message replaces the last one); the messages before it
//                                      are reported as `firstMessages`
//   resume       a fresh chat with the same id calls `resumeStream()`.
//                --seed none|server|JSON  start with no messages (default), with
//                                      `GET {api}/{id}/messages`, or with the given messages
//   send-resume  client A sends; after --resume-after-deltas N (default 5) text deltas,
//                client B (a fresh chat, same id, a separate transport) is seeded per --seed
//                (none|server|client = A's messages at that moment; default server) and calls
//                `resumeStream()`. Waits for both.
//                --second-base URL     client B talks to this server instead (another
//                                      instance of the app sharing the same S2 basin)
//   post-raw     `POST {api}` with --body JSON (raw text) and report status/body; no chat.
//
// Result of one chat (`send`, `resume`, and `first`/`second` of `send-resume`):
//   {status, error, finishReason, isAbort, isDisconnect, isError, messages, chunkTypes,
//    requests: [{method, url, status}], seed?, deleteStatus?}
// plus top-level {ok, scenario, package, chatId, timedOut, elapsedMs}. `ok` is false when the
// driver itself failed (exception, timeout); client-side chat errors are in `error`.

import { runDriver } from "./driver_main.mjs";
const PACKAGES = new Set(["ai", "ai-v5", "ai-v5-0", "ai-v7"]);
const SCENARIOS = new Set(["send", "resume", "send-resume", "post-raw"]);

class UsageError extends Error {}

function parseArgs(argv) {
  const [scenario, ...rest] = argv;
  if (!SCENARIOS.has(scenario)) {
    throw new UsageError(`unknown scenario ${JSON.stringify(scenario)}; one of ${[...SCENARIOS]}`);
  }
  const opts = { scenario, package: "ai", api: "/api/chat", timeoutMs: 30000 };
  for (let i = 0; i < rest.length; i += 2) {
    const key = rest[i];
    const value = rest[i + 1];
    if (!key.startsWith("--") || value === undefined) {
      throw new UsageError(`expected --option value pairs, got ${JSON.stringify(rest.slice(i))}`);
    }
    opts[key.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = value;
  }
  if (!PACKAGES.has(opts.package)) {
    throw new UsageError(`--package must be ai, ai-v5, ai-v5-0 or ai-v7, got ${JSON.stringify(opts.package)}`);
  }
  if (!opts.base) throw new UsageError("--base http://host:port is required");
  if (opts.body !== undefined && opts.body !== "last-message") {
    throw new UsageError(`--body must be last-message, got ${JSON.stringify(opts.body)}`);
  }
  if (!opts.chat && scenario !== "post-raw") throw new UsageError("--chat ID is required");
  for (const key of ["timeoutMs", "stopAfterDeltas", "resumeAfterDeltas"]) {
    if (opts[key] !== undefined) {
      const n = Number(opts[key]);
      if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${key}: not an integer`);
      opts[key] = n;
    }
  }
  opts.base = opts.base.replace(/\/+$/, "");
  if (opts.secondBase) opts.secondBase = opts.secondBase.replace(/\/+$/, "");
  return opts;
}

function parseJson(name, text) {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(`--${name} is not JSON: ${error.message}`);
  }
}

/** The ChatState `useChat` keeps in React, in plain memory; `onChange` sees every update. */
class MemoryChatState {
  constructor(messages = [], onChange = () => {}) {
    this.messages = structuredClone(messages);
    this.status = "ready";
    this.error = undefined;
    this.onChange = onChange;
  }
  pushMessage = (message) => {
    this.messages = this.messages.concat(this.snapshot(message));
    this.onChange();
  };
  popMessage = () => {
    this.messages = this.messages.slice(0, -1);
    this.onChange();
  };
  replaceMessage = (index, message) => {
    this.messages = this.messages.with(index, this.snapshot(message));
    this.onChange();
  };
  snapshot = (value) => structuredClone(value);
}

const plain = (value) => (value === undefined ? null : JSON.parse(JSON.stringify(value)));

/** One client: an AbstractChat on a DefaultChatTransport that records requests and chunks. */
function makeClient(mod, opts, { messages = [], onChunk = () => {} } = {}) {
  const { AbstractChat, DefaultChatTransport } = mod;
  const record = {
    chunkTypes: [],
    requests: [],
    errors: [],
    finish: null,
  };

  class TappedTransport extends DefaultChatTransport {
    processResponseStream(stream) {
      return super.processResponseStream(stream).pipeThrough(
        new TransformStream({
          transform(chunk, controller) {
            record.chunkTypes.push(chunk.type);
            controller.enqueue(chunk);
            onChunk(chunk);
          },
        }),
      );
    }
  }

  const recordingFetch = async (input, init = {}) => {
    const entry = { method: init.method ?? "GET", url: String(input), status: null };
    if (opts.body !== undefined && typeof init.body === "string") {
      entry.bodyKeys = Object.keys(JSON.parse(init.body)); // which body the transport sent
    }
    record.requests.push(entry);
    const response = await fetch(input, init);
    entry.status = response.status;
    return response;
  };

  class DriverChat extends AbstractChat {
    constructor(options) {
      super({ ...options, state: new MemoryChatState(messages) });
    }
  }

  const chat = new DriverChat({
    id: opts.chat,
    transport: new TappedTransport({
      api: opts.base + opts.api,
      fetch: recordingFetch,
      ...(opts.body === "last-message" && {
        prepareSendMessagesRequest: ({ id, messages: sent }) => ({
          body: { id, message: sent[sent.length - 1] },
        }),
      }),
    }),
    onError: (error) => record.errors.push(error),
    onFinish: (event) => {
      record.finish = event;
    },
  });

  const result = () => ({
    status: chat.status,
    error: chat.error ? String(chat.error.message ?? chat.error) : null,
    finishReason: record.finish?.finishReason ?? null,
    isAbort: record.finish?.isAbort ?? null,
    isDisconnect: record.finish?.isDisconnect ?? null,
    isError: record.finish?.isError ?? null,
    messages: plain(chat.messages),
    chunkTypes: record.chunkTypes,
    requests: record.requests,
  });
  return { chat, record, result };
}

const streamUrl = (opts) => `${opts.base}${opts.api}/${encodeURIComponent(opts.chat)}/stream`;

async function fetchMessages(opts) {
  const url = `${opts.base}${opts.api}/${encodeURIComponent(opts.chat)}/messages`;
  const response = await fetch(url);
  if (!response.ok) {
    throw new Error(`GET ${url} -> ${response.status}: ${await response.text()}`);
  }
  return response.json();
}

async function resolveSeed(opts, seed, clientMessages) {
  if (seed === undefined || seed === "none") return [];
  if (seed === "server") return fetchMessages(opts);
  if (seed === "client") return plain(clientMessages ?? []);
  return parseJson("seed", seed);
}

/** Text deltas seen so far → a promise resolved at the n-th one. */
function deltaCounter(n) {
  let seen = 0;
  let resolve;
  const reached = new Promise((r) => {
    resolve = r;
  });
  if (n === 0) resolve();
  const onChunk = (chunk) => {
    if (chunk.type === "text-delta" && ++seen === n) resolve();
  };
  return { reached, onChunk, count: () => seen };
}

async function scenarioSend(mod, opts, out) {
  const initial = opts.messages ? parseJson("messages", opts.messages) : [];
  const stopAt = opts.stopAfterDeltas;
  const counter = deltaCounter(stopAt ?? -1);
  const client = makeClient(mod, opts, { messages: initial, onChunk: counter.onChunk });
  out.result = client.result;
  let stopping = null;
  if (stopAt !== undefined) {
    stopping = counter.reached.then(async () => {
      const response = await fetch(streamUrl(opts), { method: "DELETE" });
      return response.status;
    });
  }
  const texts = opts.texts ? parseJson("texts", opts.texts) : [opts.text ?? "hello"];
  const files = opts.files ? parseJson("files", opts.files) : undefined;
  for (const text of texts) {
    await client.chat.sendMessage(files ? { text, files } : { text });
    if (client.chat.status !== "ready") break; // the turn failed: no next turn
  }
  let firstMessages = null;
  if (opts.regenerate === "1" && client.chat.status === "ready") {
    firstMessages = plain(client.chat.messages);
    await client.chat.regenerate();
  }
  const res = client.result();
  if (firstMessages !== null) res.firstMessages = firstMessages;
  if (stopping) {
    // Settled with fewer deltas than asked: the answer ended before the stop point.
    res.deleteStatus = counter.count() >= stopAt ? await stopping : null;
  }
  return res;
}

async function scenarioResume(mod, opts, out) {
  const seed = await resolveSeed(opts, opts.seed);
  const client = makeClient(mod, opts, { messages: seed });
  out.result = client.result;
  await client.chat.resumeStream();
  return { ...client.result(), seed };
}

async function scenarioSendResume(mod, opts, out) {
  const counter = deltaCounter(opts.resumeAfterDeltas ?? 5);
  const first = makeClient(mod, opts, { onChunk: counter.onChunk });
  let second = null;
  out.result = () => ({ first: first.result(), second: second?.result() ?? null });

  const sending = first.chat.sendMessage({ text: opts.text ?? "hello" });
  const ended = sending.then(() => "ended");
  const resuming = Promise.race([counter.reached, ended]).then(async (why) => {
    if (why === "ended") return { atResume: null, seed: null };
    const atResume = {
      firstStatus: first.chat.status,
      firstMessages: plain(first.chat.messages),
      deltasSeen: counter.count(),
    };
    const secondOpts = { ...opts, base: opts.secondBase ?? opts.base };
    const seed = await resolveSeed(secondOpts, opts.seed ?? "server", first.chat.messages);
    second = makeClient(mod, secondOpts, { messages: seed });
    await second.chat.resumeStream();
    return { atResume, seed };
  });
  // Whichever settles first, a failure of the other must not go unobserved.
  const [, { atResume, seed }] = await Promise.all([sending, resuming]);
  // atResume null: the answer ended before the resume point, nothing was resumed.
  return {
    first: first.result(),
    second: second ? { ...second.result(), seed } : null,
    atResume,
  };
}

async function scenarioPostRaw(opts) {
  const response = await fetch(opts.base + opts.api, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: opts.body ?? "",
  });
  return {
    httpStatus: response.status,
    contentType: response.headers.get("content-type"),
    text: await response.text(),
  };
}

runDriver({
  parseArgs,
  header: (opts) => ({ scenario: opts.scenario, package: opts.package, chatId: opts.chat ?? null }),
  isUsageError: (error) => error instanceof UsageError,
  scenarios: async (opts, out) => {
    const mod = await import(opts.package);
    return {
      send: () => scenarioSend(mod, opts, out),
      resume: () => scenarioResume(mod, opts, out),
      "send-resume": () => scenarioSendResume(mod, opts, out),
      "post-raw": () => scenarioPostRaw(opts),
    };
  },
});
