// What the browser tests share: a server of their own on a free loopback port, a spoken WAV to
// feed Chromium as its microphone, and Debian's chromium under playwright-core.
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

export const root = resolve(new URL('../..', import.meta.url).pathname);
export const artifacts = join(root, 'test-artifacts');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

export function log(...args) { console.log('[browser-test]', ...args); }

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
    s.on('error', rej);
  });
}

export async function waitHttp(url, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try { if ((await fetch(url)).ok) return; } catch (_) { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not come up in ${ms} ms`);
}

// A microphone script: segments of `{ text, before, after }` (seconds of silence around each
// phrase), played one after the other. 48 kHz mono 16-bit: what Chromium's fake capture reads
// best.
export function makeWav(dir, name, segments) {
  const parts = segments.map((seg, i) => {
    const speech = join(dir, `${name}-${i}-speech.wav`);
    const part = segments.length === 1 ? join(dir, `${name}.wav`) : join(dir, `${name}-${i}.wav`);
    execFileSync('espeak-ng', ['-w', speech, seg.text]);
    execFileSync('sox', [speech, '-r', '48000', '-c', '1', '-b', '16', '-e', 'signed-integer', part,
      'pad', String(seg.before || 0), String(seg.after || 0)]);
    return part;
  });
  if (parts.length === 1) return parts[0];
  const wav = join(dir, `${name}.wav`);
  execFileSync('sox', [...parts, wav]);
  return wav;
}

// A switchboard of the test's own; `env` adds SWITCHBOARD_* overrides (alert thresholds, say).
export async function startServer(dir, { env = {} } = {}) {
  const bin = process.env.SOFTPHONE_TEST_BIN || join(process.env.CARGO_TARGET_DIR || join(root, 'target'), 'debug/switchboard');
  if (!existsSync(bin)) throw new Error(`${bin} not found: run cargo build --bin switchboard`);
  const port = await freePort();
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir);
  const child = spawn(bin, ['serve'], {
    cwd: root,
    env: {
      ...process.env,
      SWITCHBOARD_SERVER__LISTEN: `127.0.0.1:${port}`,
      SWITCHBOARD_SERVER__DATA_DIR: dataDir,
      SWITCHBOARD_SERVER__LOG_FILTER: process.env.TEST_LOG || 'warn',
      ...env,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise((r) => child.on('exit', r));
  const base = `http://127.0.0.1:${port}`;
  // A server that dies at start-up (a bad config override) should say so, not time out.
  let up = false;
  await Promise.race([
    waitHttp(`${base}/health`, 30_000).then(() => { up = true; }),
    exited.then((code) => { if (!up) throw new Error(`switchboard exited with ${code} before it was up`); }),
  ]);
  const key = readFileSync(join(dataDir, 'demo_api_key'), 'utf8').trim();
  return {
    base,
    key,
    stop: async () => { child.kill('SIGTERM'); await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]); },
  };
}

// One headless Chromium; every page in it hears the same WAV as its microphone.
export function launchChromium(wav) {
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-dev-shm-usage',
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${wav}%noloop`,
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
}
