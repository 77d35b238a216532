// tanstack-connection.js: a dependency-free connection adapter for `@tanstack/ai-client`
// (`ChatClient`, `useChat`) on the resumable-chat TanStack session routes. It ships with the
// Python package (`resumable_chat/static/tanstack-connection.js`) and plays the role of
// `createS2Connection({mode: "session"})` from `@s2-dev/resumable-stream/tanstack-ai/client`
// 2.1, which is not installable from npm.
//
//   import { createResumableConnection } from "/tanstack-connection.js";
//   const connection = createResumableConnection({
//     sendUrl: "/api/tanstack/chat",
//     stopUrl: "/api/tanstack/chat",
//     subscribeUrl: `/api/tanstack/chat/replay?id=${encodeURIComponent(chatId)}`,
//     body: { id: chatId },
//   });
//   const chat = useChat({ connection, live: true });        // or new ChatClient({connection})
//   // Stop button: chat.stop(); connection.stop();
//
// Options:
//   sendUrl       string | () => string. POST target of send() (required).
//   subscribeUrl  string | (cursor?: number) => string. GET target of subscribe() (required).
//                 A string gets `from=<cursor>` once a cursor is known (any `from` is
//                 replaced; other query parameters and the #fragment are kept; relative
//                 URLs stay relative). A function is called with the cursor (undefined on
//                 the first load).
//   stopUrl       string | () => string. When set, the adapter has stop() (DELETE).
//   body          object | (messages, data) => object. Merged at the top level after the
//                 base `{messages, data}` of POST and `{messages: []}` of DELETE.
//   headers       HeadersInit | () => HeadersInit | Promise<HeadersInit>. Sent after
//                 `Content-Type: application/json` on POST and DELETE; the only headers of GET.
//   fetch         the fetch to use (default globalThis.fetch).
//   credentials   fetch `credentials` (default "same-origin").
//   retryDelayMs  first reconnect delay in ms (default 250); doubles per failed attempt up to
//                 5000.
//   maxRetries    reconnect attempts in a row without receiving anything before subscribe()
//                 throws the last error (default 10).
//
// The adapter is a TanStack `SubscribeConnectionAdapter`:
//   subscribe(signal)  async generator of StreamChunks. GETs subscribeUrl and parses the SSE
//                      body (spec framing: LF/CR/CRLF lines, multi-line `data`, `id`, comment
//                      lines and other fields skipped; empty data and `[DONE]` ignored;
//                      malformed JSON skipped). The cursor is the largest numeric SSE `id`
//                      seen (`/^\d+$/`, safe integers only); it lives in the adapter object,
//                      so a later subscribe() (ChatClient re-subscribing) continues from it.
//                      Without a cursor the server sends the first load (one
//                      MESSAGES_SNAPSHOT, the running run, then live); with one, the raw
//                      records after it. The server's session replay never ends by itself,
//                      so an ended or broken body, or a failed fetch, is a dropped
//                      connection: subscribe() reconnects with the cursor, after a short
//                      backoff (502/503/504 responses are retried the same way). A 416 (the
//                      cursor is past the end of the log, e.g. the server's embedded log was
//                      reset) drops the cursor and loads again from scratch. A 204 or a body-
//                      less response yields a synthetic terminal chunk
//                      `{type: "RUN_FINISHED", runId: "run-<ms>", timestamp, finishReason:
//                      "stop"}` and returns. Other non-2xx responses
//                      throw `Error("HTTP <status> <statusText>")`. An abort of `signal` ends
//                      the generator quietly.
//   send(messages, data, signal)  POSTs `{messages, data, ...body}` as JSON and discards the
//                      response body (202: the answer arrives through subscribe()). Non-2xx
//                      (409 while a run is live) throws `Error("HTTP <status> <statusText>")`.
//   stop()             (with stopUrl) DELETEs `{messages: [], ...body}`; resolves to the HTTP
//                      status (202 stopped, 204 nothing running); non-2xx throws. The run
//                      then ends with `RUN_FINISHED {finishReason: "stop"}` on every
//                      subscription. ChatClient.stop() alone only aborts the local request.
//   cursor             (read-only) the current cursor, or undefined.

const MAX_RETRY_DELAY_MS = 5000;
const RETRYABLE_STATUS = new Set([502, 503, 504]);

function resolveUrl(url, ...args) {
  return typeof url === "function" ? url(...args) : url;
}

/** `url` with `from=<cursor>`: other params kept verbatim, any `from` replaced, fragment kept. */
function withCursor(url, cursor) {
  if (cursor === undefined) return url;
  const hashAt = url.indexOf("#");
  const fragment = hashAt === -1 ? "" : url.slice(hashAt);
  const rest = hashAt === -1 ? url : url.slice(0, hashAt);
  const queryAt = rest.indexOf("?");
  const path = queryAt === -1 ? rest : rest.slice(0, queryAt);
  const query = queryAt === -1 ? "" : rest.slice(queryAt + 1);
  const params = query.split("&").filter((param) => {
    if (param === "") return false;
    const key = param.split("=", 1)[0].replace(/\+/g, " ");
    try {
      return decodeURIComponent(key) !== "from";
    } catch {
      return true;
    }
  });
  params.push(`from=${cursor}`);
  return `${path}?${params.join("&")}${fragment}`;
}

function httpError(response) {
  return new Error(`HTTP ${response.status} ${response.statusText ?? ""}`.trim());
}

function discardBody(response) {
  if (response.body && !response.bodyUsed) response.body.cancel().catch(() => {});
}

function abortError() {
  return new DOMException("The operation was aborted.", "AbortError");
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError());
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * The events of an SSE body, per the HTML spec's parsing rules: `{id, data}` with `id`
 * undefined when the event had no `id` field. An event cut off by the end of the body is
 * dropped (it was never complete). Ends when `signal` aborts.
 */
