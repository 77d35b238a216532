// Fold TanStack AI StreamChunk sequences with the real `StreamProcessor`, network-free.
//
// Usage:
//   node tanstack_fold.mjs [--clients ai-client,v010]   < sequences.json
//     -> one JSON line {"ai-client": [result, ...], "v010": [result, ...]}
//
// stdin is a JSON array; each item is one sequence, folded by a FRESH processor:
//   [chunk, ...]                          (a bare array of StreamChunk objects), or
//   {"chunks": [chunk, ...], "nowMs": N}  (N: the frozen clock for this sequence, ms)
//
// Clients (the package `StreamProcessor` is imported from):
//   ai-client   @tanstack/ai-client 0.33.2 (its StreamProcessor is @tanstack/ai 0.58.0's)
//   v010        tanstack-ai-client-v010 = @tanstack/ai-client 0.10.0 (@tanstack/ai 0.18.0)
//
// Every chunk goes to `processor.processChunk(chunk)`, exactly what a server-side snapshot
// fold does (`@s2-dev/resumable-stream` 2.1.0 §5.6): no SSE parsing, no `restoreInboundChunk`,
// no `finalizeStream()` call. One entry is not a chunk: `{"clientCall": "reload"}` does to the
// processor what `ChatClient.reload()` and the `streamResponse()` it starts do before the
// re-sent turn's chunks arrive: `removeMessagesAfter(<index of the last user message>)`, then
// `prepareAssistantMessage()`. The clock is frozen while a sequence is folded: `Date.now()` and
// `new Date()` return `nowMs` (default 1700000000000), so `createdAt` is deterministic; ids the
// processor generates (`msg-<ms>-<random>`) stay random.
//
// Result per sequence:
//   messages  `getMessages()` after the last chunk, JSON round-tripped (Dates become ISO
//             strings, keys set to `undefined` disappear), key order as the processor built it
//   errors    [{index, error}] for chunks whose `processChunk` threw (the fold continues)
//   logs      console.warn / console.error output of the processor, as strings
//   state     {finishReason, done} from `getState()`, or null when it is not available
// The process exits 0 whenever it printed a result; 2 on bad input.

import { readFileSync } from "node:fs";

const CLIENTS = {
  "ai-client": "@tanstack/ai-client",
  v010: "tanstack-ai-client-v010",
};
const DEFAULT_NOW_MS = 1_700_000_000_000;

function parseArgs(argv) {
  let clients = ["ai-client"];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--clients") {
      clients = String(argv[++i] ?? "")
        .split(",")
        .filter((c) => c.length > 0);
    } else {
      throw new Error(`unknown argument ${JSON.stringify(argv[i])}`);
    }
  }
  for (const c of clients) {
    if (!(c in CLIENTS)) {
      throw new Error(`unknown client ${JSON.stringify(c)} (expected ${Object.keys(CLIENTS)})`);
    }
  }
  return { clients };
}

// -- a frozen clock ---------------------------------------------------------------------------

const RealDate = Date;
let frozenNow = DEFAULT_NOW_MS;
class FrozenDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) {
      super(frozenNow);
    } else {
      super(...args);
    }
  }
  static now() {
    return frozenNow;
  }
}

function withFrozenClock(nowMs, fn) {
  frozenNow = nowMs;
  globalThis.Date = FrozenDate;
  try {
    return fn();
  } finally {
    globalThis.Date = RealDate;
  }
}

// -- folding ----------------------------------------------------------------------------------

function describe(error) {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** What `ChatClient.reload()` (then `streamResponse()`) does to its processor. */
function reload(processor) {
  const lastUser = processor.getMessages().findLastIndex((m) => m.role === "user");
  if (lastUser === -1) return;
  processor.removeMessagesAfter(lastUser);
  processor.prepareAssistantMessage();
}

function fold(StreamProcessor, item) {
  const chunks = Array.isArray(item) ? item : item.chunks;
  const nowMs = !Array.isArray(item) && Number.isFinite(item.nowMs) ? item.nowMs : DEFAULT_NOW_MS;
  if (!Array.isArray(chunks)) {
    throw new Error("each sequence must be an array of chunks or {chunks, nowMs}");
  }
  const logs = [];
  const errors = [];
  const saved = { warn: console.warn, error: console.error, log: console.log };
  console.warn = (...args) => logs.push(args.map(String).join(" "));
  console.error = (...args) => logs.push(args.map(String).join(" "));
  console.log = (...args) => logs.push(args.map(String).join(" "));
  try {
    return withFrozenClock(nowMs, () => {
      const processor = new StreamProcessor();
      chunks.forEach((chunk, index) => {
        try {
          if (chunk?.clientCall === "reload") {
            reload(processor);
            return;
          }
          processor.processChunk(chunk);
        } catch (error) {
          errors.push({ index, error: describe(error) });
        }
      });
      let state = null;
      if (typeof processor.getState === "function") {
        const s = processor.getState();
        state = { finishReason: s.finishReason ?? null, done: Boolean(s.done) };
      }
      return {
        messages: JSON.parse(JSON.stringify(processor.getMessages())),
        errors,
        logs,
        state,
      };
    });
  } finally {
    console.warn = saved.warn;
    console.error = saved.error;
    console.log = saved.log;
  }
}

async function main() {
  const { clients } = parseArgs(process.argv.slice(2));
  const items = JSON.parse(readFileSync(0, "utf8"));
  if (!Array.isArray(items)) {
    throw new Error("stdin must be a JSON array of chunk sequences");
  }
  const out = {};
  for (const client of clients) {
    const { StreamProcessor } = await import(CLIENTS[client]);
    out[client] = items.map((item) => {
      try {
        return fold(StreamProcessor, item);
      } catch (error) {
        return { messages: null, errors: [{ index: -1, error: describe(error) }], logs: [], state: null };
      }
    });
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((error) => {
  process.stderr.write(`${error?.stack ?? error}\n`);
  process.exit(2);
});
