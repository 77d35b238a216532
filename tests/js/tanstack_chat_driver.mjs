// Drive a running chat server with the REAL TanStack AI client (`ChatClient` from
// `@tanstack/ai-client` 0.33.x, or 0.22.1 / 0.10.0 through the `tanstack-ai-client-v022` /
// `tanstack-ai-client-v010` aliases) on the
// connection adapter the Python package ships (src/resumable_chat/static/tanstack-connection.js),
// over real HTTP, as `useChat({connection, live: true})` uses them. Prints ONE JSON line on
// stdout and exits 0 when the scenario ran (the caller asserts on the fields); usage errors
// exit 2, a scenario timeout exits 3 (the JSON line is still printed, with `timedOut: true`).
//
// Usage:
//   node tanstack_chat_driver.mjs <scenario> --base http://127.0.0.1:PORT --chat ID [options]
//
// Options (all scenarios):
//   --package P        @tanstack/ai-client (default) | tanstack-ai-client-v022 |
//                      tanstack-ai-client-v010
//   --prefix PATH      the routes' prefix (default /api/tanstack/chat): POST/DELETE PATH,
//                      GET PATH/replay?id=<chat>
//   --adapter FILE     the adapter module (default: the one in src/resumable_chat/static)
//   --timeout-ms N     give up after N ms (default 30000)
//
// Scenarios:
//   send       `sendMessage(--text)` and wait until the run finished (sendMessage settles after
//              the terminal chunk arrives on the subscription). --texts JSON: several turns,
//              one after the other, on the same client. --content JSON: send
//              `{content: <parts>}` instead (a multimodal message: text and image, audio,
//              video or document parts).
//   reload     `sendMessage(--text)`, then `reload()` (TanStack's "regenerate the last answer":
//              the messages after the last user message are dropped and that user message is
//              sent again, same id), each awaited until its run finished. Reports the
//              transcript after the first answer as `firstMessages`.
//   stop       like send; after --stop-after N (default 5) assistant TEXT_MESSAGE_CONTENT chunks
//              call `connection.stop()` (DELETE) and wait for the run's terminal chunk.
//   subscribe  a fresh client `subscribe()`s and collects chunks until --idle-ms (default 400)
//              pass without one, or --max-chunks N arrived.
//   join       client A sends; after --join-after N (default 8) assistant content chunks a fresh
//              client B subscribes; waits until B's sessionGenerating went true then false and
//              A's send settled. --second-base URL: B talks to this server instead (another
//              instance of the app sharing the same S2 basin).
//   reconnect  the sender's subscription is cut (the response body errors, mid-event) after
//              --cut-after N (default 8) assistant content chunks; the adapter reconnects with
//              `from=<cursor>`. Reports the SSE ids of every replay response and the
//              duplicates across them.
//   adapter    no server: the adapter's own contract against a scripted fetch (SSE parsing,
//              cursor URLs, 204, reconnects, send/stop requests). Prints {cases: {name: {ok,
//              error?}}}.
//
// Result of one client (`client`, and `a`/`b` of join):
//   {status, error, messages, sessionGenerating: [transitions], chunkTypes, firstChunkType,
//    runStarted: [runId], terminal: <the last RUN_FINISHED/RUN_ERROR chunk>, finishReason,
//    requests: [{method, url, status}], cursor}
// plus top-level {ok, scenario, package, chatId, timedOut, elapsedMs}. `ok` is false when the
// driver itself failed (exception, timeout); client-side errors are in `error`.

import { runDriver } from "./driver_main.mjs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const PACKAGES = new Set([
  "@tanstack/ai-client",
  "tanstack-ai-client-v022",
  "tanstack-ai-client-v010",
]);
const SCENARIOS = new Set(["send", "reload", "stop", "subscribe", "join", "reconnect", "adapter"]);
const DEFAULT_ADAPTER = new URL(
  "../../src/resumable_chat/static/tanstack-connection.js",
  import.meta.url,
);

class UsageError extends Error {}

