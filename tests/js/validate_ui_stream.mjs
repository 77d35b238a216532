// Validate AI SDK UI message streams (SSE bodies as the Python server sends them) with the
// real `ai` client, network-free.
//
// Usage:
//   node validate_ui_stream.mjs [ai|ai-v5|ai-v5-0]          < body.sse
//     -> one JSON line {ok, error, message, finishReason, status, errorChunks, chunkTypes, displayed}
//   node validate_ui_stream.mjs --batch ai,ai-v5       < streams.json   (a JSON array of SSE bodies)
//     -> one JSON line {"ai": [result, ...], "ai-v5": [result, ...]}
//
// Each body goes through the same path as `useChat`: an `AbstractChat` subclass with a
// `DefaultChatTransport` whose `fetch` returns the body (so `processResponseStream`, the zod
// chunk schema and `processUIMessageStream` all run), after `chat.sendMessage({text})`.
//
// Result fields:
//   ok           false when the client rejected the stream (schema validation error, a chunk
//                that `processUIMessageStream` refuses, ...). An `error` chunk sent by the server
//                is NOT a failure of the stream: it is reported in `errorChunks` (and in `error`),
//                and `status` is then "error", as in the browser.
//   error        message of the client error, or null
//   message      the assistant message as the client built it (`onFinish({message})`, i.e. the
//                internal state after the last chunk), JSON round-tripped so keys set to
//                `undefined` are dropped
//   displayed    the last assistant message in `chat.messages` (the snapshot taken at the last
//                `write()`), which is what a UI renders
//   finishReason `onFinish({finishReason})`
//   status       final `chat.status`
//   errorChunks  `errorText` of every `error` chunk the client parsed
//   chunkTypes   types of every chunk the client parsed, in order
// The process always exits 0 when it could produce output; the caller asserts on `ok`.

import { readFileSync } from "node:fs";

const PACKAGES = new Set(["ai", "ai-v5", "ai-v5-0", "ai-v7"]);

function parseArgs(argv) {
  let batch = false;
  let packages = ["ai"];
  for (const arg of argv) {
    if (arg === "--batch") {
      batch = true;
    } else {
      packages = arg.split(",").filter((p) => p.length > 0);
    }
  }
  for (const p of packages) {
    if (!PACKAGES.has(p)) {
      throw new Error(`unknown client package ${JSON.stringify(p)} (expected ai, ai-v5, ai-v5-0 or ai-v7)`);
    }
  }
  return { batch, packages };
}

class MemoryChatState {
  constructor() {
    this.messages = [];
    this.status = "ready";
    this.error = undefined;
  }
  pushMessage = (message) => {
    this.messages = this.messages.concat(this.snapshot(message));
  };
  popMessage = () => {
    this.messages = this.messages.slice(0, -1);
  };
  replaceMessage = (index, message) => {
    this.messages = [
      ...this.messages.slice(0, index),
      this.snapshot(message),
      ...this.messages.slice(index + 1),
    ];
  };
  snapshot = (value) => structuredClone(value);
}

function jsonRoundTrip(value) {
  return value === undefined ? null : JSON.parse(JSON.stringify(value));
}

async function validateOne(mod, sseText) {
  const { AbstractChat, DefaultChatTransport } = mod;
  const chunks = [];
  const errors = [];
  let finished = null;

  class RecordingTransport extends DefaultChatTransport {
    processResponseStream(stream) {
      return super.processResponseStream(stream).pipeThrough(
        new TransformStream({
          transform(chunk, controller) {
            chunks.push(chunk);
            controller.enqueue(chunk);
          },
        }),
      );
    }
  }

  class ValidatorChat extends AbstractChat {
    constructor(options) {
      super({ ...options, state: new MemoryChatState() });
    }
  }

  let counter = 0;
  const chat = new ValidatorChat({
    id: "validator-chat",
    generateId: () => `client-id-${counter++}`,
    transport: new RecordingTransport({
      api: "http://validator.invalid/api/chat",
      fetch: async () =>
        new Response(sseText, {
          status: 200,
          headers: { "content-type": "text/event-stream" },
        }),
    }),
    onError: (error) => errors.push(error),
    onFinish: (event) => {
      finished = event;
    },
  });

  await chat.sendMessage({ text: "validate" });

  const errorChunks = chunks.filter((c) => c.type === "error").map((c) => c.errorText);
  // An Error built from an `error` chunk is the server's own report, not a client rejection.
  const clientErrors = errors.filter(
    (e) => !(e.constructor === Error && errorChunks.includes(e.message)),
  );
  const last = chat.messages.at(-1);
  const displayed = last != null && last.role === "assistant" ? last : null;
  const firstError = clientErrors[0] ?? errors[0];
  return {
    ok: clientErrors.length === 0,
    error: firstError == null ? null : `${firstError.name}: ${firstError.message}`,
    message: jsonRoundTrip(finished?.message ?? displayed),
    displayed: jsonRoundTrip(displayed),
    finishReason: finished?.finishReason ?? null,
    status: chat.status,
    errorChunks,
    chunkTypes: chunks.map((c) => c.type),
  };
}

async function safeValidate(mod, sseText) {
  try {
    return await validateOne(mod, sseText);
  } catch (error) {
    return {
      ok: false,
      error: `validator crashed: ${error?.stack ?? error}`,
      message: null,
      displayed: null,
      finishReason: null,
      status: null,
      errorChunks: [],
      chunkTypes: [],
    };
  }
}

async function main() {
  const { batch, packages } = parseArgs(process.argv.slice(2));
  const input = readFileSync(0, "utf8");
  const modules = {};
  for (const p of packages) {
    modules[p] = await import(p);
  }
  if (!batch) {
    const result = await safeValidate(modules[packages[0]], input);
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const bodies = JSON.parse(input);
  if (!Array.isArray(bodies) || bodies.some((b) => typeof b !== "string")) {
    throw new Error("--batch expects a JSON array of SSE bodies (strings) on stdin");
  }
  const out = {};
  for (const p of packages) {
    out[p] = [];
    for (const body of bodies) {
      out[p].push(await safeValidate(modules[p], body));
    }
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((error) => {
  process.stderr.write(`${error?.stack ?? error}\n`);
  process.exit(2);
});
