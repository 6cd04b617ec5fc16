// The softphone in a real browser: Debian's chromium, headless, with a WAV as its microphone
// ("billing please" after enough silence for the greeting and the question), driven by
// playwright-core. It starts a server on a free loopback port (or uses SOFTPHONE_TEST_URL and
// SOFTPHONE_TEST_API_KEY), places a call to the demo flow and checks: connected, the greeting in
// the transcript, "billing" recognized, the transfer, hang-up ending the call. A screenshot goes
// to test-artifacts/softphone.png.
//
// Run from the repository root after `cargo build --bin switchboard`:
//   node tests/browser/softphone.test.mjs
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const root = resolve(new URL('../..', import.meta.url).pathname);
const artifacts = join(root, 'test-artifacts');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const STEP_TIMEOUT = 30_000;

function log(...args) { console.log('[browser-test]', ...args); }

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
    s.on('error', rej);
  });
}

async function waitHttp(url, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try { if ((await fetch(url)).ok) return; } catch (_) { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not come up in ${ms} ms`);
}

// 48 kHz mono 16-bit: what Chromium's fake capture reads best. The silence in front lets the
// bot finish its greeting and question before the caller answers.
function makeWav(dir) {
  const speech = join(dir, 'speech.wav');
  const wav = join(dir, 'billing_48k.wav');
  execFileSync('espeak-ng', ['-w', speech, 'billing please']);
  execFileSync('sox', [speech, '-r', '48000', '-c', '1', '-b', '16', '-e', 'signed-integer', wav, 'pad', '9', '3']);
  return wav;
}

async function startServer(dir) {
  if (process.env.SOFTPHONE_TEST_URL) {
    return { base: process.env.SOFTPHONE_TEST_URL, key: process.env.SOFTPHONE_TEST_API_KEY, stop: async () => {} };
  }
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
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise((r) => child.on('exit', r));
  const base = `http://127.0.0.1:${port}`;
  await waitHttp(`${base}/health`, 30_000);
  const key = readFileSync(join(dataDir, 'demo_api_key'), 'utf8').trim();
  return {
    base,
    key,
    stop: async () => { child.kill('SIGTERM'); await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]); },
  };
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'softphone-'));
  mkdirSync(artifacts, { recursive: true });
  const wav = makeWav(dir);
  const server = await startServer(dir);
  log('server at', server.base);
  const browser = await chromium.launch({
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
  let page;
  try {
    const context = await browser.newContext();
    page = await context.newPage();
    page.on('console', (m) => { if (m.type() === 'error') log('page error:', m.text()); });
    await page.goto(`${server.base}/?entry=front-desk&raw=1#key=${encodeURIComponent(server.key)}`);
    await page.waitForFunction(() => document.querySelectorAll('#entry option').length > 0, null, { timeout: STEP_TIMEOUT });
    await page.click('#call');

    await page.waitForFunction(() => window.softphone.state === 'connected', null, { timeout: STEP_TIMEOUT });
    const callId = await page.evaluate(() => window.softphone.callId);
    log('connected, call', callId);

    await page.waitForFunction(
      () => window.softphone.lines.some((l) => l.speaker === 'bot' && l.text.includes('Thank you for calling')),
      null, { timeout: STEP_TIMEOUT });
    log('greeting in the transcript');

    await page.waitForFunction(
      () => window.softphone.lines.some((l) => l.speaker === 'caller' && /billing/i.test(l.text)),
      null, { timeout: STEP_TIMEOUT });
    log('caller said billing');

    const transfer = await page.waitForFunction(
      () => window.softphone.events.find((e) => e.kind === 'call.transfer_requested')?.data,
      null, { timeout: STEP_TIMEOUT });
    const target = (await transfer.jsonValue()).target;
    if (target !== 'billing') throw new Error(`transferred to ${target}, expected billing`);
    log('routed to', target);

    // The bot's audio reached the browser as RTP (50 packets a second, silence included).
    const packets = await page.evaluate(() => window.softphone.inboundPackets());
    if (!(packets > 100)) throw new Error(`only ${packets} RTP packets received from the bot`);
    log('inbound RTP packets:', packets);

    await page.screenshot({ path: join(artifacts, 'softphone.png'), fullPage: true });
    await page.click('#hangup');
    await page.waitForFunction(
      () => window.softphone.events.some((e) => e.kind === 'call.ended'),
      null, { timeout: STEP_TIMEOUT });
    const ended = await page.evaluate(() => window.softphone.events.find((e) => e.kind === 'call.ended').data);
    log('call ended:', ended.cause);

    const res = await fetch(`${server.base}/api/v1/calls/${callId}`, { headers: { Authorization: `Bearer ${server.key}` } });
    const record = await res.json();
    const transport = record.transport ?? record.call?.transport;
    if (transport !== 'webrtc') throw new Error(`call log transport is ${transport}`);
    log('PASS');
  } catch (err) {
    if (page) await page.screenshot({ path: join(artifacts, 'softphone-failure.png'), fullPage: true }).catch(() => {});
    if (page) log('transcript:', JSON.stringify(await page.evaluate(() => window.softphone?.lines).catch(() => null)));
    throw err;
  } finally {
    await browser.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => { console.error('[browser-test] FAIL:', err); process.exit(1); });