function parseArgs(argv) {
  const [scenario, ...rest] = argv;
  if (!SCENARIOS.has(scenario)) {
    throw new UsageError(`unknown scenario ${JSON.stringify(scenario)}; one of ${[...SCENARIOS]}`);
  }
  const opts = {
    scenario,
    package: "@tanstack/ai-client",
    prefix: "/api/tanstack/chat",
    timeoutMs: 30000,
    text: "hello",
  };
  for (let i = 0; i < rest.length; i += 2) {
    const key = rest[i];
    const value = rest[i + 1];
    if (!key.startsWith("--") || value === undefined) {
      throw new UsageError(`expected --option value pairs, got ${JSON.stringify(rest.slice(i))}`);
    }
    opts[key.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = value;
  }
  if (!PACKAGES.has(opts.package)) {
    throw new UsageError(`--package must be one of ${[...PACKAGES]}, got ${opts.package}`);
  }
  if (scenario !== "adapter") {
    if (!opts.base) throw new UsageError("--base http://host:port is required");
    if (!opts.chat) throw new UsageError("--chat ID is required");
  }
  for (const key of ["timeoutMs", "stopAfter", "idleMs", "maxChunks", "joinAfter", "cutAfter"]) {
    if (opts[key] !== undefined) {
      const n = Number(opts[key]);
      if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${key}: not an integer`);
      opts[key] = n;
    }
  }
  opts.base = opts.base?.replace(/\/+$/, "");
  opts.secondBase = opts.secondBase?.replace(/\/+$/, "");
  return opts;
}

/** The adapter module. Imported from a `.mjs` copy in a temporary directory: Node 20 reads a
 * `.js` file outside a `"type": "module"` package as CommonJS (the adapter has no imports). */
async function loadAdapter(path) {
  const url = path ? pathToFileURL(resolve(path)) : DEFAULT_ADAPTER;
  const dir = await mkdtemp(join(tmpdir(), "tanstack-connection-"));
  const copy = join(dir, "tanstack-connection.mjs");
  await writeFile(copy, await readFile(url, "utf8"));
  try {
    return await import(pathToFileURL(copy).href);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const plain = (value) => (value === undefined ? null : JSON.parse(JSON.stringify(value)));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function deferred() {
  let resolve;
  const promise = new Promise((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** A promise resolved when `predicate()` holds (checked on every `check()` call). */
function waiter(predicate) {
  const d = deferred();
  let done = false;
  return {
    promise: d.promise,
    check() {
      if (!done && predicate()) {
        done = true;
        d.resolve();
      }
    },
  };
}

/**
 * One ChatClient on a fresh adapter. `wrapFetch(fetch)` may wrap the fetch the adapter uses;
 * `onChunk(chunk, record)` sees every chunk after it is recorded.
 */
function makeClient(ctx, { wrapFetch = (f) => f, onChunk = () => {} } = {}) {
  const { mod, adapter, opts } = ctx;
  const record = {
    chunks: [],
    sessionGenerating: [],
    statuses: [],
    errors: [],
    requests: [],
    runStarted: [],
    terminal: null,
    assistantContent: 0,
  };
  const recordingFetch = async (input, init = {}) => {
    const entry = { method: init.method ?? "GET", url: String(input), status: null };
    record.requests.push(entry);
    try {
      const response = await fetch(input, init);
      entry.status = response.status;
      return response;
    } catch (error) {
      entry.error = String(error?.name ?? error);
      throw error;
    }
  };
  const api = opts.base + opts.prefix;
  const connection = adapter.createResumableConnection({
    sendUrl: api,
    stopUrl: api,
    subscribeUrl: `${api}/replay?id=${encodeURIComponent(opts.chat)}`,
    body: { id: opts.chat },
    fetch: wrapFetch(recordingFetch),
  });
  let inRun = false;
  const client = new mod.ChatClient({
    connection,
    threadId: `thread-${opts.chat}`,
    onChunk: (chunk) => {
      record.chunks.push(plain(chunk));
      if (chunk.type === "RUN_STARTED") {
        inRun = true;
        record.runStarted.push(chunk.runId ?? null);
      } else if (chunk.type === "RUN_FINISHED" || chunk.type === "RUN_ERROR") {
        inRun = false;
        record.terminal = plain(chunk);
      } else if (chunk.type === "TEXT_MESSAGE_CONTENT" && inRun) {
        record.assistantContent += 1;
      }
      onChunk(chunk, record);
    },
    onSessionGeneratingChange: (value) => {
      record.sessionGenerating.push(value);
      onChunk(null, record);
    },
    onStatusChange: (status) => record.statuses.push(status),
    onError: (error) => record.errors.push(String(error?.message ?? error)),
  });
  const result = () => {
    const error = client.getError();
    const terminal = record.terminal;
    return {
      status: client.getStatus(),
      error: error ? String(error.message ?? error) : null,
      errors: record.errors,
      messages: plain(client.getMessages()),
      sessionGenerating: record.sessionGenerating,
      sessionGeneratingNow: client.getSessionGenerating(),
      statuses: record.statuses,
      chunkTypes: record.chunks.map((c) => c.type),
      firstChunkType: record.chunks[0]?.type ?? null,
      firstChunk: record.chunks[0] ?? null,
      runStarted: record.runStarted,
      terminal,
      finishReason: terminal
        ? (terminal.finishReason ?? terminal.metadata?.tanstack?.finishReason ?? null)
        : null,
      requests: record.requests,
      cursor: connection.cursor ?? null,
    };
  };
  return { client, connection, record, result };
}

/** Resolves once the client's sessionGenerating went true and then false again. */
function generatingCycle(record) {
  return () => {
    const seen = record.sessionGenerating;
    const on = seen.indexOf(true);
    return on !== -1 && seen.indexOf(false, on + 1) !== -1;
  };
}

async function scenarioSend(ctx, out) {
  const c = makeClient(ctx);
  out.result = () => ({ client: c.result() });
  if (ctx.opts.content) {
    await c.client.sendMessage({ content: JSON.parse(ctx.opts.content) });
    return { client: c.result() };
  }
  const texts = ctx.opts.texts ? JSON.parse(ctx.opts.texts) : [ctx.opts.text];
  for (const text of texts) await c.client.sendMessage(text);
  return { client: c.result() };
}

async function scenarioReload(ctx, out) {
  const c = makeClient(ctx);
  let firstMessages = null;
  out.result = () => ({ client: c.result(), firstMessages });
  await c.client.sendMessage(ctx.opts.text);
  firstMessages = plain(c.client.getMessages());
  await c.client.reload();
  return { client: c.result(), firstMessages };
}

async function scenarioStop(ctx, out) {
  const stopAfter = ctx.opts.stopAfter ?? 5;
  let stopping = null;
  const c = makeClient(ctx, {
    onChunk: (chunk, record) => {
      if (stopping === null && chunk?.type === "TEXT_MESSAGE_CONTENT" && record.assistantContent >= stopAfter) {
        stopping = c.connection.stop();
      }
    },
  });
  out.result = () => ({ client: c.result() });
  await c.client.sendMessage(ctx.opts.text);
  const deleteStatus = stopping ? await stopping : null;
  return { client: c.result(), deleteStatus };
}

async function scenarioSubscribe(ctx, out) {
  const idleMs = ctx.opts.idleMs ?? 400;
  const maxChunks = ctx.opts.maxChunks ?? Infinity;
  let last = Date.now();
  const c = makeClient(ctx, {
    onChunk: () => {
      last = Date.now();
    },
  });
  out.result = () => ({ client: c.result() });
  c.client.subscribe();
  while (Date.now() - last < idleMs && c.record.chunks.length < maxChunks) {
    await sleep(25);
  }
  const result = c.result();
  c.client.unsubscribe();
  return { client: result };
}

async function scenarioJoin(ctx, out) {
  const joinAfter = ctx.opts.joinAfter ?? 8;
  const reached = deferred();
  const a = makeClient(ctx, {
    onChunk: (chunk, record) => {
      if (chunk?.type === "TEXT_MESSAGE_CONTENT" && record.assistantContent === joinAfter) {
        reached.resolve("reached");
      }
    },
  });
  let b = null;
  out.result = () => ({ a: a.result(), b: b?.result() ?? null });
  const sending = a.client.sendMessage(ctx.opts.text);
  const joining = Promise.race([reached.promise, sending.then(() => "ended")]).then(async (why) => {
    if (why === "ended") return null;
    const atJoin = {
      aMessages: plain(a.client.getMessages()),
      aAssistantContent: a.record.assistantContent,
    };
    const done = waiter(() => generatingCycle(b.record)());
    const bCtx = { ...ctx, opts: { ...ctx.opts, base: ctx.opts.secondBase ?? ctx.opts.base } };
    b = makeClient(bCtx, { onChunk: () => done.check() });
    b.client.subscribe();
    await done.promise;
    return atJoin;
  });
  const [, atJoin] = await Promise.all([sending, joining]);
  const result = { a: a.result(), b: b?.result() ?? null, atJoin };
  b?.client.unsubscribe();
  return result;
}

/** SSE `id`s of an SSE text (LF framing, as the server writes it). */
function sseIds(text) {
  return [...text.matchAll(/^id: ?(\d+)$/gm)].map((m) => Number(m[1]));
}

async function scenarioReconnect(ctx, out) {
  const cutAfter = ctx.opts.cutAfter ?? 8;
  // Per replay GET: {url, status, text (whole events delivered), cut, lastIdBeforeCut, partial}.
  const responses = [];
  const wrapFetch = (inner) => async (input, init = {}) => {
    const response = await inner(input, init);
    if ((init.method ?? "GET") !== "GET" || !response.body) return response;
    const entry = { url: String(input), status: response.status, text: "", cut: false };
    responses.push(entry);
    const cutThis = responses.length === 1;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const encoder = new TextEncoder();
    let inRun = false;
    let content = 0;
    let pending = ""; // text not yet split into events
    const body = new ReadableStream({
      async pull(controller) {
        let read;
        try {
          read = await reader.read();
        } catch (error) {
          controller.error(error);
          return;
        }
        if (read.done) {
          controller.close();
          return;
        }
        const text = decoder.decode(read.value, { stream: true });
        if (!cutThis) {
          entry.text += text;
          controller.enqueue(read.value);
          return;
        }
        pending += text;
        let passed = "";
        for (;;) {
          const end = pending.indexOf("\n\n");
          if (end === -1) break;
          const event = pending.slice(0, end + 2);
          pending = pending.slice(end + 2);
          if (event.includes('"type":"RUN_STARTED"')) inRun = true;
          if (inRun && event.includes('"type":"TEXT_MESSAGE_CONTENT"') && ++content === cutAfter) {
            // Drop the connection mid-event: the first half of this event is delivered, the
            // client must discard it and get the whole event again after reconnecting.
            const partial = event.slice(0, Math.floor(event.length / 2));
            entry.text += passed;
            entry.partial = partial;
            entry.cut = true;
            entry.lastIdBeforeCut = sseIds(entry.text).at(-1) ?? null;
            controller.enqueue(encoder.encode(passed + partial));
            controller.error(new TypeError("terminated (cut by the test driver)"));
            reader.cancel().catch(() => {});
            return;
          }
          passed += event;
        }
        entry.text += passed;
        if (passed) controller.enqueue(encoder.encode(passed));
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    });
    return new Response(body, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  };
  const c = makeClient(ctx, { wrapFetch });
  const summary = () => {
    const ids = responses.map((r) => sseIds(r.text));
    const seen = new Map();
    for (const [index, list] of ids.entries()) {
      for (const id of list) seen.set(id, [...(seen.get(id) ?? []), index]);
    }
    const duplicateIds = [...seen.entries()].filter(([, where]) => where.length > 1).map(([id]) => id);
    return {
      responses: responses.map((r, index) => ({
        url: r.url,
        status: r.status,
        cut: r.cut,
        lastIdBeforeCut: r.lastIdBeforeCut ?? null,
        partial: r.partial ?? null,
        ids: ids[index],
      })),
      duplicateIds,
    };
  };
  out.result = () => ({ client: c.result(), ...summary() });
  await c.client.sendMessage(ctx.opts.text);
  return { client: c.result(), ...summary() };
}

// ---- the adapter's own contract, against a scripted fetch -----------------------------------

function assert(condition, message, detail) {
  if (!condition) {
    throw new Error(`${message}${detail === undefined ? "" : `: ${JSON.stringify(detail)}`}`);
  }
}

function assertEqual(actual, expected, message) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  assert(a === e, message, { actual, expected });
}

/** A Response whose body delivers `pieces` (strings) one read at a time, then ends or fails. */
function sseResponse(pieces, { status = 200, fail = null } = {}) {
  const encoder = new TextEncoder();
  let i = 0;
  const body = new ReadableStream({
    pull(controller) {
      if (i < pieces.length) controller.enqueue(encoder.encode(pieces[i++]));
      else if (fail) controller.error(fail);
      else controller.close();
    },
  });
  return new Response(body, { status, headers: { "content-type": "text/event-stream" } });
}

/** A fetch answering from `script` (a list of functions (url, init) → Response) in order. */
function scriptedFetch(script) {
  const calls = [];
  const fetch = async (url, init = {}) => {
    calls.push({ url: String(url), init });
    const step = script[Math.min(calls.length - 1, script.length - 1)];
    return step(String(url), init);
  };
  return { fetch, calls };
}

async function collect(iterable, limit = Infinity) {
  const out = [];
  for await (const item of iterable) {
    out.push(item);
    if (out.length >= limit) break;
  }
  return out;
}

const CHUNK = (n) => `{"type":"TEXT_MESSAGE_CONTENT","messageId":"a","delta":"${n}"}`;

async function scenarioAdapter(ctx) {
  const { createResumableConnection } = ctx.adapter;
  const base = { sendUrl: "/api/chat", subscribeUrl: "/api/chat/replay?id=c1", retryDelayMs: 1 };
  const cases = {
    "requires sendUrl and subscribeUrl": async () => {
      for (const options of [{ subscribeUrl: "/r" }, { sendUrl: "/s" }]) {
        let threw = false;
        try {
          createResumableConnection(options);
        } catch {
          threw = true;
        }
        assert(threw, "construction did not throw", options);
      }
      assert(!("stop" in createResumableConnection(base)), "stop() without stopUrl");
    },
    "parses SSE per spec": async () => {
      const text =
        ": keep-alive\n\n" +
        `id: 1\ndata: ${CHUNK(1)}\n\n` +
        `id:2\r\ndata:${CHUNK(2)}\r\n\r\n` + // CRLF, no space after the colons
        `id: 3\rdata: ${CHUNK(3)}\r\r` + // CR only
        "id: 4\ndata: {not json\n\n" + // malformed: skipped, cursor still moves
        "id: 5\ndata: [DONE]\n\n" +
        "id: 6\nevent: message\nretry: 10\ndata:\n\n" + // empty data: skipped
        'data: {"type":"CUSTOM",\ndata: "name":"x"}\n\n' + // multi-line data joined with \n
        `id: 7\n: comment inside an event\ndata: ${CHUNK(7)}\n\n` +
        `id: 8\ndata: ${CHUNK(8)}`; // cut off by the end of the body: dropped
      // Delivered one character at a time, so every boundary is split somewhere.
      const { fetch, calls } = scriptedFetch([() => sseResponse([...text]), () => sseResponse([])]);
      const connection = createResumableConnection({ ...base, fetch, headers: { "x-a": "1" } });
      const controller = new AbortController();
      const chunks = [];
      for await (const chunk of connection.subscribe(controller.signal)) {
        chunks.push(chunk);
        if (chunks.length === 5) controller.abort();
      }
      assertEqual(
        chunks.map((c) => c.delta ?? c.name),
        ["1", "2", "3", "x", "7"],
        "chunks",
      );
      assertEqual(connection.cursor, 7, "cursor");
      assertEqual(calls[0].url, "/api/chat/replay?id=c1", "first URL");
      assertEqual(calls[0].init.method, "GET", "method");
      assertEqual(calls[0].init.headers, { "x-a": "1" }, "GET headers");
      assertEqual(calls[0].init.credentials, "same-origin", "credentials");
      assert(calls[0].init.signal === controller.signal, "the abort signal reaches fetch");
    },
    "cursor is the max numeric id and goes on the next subscribe": async () => {
      const text = `id: 6\ndata: ${CHUNK(6)}\n\nid: 9\ndata: ${CHUNK(9)}\n\nid: 3\ndata: ${CHUNK(3)}\n\nid: x1\ndata: ${CHUNK(0)}\n\nid: 99999999999999999999\ndata: ${CHUNK(0)}\n\n`;
      const { fetch, calls } = scriptedFetch([() => sseResponse([text]), () => sseResponse([])]);
      const connection = createResumableConnection({ ...base, fetch });
      const controller = new AbortController();
      await collect(connection.subscribe(controller.signal), 5);
      assertEqual(connection.cursor, 9, "cursor");
      controller.abort();
      const again = new AbortController();
      const second = connection.subscribe(again.signal);
      const pending = second.next();
      await sleep(20);
      again.abort();
      await pending;
      assertEqual(calls.at(-1).url, "/api/chat/replay?id=c1&from=9", "second URL");
    },
    "string URLs keep other params and the fragment": async () => {
      const { fetch, calls } = scriptedFetch([
        () => sseResponse([`id: 5\ndata: ${CHUNK(5)}\n\n`]), // then the body ends: reconnect
        () => sseResponse([`id: 6\ndata: ${CHUNK(6)}\n\n`]),
      ]);
      const connection = createResumableConnection({
        ...base,
        subscribeUrl: "api/chat/replay?chat=1&from=2#tail",
        fetch,
      });
      await collect(connection.subscribe(new AbortController().signal), 2);
      assertEqual(calls[0].url, "api/chat/replay?chat=1&from=2#tail", "first URL");
      assertEqual(calls[1].url, "api/chat/replay?chat=1&from=5#tail", "reconnect URL");
    },
    "function URLs get the cursor": async () => {
      const seen = [];
      const { fetch, calls } = scriptedFetch([
        () => sseResponse([`id: 4\ndata: ${CHUNK(4)}\n\n`]),
        () => sseResponse([`id: 5\ndata: ${CHUNK(5)}\n\n`]),
      ]);
      const connection = createResumableConnection({
        ...base,
        subscribeUrl: (cursor) => {
          seen.push(cursor ?? null);
          return `/r/${cursor ?? "start"}`;
        },
        fetch,
      });
      await collect(connection.subscribe(new AbortController().signal), 2);
      assertEqual(seen, [null, 4], "cursors passed");
      assertEqual(calls.map((c) => c.url), ["/r/start", "/r/4"], "URLs");
    },
    "an abort while waiting for data ends quietly": async () => {
      // A fetch that ignores the signal: the adapter still stops reading on abort.
      const { fetch, calls } = scriptedFetch([
        () => new Response(new ReadableStream({ pull() {} }), { status: 200 }),
      ]);
      const connection = createResumableConnection({ ...base, fetch });
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 30);
      const chunks = await collect(connection.subscribe(controller.signal));
      assertEqual([chunks.length, calls.length], [0, 1], "chunks, requests");
    },
    "204 yields a synthetic RUN_FINISHED and returns": async () => {
      const { fetch, calls } = scriptedFetch([() => new Response(null, { status: 204 })]);
      const connection = createResumableConnection({ ...base, fetch });
      const chunks = await collect(connection.subscribe());
      assertEqual(calls.length, 1, "requests");
      assertEqual(chunks.length, 1, "chunks");
      const [chunk] = chunks;
      assert(/^run-\d+$/.test(chunk.runId), "runId", chunk);
      assert(!("model" in chunk), "no internal marker in model", chunk);
      assertEqual(
        [chunk.type, chunk.finishReason, typeof chunk.timestamp],
        ["RUN_FINISHED", "stop", "number"],
        "chunk",
      );
    },
    "a dropped connection reconnects from the cursor": async () => {
      const { fetch, calls } = scriptedFetch([
        () => sseResponse([`id: 1\ndata: ${CHUNK(1)}\n\nid: 2\ndata: ${CHUNK(2)}\n\nid: 3\nda`], {
          fail: new TypeError("terminated"),
        }),
        () => {
          throw new TypeError("fetch failed"); // the server is briefly unreachable
        },
        () => new Response("busy", { status: 503, statusText: "Service Unavailable" }),
        () => sseResponse([`id: 3\ndata: ${CHUNK(3)}\n\n`]), // then a clean end
        () => sseResponse([`id: 4\ndata: ${CHUNK(4)}\n\n`]),
      ]);
      const connection = createResumableConnection({ ...base, fetch });
      const chunks = await collect(connection.subscribe(new AbortController().signal), 4);
      assertEqual(chunks.map((c) => c.delta), ["1", "2", "3", "4"], "chunks");
      assertEqual(
        calls.map((c) => c.url),
        [
          "/api/chat/replay?id=c1",
          "/api/chat/replay?id=c1&from=2",
          "/api/chat/replay?id=c1&from=2",
          "/api/chat/replay?id=c1&from=2",
          "/api/chat/replay?id=c1&from=3",
        ],
        "URLs",
      );
    },
    "gives up after maxRetries failures in a row": async () => {
      const { fetch, calls } = scriptedFetch([
        () => {
          throw new TypeError("fetch failed");
        },
      ]);
      const connection = createResumableConnection({ ...base, fetch, maxRetries: 3 });
      let error = null;
      try {
        await collect(connection.subscribe());
      } catch (e) {
        error = e;
      }
      assertEqual(String(error?.message), "fetch failed", "error");
      assertEqual(calls.length, 4, "attempts");
    },
    "an abort during the backoff ends quietly": async () => {
      const { fetch, calls } = scriptedFetch([
        () => {
          throw new TypeError("fetch failed");
        },
      ]);
      const connection = createResumableConnection({ ...base, fetch, retryDelayMs: 60000 });
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 30);
      const chunks = await collect(connection.subscribe(controller.signal));
      assertEqual([chunks.length, calls.length], [0, 1], "chunks, attempts");
    },
    "416 drops the cursor and loads from scratch": async () => {
      const { fetch, calls } = scriptedFetch([
        () => sseResponse([`id: 40\ndata: ${CHUNK(40)}\n\n`]),
        () => new Response("past the end", { status: 416, statusText: "Range Not Satisfiable" }),
        () => sseResponse([`id: 2\ndata: {"type":"MESSAGES_SNAPSHOT","messages":[]}\n\n`]),
      ]);
      const connection = createResumableConnection({ ...base, fetch });
      const chunks = await collect(connection.subscribe(new AbortController().signal), 2);
      assertEqual(chunks.map((c) => c.type), ["TEXT_MESSAGE_CONTENT", "MESSAGES_SNAPSHOT"], "chunks");
      assertEqual(
        calls.map((c) => c.url),
        ["/api/chat/replay?id=c1", "/api/chat/replay?id=c1&from=40", "/api/chat/replay?id=c1"],
        "URLs",
      );
      assertEqual(connection.cursor, 2, "cursor");
    },
    "other non-2xx on subscribe throw": async () => {
      const { fetch } = scriptedFetch([
        () => new Response("no", { status: 404, statusText: "Not Found" }),
      ]);
      const connection = createResumableConnection({ ...base, fetch });
      let error = null;
      try {
        await collect(connection.subscribe());
      } catch (e) {
        error = e;
      }
      assertEqual(String(error?.message), "HTTP 404 Not Found", "error");
    },
    "send POSTs {messages, data, ...body} and discards the body": async () => {
      let cancelled = false;
      const { fetch, calls } = scriptedFetch([
        () =>
          new Response(
            new ReadableStream({
              cancel() {
                cancelled = true;
              },
            }),
            { status: 202 },
          ),
      ]);
      const connection = createResumableConnection({
        ...base,
        fetch,
        body: (messages, data) => ({ id: "c1", count: messages.length, seen: data.k }),
        headers: async () => ({ "x-token": "t", "content-type": "application/json; charset=utf-8" }),
      });
      const controller = new AbortController();
      const messages = [{ id: "u1", role: "user", parts: [{ type: "text", content: "hi" }] }];
      const result = await connection.send(messages, { k: "v" }, controller.signal);
      assertEqual(result, undefined, "send resolves to nothing");
      const [{ url, init }] = calls;
      assertEqual([url, init.method], ["/api/chat", "POST"], "request");
      assertEqual(
        JSON.parse(init.body),
        { messages, data: { k: "v" }, id: "c1", count: 1, seen: "v" },
        "body",
      );
      assertEqual(init.headers.get("x-token"), "t", "custom header");
      assertEqual(init.headers.get("content-type"), "application/json; charset=utf-8", "override");
      assert(init.signal === controller.signal, "signal");
      await sleep(0);
      assert(cancelled, "the response body was not discarded");
    },
    "send throws on non-2xx": async () => {
      const { fetch } = scriptedFetch([
        () => new Response("Stream already in use", { status: 409, statusText: "Conflict" }),
      ]);
      const connection = createResumableConnection({ ...base, fetch, body: { id: "c1" } });
      let error = null;
      try {
        await connection.send([], undefined);
      } catch (e) {
        error = e;
      }
      assertEqual(String(error?.message), "HTTP 409 Conflict", "error");
      const bare = scriptedFetch([() => new Response(null, { status: 500, statusText: "" })]);
      const other = createResumableConnection({ ...base, fetch: bare.fetch });
      try {
        await other.send([], undefined);
      } catch (e) {
        error = e;
      }
      assertEqual(String(error?.message), "HTTP 500", "error without status text");
    },
    "stop DELETEs {messages: [], ...body} and resolves to the status": async () => {
      const { fetch, calls } = scriptedFetch([
        () => new Response(null, { status: 202 }),
        () => new Response(null, { status: 204 }),
      ]);
      const connection = createResumableConnection({
        ...base,
        stopUrl: () => "/api/chat/stop",
        fetch,
        body: { id: "chat-1" },
      });
      assertEqual([await connection.stop(), await connection.stop()], [202, 204], "statuses");
      assertEqual([calls[0].url, calls[0].init.method], ["/api/chat/stop", "DELETE"], "request");
      assertEqual(JSON.parse(calls[0].init.body), { messages: [], id: "chat-1" }, "body");
      assertEqual(calls[0].init.headers.get("content-type"), "application/json", "content-type");
    },
  };
  const results = {};
  for (const [name, run] of Object.entries(cases)) {
    try {
      await run();
      results[name] = { ok: true };
    } catch (error) {
      results[name] = { ok: false, error: String(error?.stack ?? error) };
    }
  }
  return { cases: results };
}

runDriver({
  parseArgs,
  header: (opts) => ({ scenario: opts.scenario, package: opts.package, chatId: opts.chat }),
  scenarios: async (opts, out) => {
    const ctx = {
      opts,
      mod: opts.scenario === "adapter" ? null : await import(opts.package),
      adapter: await loadAdapter(opts.adapter),
    };
    return {
      send: () => scenarioSend(ctx, out),
      reload: () => scenarioReload(ctx, out),
      stop: () => scenarioStop(ctx, out),
      subscribe: () => scenarioSubscribe(ctx, out),
      join: () => scenarioJoin(ctx, out),
      reconnect: () => scenarioReconnect(ctx, out),
      adapter: () => scenarioAdapter(ctx),
    };
  },
});
