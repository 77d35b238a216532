// The main loop every Node driver shares: parse the arguments, run one scenario against a
// deadline, print ONE JSON line ({ok, ...header, timedOut, ...result, elapsedMs}) and exit.
// Exit codes: 0 (the caller reads `ok`), 2 (bad arguments), 3 (timed out). Open sockets or
// live subscriptions never keep the process alive: it exits when the line is written.

export async function runDriver({ parseArgs, header, scenarios, isUsageError = () => false }) {
  const started = Date.now();
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${error.message}\n`);
    process.exit(2);
  }
  const out = { result: () => ({}) };
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(Object.assign(new Error(`timed out after ${opts.timeoutMs} ms`), { timeout: true })),
      opts.timeoutMs,
    );
  });
  let line;
  let code = 0;
  try {
    const run = (await scenarios(opts, out))[opts.scenario];
    const result = await Promise.race([run(), timeout]);
    line = { ok: true, ...header(opts), timedOut: false, ...result };
  } catch (error) {
    if (isUsageError(error)) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    code = error?.timeout ? 3 : 0;
    line = {
      ok: false,
      ...header(opts),
      timedOut: Boolean(error?.timeout),
      driverError: String(error?.stack ?? error),
      ...out.result(),
    };
  } finally {
    clearTimeout(timer);
  }
  line.elapsedMs = Date.now() - started;
  process.stdout.write(`${JSON.stringify(line)}\n`);
  process.exit(code);
}
