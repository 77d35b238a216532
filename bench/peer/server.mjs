// The peer of bench/run.py: Vercel `resumable-stream` 2.2.13 on Redis (REDIS_URL), behind
// node:http, with the same source and the same routes as bench/app.py:
//   POST /plain/:id              the source as SSE, straight to the response
//   POST /resumable/:id          ctx.resumableStream(id, makeStream)
//   GET  /resumable/:id/stream   ctx.resumeExistingStream(id): 204 when none is running
//   GET  /ping                   204
// Query: n, size, first_ms, interval_ms, yield_every, hold_s (see bench/app.py SourceShape).
// Usage: REDIS_URL=redis://127.0.0.1:6390 node server.mjs --port 8300
import http from "node:http";
import { setTimeout as sleep, setImmediate as nextTurn } from "node:timers/promises";
import { createResumableStreamContext } from "resumable-stream";

const HEADERS = {
  "Content-Type": "text/event-stream",
  "Cache-Control": "no-cache",
  Connection: "keep-alive",
  "X-Vercel-AI-UI-Message-Stream": "v1",
  "X-Accel-Buffering": "no",
};

const portArg = process.argv.indexOf("--port");
const port = Number(portArg > 0 ? process.argv[portArg + 1] : 8300);
const ctx = createResumableStreamContext({ waitUntil: null });

function shapeOf(url) {
  const q = url.searchParams;
  return {
    n: Number(q.get("n") ?? 20),
    size: Number(q.get("size") ?? 100),
    firstMs: Number(q.get("first_ms") ?? 0),
    intervalMs: Number(q.get("interval_ms") ?? 0),
    yieldEvery: Math.max(1, Number(q.get("yield_every") ?? 64)),
    holdS: Number(q.get("hold_s") ?? 0),
  };
}

const DELTA_OVERHEAD = JSON.stringify({ type: "text-delta", id: "t0", delta: "" }).length;

// The benchmark model, already framed as SSE: start, text-start, n deltas, text-end, finish.
async function* frames(shape) {
  let seq = 0;
  const frame = (chunk) => `id: ${++seq}\ndata: ${JSON.stringify(chunk)}\n\n`;
  if (shape.firstMs) await sleep(shape.firstMs);
  yield frame({ type: "start", messageId: "msg-bench" });
  yield frame({ type: "text-start", id: "t0" });
  const pad = "x".repeat(Math.max(1, shape.size - DELTA_OVERHEAD));
  for (let i = 0; i < shape.n; i++) {
    yield frame({ type: "text-delta", id: "t0", delta: pad });
    if (shape.intervalMs) await sleep(shape.intervalMs);
    else if (i % shape.yieldEvery === shape.yieldEvery - 1) await nextTurn();
  }
  if (shape.holdS) await sleep(shape.holdS * 1000);
  yield frame({ type: "text-end", id: "t0" });
  yield frame({ type: "finish", finishReason: "stop" });
  yield "data: [DONE]\n\n";
}

async function readBody(req) {
  let body = "";
  for await (const piece of req) body += piece;
  return JSON.parse(body);
}

async function send(res, stream) {
  res.writeHead(200, HEADERS);
  for await (const piece of stream) {
    if (!res.write(piece)) await new Promise((resolve) => res.once("drain", resolve));
  }
  res.end();
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, "http://127.0.0.1");
  const parts = url.pathname.split("/").filter(Boolean);
  try {
    if (req.method === "GET" && parts[0] === "ping" && parts.length === 1) {
      res.writeHead(204).end(); // the load generator opens its keep-alive connections with it
    } else if (req.method === "POST" && parts[0] === "plain" && parts.length === 2) {
      const body = await readBody(req);
      void body.messages.at(-1);
      await send(res, frames(shapeOf(url)));
    } else if (req.method === "POST" && parts[0] === "resumable" && parts.length === 2) {
      const body = await readBody(req);
      void body.messages.at(-1);
      const shape = shapeOf(url);
      const stream = await ctx.resumableStream(`chat-${parts[1]}`, () =>
        ReadableStream.from(frames(shape)),
      );
      if (!stream) {
        res.writeHead(409).end("Stream already done");
        return;
      }
      await send(res, stream);
    } else if (req.method === "GET" && parts[0] === "resumable" && parts[2] === "stream") {
      const stream = await ctx.resumeExistingStream(`chat-${parts[1]}`);
      if (!stream) {
        res.writeHead(204).end();
        return;
      }
      await send(res, stream);
    } else {
      res.writeHead(404).end();
    }
  } catch (err) {
    if (!res.headersSent) res.writeHead(500).end(String(err));
    else res.destroy();
  }
});

server.keepAliveTimeout = 30_000;
server.listen(port, "127.0.0.1", () => console.log(`peer listening on 127.0.0.1:${port}`));
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => process.exit(0));
}
