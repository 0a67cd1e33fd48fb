// Starts a real `strand serve` on free loopback ports with a temporary
// storage directory, and talks to it over HTTP.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, existsSync, rmSync, createWriteStream, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

export async function poll(what, fn, timeoutMs = 60_000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** `extraConfig`: more TOML lines (whole sections) appended to the config. */
export async function startStrand(bin, extraConfig = []) {
  if (!existsSync(bin)) {
    throw new Error(`strand binary not found at ${bin}: build it with \`cargo build\` or set STRAND_BIN`);
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'strand-ui-'));
  const [grpc, http, query, zipkin] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const config = path.join(dir, 'strand.toml');
  writeFileSync(config, [
    '[ingest]', `grpc_addr = "127.0.0.1:${grpc}"`, `http_addr = "127.0.0.1:${http}"`, `zipkin_addr = "127.0.0.1:${zipkin}"`,
    '[storage]', `dir = "${path.join(dir, 'data')}"`,
    '[query]', `addr = "127.0.0.1:${query}"`,
    // strand's own traces (service `strand`) would join the fixtures' services.
    '[self_tracing]', 'enabled = false',
    // The browser tests need no remote-sampling ports (default :5778/:5779,
    // which a Jaeger on the same machine would hold too).
    '[sampling.remote]', 'http_addr = ""', 'grpc_addr = ""',
    ...extraConfig, '',
  ].join('\n'));
  const logPath = path.join(dir, 'strand.log');
  const log = createWriteStream(logPath);
  const child = spawn(bin, ['serve', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  let exited = null;
  child.on('exit', (code, sig) => { exited = `exited with ${code ?? sig}`; });
  const server = {
    dir, child, logPath,
    queryUrl: `http://127.0.0.1:${query}`,
    otlpUrl: `http://127.0.0.1:${http}`,
    log: () => { try { return readFileSync(logPath, 'utf8').slice(-4000); } catch { return ''; } },
    async stop() {
      if (exited === null) {
        child.kill('SIGTERM');
        await poll('strand to stop', () => exited !== null, 15_000).catch(() => child.kill('SIGKILL'));
      }
      log.end();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await poll('strand /readyz', async () => {
      if (exited) throw new Error(`strand ${exited}; log:\n${server.log()}`);
      for (const base of [server.queryUrl, server.otlpUrl]) {
        const r = await fetch(base + '/readyz').catch(() => null);
        if (r && r.ok) return true;
      }
      return false;
    }, 60_000);
  } catch (e) {
    await server.stop();
    throw e;
  }
  return server;
}

export async function ingest(server, body) {
  const text = JSON.stringify(body);
  for (let attempt = 1; ; attempt++) {
    let r;
    try {
      r = await fetch(server.otlpUrl + '/v1/traces', {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: text,
      });
    } catch (e) {
      // A pooled keep-alive connection the server closed while idle fails
      // before anything was sent; an OTLP client retries that, so do we.
      if (attempt < 3 && e.cause && /SOCKET|ECONNRESET|EPIPE/.test(e.cause.code || '')) continue;
      throw new Error(`OTLP/HTTP export failed: ${e.message} (${e.cause && (e.cause.code || e.cause.message)})`);
    }
    if (!r.ok) throw new Error(`OTLP/HTTP export failed: ${r.status} ${await r.text()}`);
    return;
  }
}

export async function getJSON(server, p) {
  const r = await fetch(server.queryUrl + p);
  if (!r.ok) throw new Error(`GET ${p}: ${r.status}`);
  return r.json();
}