async function* sseEvents(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  // Also end on abort when a custom fetch does not tie the body to the signal.
  const onAbort = () => reader.cancel().catch(() => {});
  signal?.addEventListener("abort", onAbort, { once: true });
  let buffer = "";
  let data = null; // lines of the current event's data, or null when none yet
  let id;
  const onLine = (line) => {
    if (line === "") {
      const event = data === null && id === undefined ? null : { id, data: data?.join("\n") ?? "" };
      data = null;
      id = undefined;
      return event;
    }
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") (data ??= []).push(value);
    else if (field === "id" && !value.includes("\0")) id = value;
    return null;
  };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let start = 0;
      for (;;) {
        const lf = buffer.indexOf("\n", start);
        const cr = buffer.indexOf("\r", start);
        let end;
        if (cr !== -1 && (lf === -1 || cr < lf)) {
          // A CR at the very end may be the first half of a CRLF: wait for more.
          if (cr === buffer.length - 1) break;
          end = cr;
        } else if (lf !== -1) end = lf;
        else break;
        const line = buffer.slice(start, end);
        start = buffer[end] === "\r" && buffer[end + 1] === "\n" ? end + 2 : end + 1;
        const event = onLine(line);
        if (event) yield event;
      }
      buffer = buffer.slice(start);
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    reader.cancel().catch(() => {});
  }
}

/** Build the adapter. See the header comment for the options and the behaviour. */
export function createResumableConnection(options = {}) {
  const {
    sendUrl,
    subscribeUrl,
    stopUrl,
    body,
    headers,
    credentials = "same-origin",
    retryDelayMs = 250,
    maxRetries = 10,
  } = options;
  if (!sendUrl) throw new Error("createResumableConnection: sendUrl is required");
  if (!subscribeUrl) throw new Error("createResumableConnection: subscribeUrl is required");
  const doFetch = options.fetch ?? ((...args) => globalThis.fetch(...args));
  let cursor;

  const customHeaders = async () => (typeof headers === "function" ? await headers() : headers);
  const jsonHeaders = async () => {
    const merged = new Headers({ "Content-Type": "application/json" });
    new Headers((await customHeaders()) ?? {}).forEach((value, key) => merged.set(key, value));
    return merged;
  };
  const extraBody = async (messages, data) =>
    (typeof body === "function" ? await body(messages, data) : body) ?? {};

  const advance = (id) => {
    if (id === undefined || !/^\d+$/.test(id)) return;
    const n = Number(id);
    if (Number.isSafeInteger(n) && (cursor === undefined || n > cursor)) cursor = n;
  };

  async function* subscribe(signal) {
    let failures = 0;
    let lastError;
    while (!signal?.aborted) {
      if (failures > 0) {
        if (failures > maxRetries) throw lastError;
        const delay = Math.min(retryDelayMs * 2 ** (failures - 1), MAX_RETRY_DELAY_MS);
        try {
          await sleep(delay, signal);
        } catch {
          return; // aborted while waiting
        }
      }
      let response;
      try {
        const url =
          typeof subscribeUrl === "function"
            ? subscribeUrl(cursor)
            : withCursor(subscribeUrl, cursor);
        const init = { method: "GET", credentials, signal };
        const extra = await customHeaders();
        if (extra !== undefined) init.headers = extra;
        response = await doFetch(url, init);
      } catch (error) {
        if (signal?.aborted) return;
        lastError = error;
        failures += 1;
        continue;
      }
      if (response.status === 416 && cursor !== undefined) {
        discardBody(response);
        cursor = undefined; // the log no longer has our position: load from scratch
        failures += 1;
        lastError = httpError(response);
        continue;
      }
      if (RETRYABLE_STATUS.has(response.status)) {
        discardBody(response);
        lastError = httpError(response);
        failures += 1;
        continue;
      }
      if (!response.ok) {
        discardBody(response);
        throw httpError(response);
      }
      if (response.status === 204 || !response.body) {
        const now = Date.now();
        yield { type: "RUN_FINISHED", runId: `run-${now}`, timestamp: now, finishReason: "stop" };
        return;
      }
      try {
        for await (const event of sseEvents(response.body, signal)) {
          advance(event.id);
          failures = 0;
          const data = event.data;
          if (data === "" || data === "[DONE]") continue;
          let chunk;
          try {
            chunk = JSON.parse(data);
          } catch {
            continue; // malformed frame: skipped
          }
          if (chunk === null || typeof chunk !== "object") continue;
          yield chunk;
          if (signal?.aborted) return;
        }
        lastError = new Error("the subscription ended");
      } catch (error) {
        if (signal?.aborted) return;
        lastError = error;
      }
      failures += 1; // the body ended or broke: reconnect from the cursor
    }
  }

  async function send(messages, data, signal) {
    const payload = { messages, data, ...(await extraBody(messages, data)) };
    const response = await doFetch(resolveUrl(sendUrl), {
      method: "POST",
      headers: await jsonHeaders(),
      body: JSON.stringify(payload),
      credentials,
      signal,
    });
    discardBody(response);
    if (!response.ok) throw httpError(response);
  }

  const adapter = {
    subscribe,
    send,
    get cursor() {
      return cursor;
    },
  };
  if (stopUrl) {
    adapter.stop = async () => {
      const payload = { messages: [], ...(await extraBody([], undefined)) };
      const response = await doFetch(resolveUrl(stopUrl), {
        method: "DELETE",
        headers: await jsonHeaders(),
        body: JSON.stringify(payload),
        credentials,
      });
      discardBody(response);
      if (!response.ok) throw httpError(response);
      return response.status;
    };
  }
  return adapter;
}
