// The conformance scenario, driven by the official S2 TypeScript SDK (@s2-dev/streamstore)
// against an S2-compatible server (the bundled test server in CI).
//
// Usage: node conformance.mjs <endpoint> <access token> <basin> <fetch|s2s>
//
// Every step is run even when an earlier one failed; the result is one JSON document on
// stdout: {"sdk": "<version>", "transport": ..., "steps": [{"step", "ok", "error"?}],
// "records": [{seq_num, headers: [[b64, b64]], body: b64}]} (the final contents of the
// stream, so the caller can compare them with what another client reads).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import {
	AppendInput,
	AppendRecord,
	FencingTokenMismatchError,
	RangeNotSatisfiableError,
	S2,
	S2Error,
	SeqNumMismatchError,
} from "@s2-dev/streamstore";

const [endpoint, token, basinName, transport] = process.argv.slice(2);
const version = JSON.parse(
	readFileSync(
		new URL("./node_modules/@s2-dev/streamstore/package.json", import.meta.url),
	),
).version;

const endpoints = { account: endpoint, basin: endpoint };
const retry = { maxAttempts: 2, minBaseDelayMillis: 50, maxBaseDelayMillis: 100 };
const s2 = new S2({ accessToken: token, endpoints, retry });
const basin = s2.basin(basinName);
const streamName = `sdk-ts-${transport}`;
const stream = basin.stream(streamName, { forceTransport: transport });
const text = new TextEncoder();
const steps = [];

async function step(name, fn) {
	try {
		await fn();
		steps.push({ step: name, ok: true });
	} catch (error) {
		steps.push({ step: name, ok: false, error: String(error?.stack ?? error) });
	}
}

