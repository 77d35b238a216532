// Drive a running chat server with the REAL TanStack AI client (`ChatClient` of
// `@tanstack/ai-client` 0.33.x) on the STOCK `fetchServerSentEvents(url)` adapter, no custom
// connection code, against the durable AG-UI routes (resumable_chat.fastapi.agui). Prints ONE
// JSON line on stdout and exits 0 when the scenario ran (the caller asserts on the fields);
// usage errors exit 2, a scenario timeout exits 3 (the JSON line is still printed).
//
// Usage:
//   node agui_chat_driver.mjs <scenario> --base http://127.0.0.1:PORT --thread ID [options]
//
// Options (all scenarios):
//   --path PATH        the adapter's URL path (default /api/agui)
//   --text TEXT        the user message (default "hello")
//   --timeout-ms N     give up after N ms (default 30000)
//
// Scenarios:
//   send         `sendMessage(--text)` on a client with `threadId` and wait until it settled.
//                --cut-after-events N sends the header `X-Test-Cut-After-Events: N` (the example
//                app's test-only fault injection drops the POST's connection after N events;
//                the adapter then re-POSTs with `Last-Event-ID`).
//   reload       `sendMessage(--text)`, then `reload()` (the last user message sent again, same
//                id, the answer after it dropped), each awaited until settled; then a fresh
//                client with `persistence: true` hydrates the thread (`hydrated`). The
//                transcript after the first answer is reported as `firstMessages`.
//   hydrate-join client A sends; after --join-after N (default 8) assistant content chunks a
//                fresh client B (`persistence: true`, same threadId) attaches: it hydrates
//                (GET ?threadId=) and joins the active run (GET ?offset=-1&runId=). Waits until
//                B's sessionGenerating went true then false and A settled; then a third client C
//                with `persistence: true` attaches to the finished thread (hydrate only).
//                --join-base URL: B and C talk to another server instance (same storage).
//   tool         a client with the client tool `get_capital` (returns {capital: "Paris"}) sends;
//                the server pauses the run with a client-tool interrupt, the client runs the
//                tool and resumes (POST with parentRunId and resume); waits for the second run's
//                end. Then a client with `persistence: true` hydrates the thread.
//
// Result of one client (`client`, `a`, `b`, `c`, `hydrated`):
//   {status, error, messages, sessionGenerating, chunkTypes, runStarted, terminals,
//    customEvents, requests: [{method, url, status, lastEventId, runId, ids: [SSE ids]}]}
// plus {ok, scenario, threadId, timedOut, elapsedMs}.

import { runDriver } from "./driver_main.mjs";
const SCENARIOS = new Set(["send", "reload", "hydrate-join", "tool"]);

class UsageError extends Error {}