function withTimeout(promise, ms, what) {
	let timer;
	const timeout = new Promise((_, reject) => {
		timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
	});
	return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const seqNums = (batch) => batch.records.map((r) => r.seqNum);
const b64 = (bytes) => Buffer.from(bytes).toString("base64");

await step("create basin", async () => {
	const info = await s2.basins.create({ basin: basinName });
	assert.equal(info.name ?? info.basin?.name ?? basinName, basinName);
});

await step("create stream", async () => {
	const info = await basin.streams.create({ stream: streamName });
	assert.equal(info.name, streamName);
});

await step("append text and bytes records with headers", async () => {
	const ack = await stream.append(
		AppendInput.create([
			AppendRecord.string({ body: "hello", headers: [["kind", "text"]] }),
			AppendRecord.bytes({
				body: new Uint8Array([0, 255, 1, 254]),
				headers: [[text.encode("kind"), new Uint8Array([0xff, 0x00])]],
			}),
		]),
	);
	assert.equal(ack.start.seqNum, 0);
	assert.equal(ack.end.seqNum, 2);
	assert.equal(ack.tail.seqNum, 2);
});

await step("read back text and bytes", async () => {
	const asText = await stream.read({
		start: { from: { seqNum: 0 } },
		stop: { limits: { count: 1 } },
	});
	assert.deepEqual(seqNums(asText), [0]);
	assert.equal(asText.records[0].body, "hello");
	assert.deepEqual(asText.records[0].headers, [["kind", "text"]]);
	const asBytes = await stream.read(
		{ start: { from: { seqNum: 1 } }, stop: { limits: { count: 1 } } },
		{ as: "bytes" },
	);
	assert.deepEqual([...asBytes.records[0].body], [0, 255, 1, 254]);
	assert.deepEqual([...asBytes.records[0].headers[0][1]], [0xff, 0x00]);
});

await step("match_seq_num right", async () => {
	const ack = await stream.append(
		AppendInput.create([AppendRecord.string({ body: "m2" })], { matchSeqNum: 2 }),
	);
	assert.equal(ack.start.seqNum, 2);
});

await step("match_seq_num wrong", async () => {
	await assert.rejects(
		stream.append(
			AppendInput.create([AppendRecord.string({ body: "never" })], { matchSeqNum: 0 }),
		),
		(error) => error instanceof SeqNumMismatchError && error.expectedSeqNum === 3,
	);
});

await step("fence command", async () => {
	const ack = await stream.append(AppendInput.create([AppendRecord.fence("writer-1")]));
	assert.equal(ack.start.seqNum, 3);
});

await step("fencing token wrong", async () => {
	await assert.rejects(
		stream.append(
			AppendInput.create([AppendRecord.string({ body: "never" })], {
				fencingToken: "intruder",
			}),
		),
		(error) =>
			error instanceof FencingTokenMismatchError &&
			error.expectedFencingToken === "writer-1",
	);
});

await step("fencing token right", async () => {
	const ack = await stream.append(
		AppendInput.create(
			[AppendRecord.string({ body: "f1" }), AppendRecord.string({ body: "f2" })],
			{ fencingToken: "writer-1" },
		),
	);
	assert.deepEqual([ack.start.seqNum, ack.end.seqNum], [4, 6]);
});

await step("check tail", async () => {
	const tail = await stream.checkTail();
	assert.equal(tail.tail.seqNum, 6);
});

await step("read from a sequence number with a count limit", async () => {
	const batch = await stream.read({
		start: { from: { seqNum: 4 } },
		stop: { limits: { count: 1 } },
	});
	assert.deepEqual(seqNums(batch), [4]);
});

await step("read from a tail offset", async () => {
	const batch = await stream.read({ start: { from: { tailOffset: 2 } } });
	assert.deepEqual(seqNums(batch), [4, 5]);
	assert.deepEqual(
		batch.records.map((r) => r.body),
		["f1", "f2"],
	);
});

await step("read with a byte limit", async () => {
	// "f1" meters 8 + 2 = 10 bytes: 15 bytes allow one record, not two.
	const batch = await stream.read({
		start: { from: { seqNum: 4 } },
		stop: { limits: { bytes: 15 } },
	});
	assert.deepEqual(seqNums(batch), [4]);
});

await step("read past the tail without clamp", async () => {
	await assert.rejects(
		stream.read({ start: { from: { seqNum: 1000 } } }),
		(error) => error instanceof RangeNotSatisfiableError && error.tail?.seqNum === 6,
	);
});

await step("read past the tail with clamp waits at the tail", async () => {
	const reading = stream.read({
		start: { from: { seqNum: 1000 }, clamp: true },
		stop: { waitSecs: 5 },
	});
	// give the read time to reach the server before the record it waits for is appended
	await new Promise((resolve) => setTimeout(resolve, 800));
	await stream.append(AppendInput.create([AppendRecord.string({ body: "late" })]));
	const batch = await withTimeout(reading, 8000, "clamped read");
	assert.deepEqual(seqNums(batch), [6]);
	assert.equal(batch.records[0].body, "late");
});

await step("tailing read session receives a later append", async () => {
	const session = await stream.readSession({ start: { from: { seqNum: 7 } } });
	const iterator = session[Symbol.asyncIterator]();
	const next = iterator.next();
	await new Promise((resolve) => setTimeout(resolve, 300));
	await stream.append(AppendInput.create([AppendRecord.string({ body: "live" })]));
	const item = await withTimeout(next, 8000, "read session");
	assert.equal(item.done, false);
	assert.equal(item.value.seqNum, 7);
	assert.equal(item.value.body, "live");
	await iterator.return?.();
});

await step("read session from a sequence number with a count limit ends", async () => {
	const session = await stream.readSession({
		start: { from: { seqNum: 0 } },
		stop: { limits: { count: 3 } },
	});
	const seen = [];
	for await (const record of session) {
		seen.push(record.seqNum);
	}
	assert.deepEqual(seen, [0, 1, 2]);
});

await step("append session acks in order", async () => {
	const session = await stream.appendSession();
	const tickets = [];
	for (const body of ["s1", "s2", "s3"]) {
		tickets.push(await session.submit(AppendInput.create([AppendRecord.string({ body })])));
	}
	const acks = [];
	for (const ticket of tickets) {
		acks.push(await withTimeout(ticket.ack(), 8000, "append session ack"));
	}
	assert.deepEqual(
		acks.map((a) => [a.start.seqNum, a.end.seqNum]),
		[
			[8, 9],
			[9, 10],
			[10, 11],
		],
	);
	await session.close();
});

await step("trim command", async () => {
	const ack = await stream.append(
		AppendInput.create([AppendRecord.trim(2)], { fencingToken: "writer-1" }),
	);
	assert.equal(ack.start.seqNum, 11);
	const batch = await stream.read({ start: { from: { seqNum: 0 } } });
	assert.equal(batch.records[0].seqNum, 2);
});

await step("404 for a missing basin", async () => {
	await assert.rejects(
		s2.basins.getConfig({ basin: "missing-basin-404" }),
		(error) => error instanceof S2Error && error.status === 404,
	);
});

await step("404 for a missing stream", async () => {
	const strict = `${basinName.slice(0, 40)}-strict`;
	await s2.basins.create({
		basin: strict,
		config: { createStreamOnAppend: false, createStreamOnRead: false },
	});
	const missing = s2.basin(strict).stream("missing", { forceTransport: transport });
	await assert.rejects(
		missing.checkTail(),
		(error) => error instanceof S2Error && error.status === 404,
	);
	await assert.rejects(
		missing.append(AppendInput.create([AppendRecord.string({ body: "x" })])),
		(error) => error instanceof S2Error && error.status === 404,
	);
	await missing.close();
});

await step("401 for a wrong access token", async () => {
	const intruder = new S2({ accessToken: "wrong-token", endpoints, retry });
	const other = intruder.basin(basinName).stream(streamName, { forceTransport: transport });
	await assert.rejects(
		other.checkTail(),
		(error) => error instanceof S2Error && error.status === 401,
	);
	await other.close();
});

let records = [];
await step("final contents", async () => {
	const batch = await stream.read({ start: { from: { seqNum: 0 } } }, { as: "bytes" });
	records = batch.records.map((r) => ({
		seq_num: r.seqNum,
		headers: r.headers.map(([n, v]) => [b64(n), b64(v)]),
		body: b64(r.body),
	}));
});

await stream.close();
process.stdout.write(`${JSON.stringify({ sdk: version, transport, steps, records })}\n`);
process.exit(0);