function parseArgs(argv) {
  const [scenario, ...rest] = argv;
  if (!SCENARIOS.has(scenario)) {
    throw new UsageError(`unknown scenario ${JSON.stringify(scenario)}; one of ${[...SCENARIOS]}`);
  }
  const opts = { scenario, path: "/api/agui", timeoutMs: 30000, text: "hello" };
  for (let i = 0; i < rest.length; i += 2) {
    const key = rest[i];
    const value = rest[i + 1];
    if (!key.startsWith("--") || value === undefined) {
      throw new UsageError(`expected --option value pairs, got ${JSON.stringify(rest.slice(i))}`);
    }
    opts[key.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = value;
  }
  if (!opts.base) throw new UsageError("--base http://host:port is required");
  if (!opts.thread) throw new UsageError("--thread ID is required");
  for (const key of ["timeoutMs", "cutAfterEvents", "joinAfter"]) {
    if (opts[key] !== undefined) {
      const n = Number(opts[key]);
      if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${key}: not an integer`);
      opts[key] = n;
    }
  }
  opts.base = opts.base.replace(/\/+$/, "");
  return opts;
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

function headerOf(headers, name) {
  if (!headers) return null;
  if (headers instanceof Headers) return headers.get(name);
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name.toLowerCase());
  return key === undefined ? null : headers[key];
}

/** A fetch that records every request and the SSE ids of every response body. */
function recordingFetch(requests) {
  return async (input, init = {}) => {
    const entry = {
      method: init.method ?? "GET",
      url: String(input),
      status: null,
      lastEventId: headerOf(init.headers, "Last-Event-ID"),
      runId: headerOf(init.headers, "X-Run-Id"),
      accept: headerOf(init.headers, "Accept"),
      body: typeof init.body === "string" ? JSON.parse(init.body) : null,
      ids: [],
    };
    requests.push(entry);
    const response = await fetch(input, init);
    entry.status = response.status;
    const type = response.headers.get("content-type") ?? "";
    if (!response.body || !type.startsWith("text/event-stream")) return response;
    const decoder = new TextDecoder();
    let pending = "";
    const ids = new TransformStream({
      transform(bytes, controller) {
        pending += decoder.decode(bytes, { stream: true });
        const lines = pending.split("\n");
        pending = lines.pop();
        for (const line of lines) {
          const match = /^id: ?(.*)$/.exec(line);
          if (match) entry.ids.push(match[1]);
        }
        controller.enqueue(bytes);
      },
    });
    return new Response(response.body.pipeThrough(ids), {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  };
}

function makeClient(
  ctx,
  { onChunk = () => {}, persistence = false, tools, headers, base = ctx.opts.base } = {},
) {
  const { mod, opts } = ctx;
  const record = {
    chunks: [],
    sessionGenerating: [],
    errors: [],
    requests: [],
    runStarted: [],
    terminals: [],
    customEvents: [],
    assistantContent: 0,
  };
  const connection = mod.fetchServerSentEvents(base + opts.path, {
    fetchClient: recordingFetch(record.requests),
    ...(headers ? { headers } : {}),
  });
  const client = new mod.ChatClient({
    connection,
    threadId: opts.thread,
    ...(persistence ? { persistence: true } : {}),
    ...(tools ? { tools } : {}),
    onChunk: (chunk) => {
      record.chunks.push(plain(chunk));
      if (chunk.type === "RUN_STARTED") record.runStarted.push(chunk.runId ?? null);
      else if (chunk.type === "RUN_FINISHED" || chunk.type === "RUN_ERROR") {
        record.terminals.push(plain(chunk));
      } else if (chunk.type === "TEXT_MESSAGE_CONTENT") record.assistantContent += 1;
      onChunk(chunk, record);
    },
    onSessionGeneratingChange: (value) => {
      record.sessionGenerating.push(value);
      onChunk(null, record);
    },
    onCustomEvent: (name, value) => record.customEvents.push({ name, value: plain(value) }),
    onError: (error) => record.errors.push(String(error?.message ?? error)),
  });
  const result = () => {
    const error = client.getError();
    return {
      status: client.getStatus(),
      error: error ? String(error.message ?? error) : null,
      errors: record.errors,
      messages: plain(client.getMessages()),
      sessionGenerating: record.sessionGenerating,
      chunkTypes: record.chunks.map((c) => c.type),
      runStarted: record.runStarted,
      terminals: record.terminals,
      customEvents: record.customEvents,
      requests: record.requests,
      isLoading: client.getIsLoading(),
    };
  };
  return { client, record, result };
}

async function until(predicate, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`condition not met in ${timeoutMs} ms`);
    await sleep(20);
  }
}

const generatingCycle = (record) => {
  const seen = record.sessionGenerating;
  const on = seen.indexOf(true);
  return on !== -1 && seen.indexOf(false, on + 1) !== -1;
};

async function scenarioSend(ctx, out) {
  const cut = ctx.opts.cutAfterEvents;
  const headers = cut === undefined ? undefined : { "X-Test-Cut-After-Events": String(cut) };
  const c = makeClient(ctx, { headers });
  out.result = () => ({ client: c.result() });
  await c.client.sendMessage(ctx.opts.text);
  return { client: c.result() };
}

/** A fresh `persistence: true` client attached to the thread; resolves when it hydrated. */
async function hydratedClient(ctx, options = {}) {
  const c = makeClient(ctx, { persistence: true, ...options });
  c.client.attach();
  await until(() => c.record.requests.some((r) => r.status !== null));
  // The hydration applies its messages right after the response; give it a turn.
  await until(() => c.client.getMessages().length > 0 || c.record.requests[0].status !== 200);
  return c;
}

async function scenarioReload(ctx, out) {
  const c = makeClient(ctx);
  let firstMessages = null;
  let hydrated = null;
  out.result = () => ({ client: c.result(), firstMessages, hydrated: hydrated?.result() ?? null });
  await c.client.sendMessage(ctx.opts.text);
  firstMessages = plain(c.client.getMessages());
  await c.client.reload();
  hydrated = await hydratedClient(ctx);
  return { client: c.result(), firstMessages, hydrated: hydrated.result() };
}

async function scenarioHydrateJoin(ctx, out) {
  const joinAfter = ctx.opts.joinAfter ?? 8;
  const joinBase = (ctx.opts.joinBase ?? ctx.opts.base).replace(/\/+$/, "");
  const reached = deferred();
  const a = makeClient(ctx, {
    onChunk: (chunk, record) => {
      if (chunk?.type === "TEXT_MESSAGE_CONTENT" && record.assistantContent === joinAfter) {
        reached.resolve("reached");
      }
    },
  });
  let b = null;
  let c = null;
  out.result = () => ({ a: a.result(), b: b?.result() ?? null, c: c?.result() ?? null });
  const sending = a.client.sendMessage(ctx.opts.text);
  const why = await Promise.race([reached.promise, sending.then(() => "ended")]);
  let atJoin = null;
  if (why === "reached") {
    atJoin = { aMessages: plain(a.client.getMessages()) };
    b = makeClient(ctx, { persistence: true, base: joinBase });
    b.client.attach();
    await until(() => generatingCycle(b.record), 20000);
    await until(() => !b.client.getIsLoading());
  }
  await sending;
  c = await hydratedClient(ctx, { base: joinBase });
  return { a: a.result(), b: b?.result() ?? null, c: c.result(), atJoin };
}

async function scenarioTool(ctx, out) {
  const calls = [];
  const tools = [
    {
      name: "get_capital",
      description: "The capital city of a country",
      execute: async (input) => {
        calls.push(plain(input));
        return { capital: "Paris" };
      },
    },
  ];
  const a = makeClient(ctx, { tools });
  let hydrated = null;
  out.result = () => ({ client: a.result(), calls, hydrated: hydrated?.result() ?? null });
  await a.client.sendMessage(ctx.opts.text);
  // The continuation (resume) run starts after the client tool ran; wait for its end.
  await until(
    () =>
      a.record.terminals.length >= 2 &&
      !a.client.getIsLoading() &&
      a.record.requests.filter((r) => r.method === "POST").length >= 2,
    20000,
  );
  hydrated = await hydratedClient(ctx);
  return { client: a.result(), calls, hydrated: hydrated.result() };
}

runDriver({
  parseArgs,
  header: (opts) => ({ scenario: opts.scenario, threadId: opts.thread }),
  scenarios: async (opts, out) => {
    const ctx = { opts, mod: await import("@tanstack/ai-client") };
    return {
      send: () => scenarioSend(ctx, out),
      reload: () => scenarioReload(ctx, out),
      "hydrate-join": () => scenarioHydrateJoin(ctx, out),
      tool: () => scenarioTool(ctx, out),
    };
  },
});
