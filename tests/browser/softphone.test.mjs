// The softphone in a real browser: Debian's chromium, headless, with a WAV as its microphone
// ("billing please" after enough silence for the greeting and the question), driven by
// playwright-core. It starts a server on a free loopback port (or uses SOFTPHONE_TEST_URL and
// SOFTPHONE_TEST_API_KEY), places a call to the demo flow and checks: connected, the greeting in
// the transcript, "billing" recognized, the transfer, hang-up ending the call. A screenshot goes
// to test-artifacts/softphone.png.
//
// Run from the repository root after `cargo build --bin switchboard`:
//   node tests/browser/softphone.test.mjs
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { artifacts, launchChromium, log, makeWav, startServer } from './harness.mjs';

const STEP_TIMEOUT = 30_000;

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'softphone-'));
  mkdirSync(artifacts, { recursive: true });
  // The silence in front lets the bot finish its greeting and question before the caller answers.
  const wav = makeWav(dir, 'billing_48k', [{ text: 'billing please', before: 9, after: 3 }]);
  const server = process.env.SOFTPHONE_TEST_URL
    ? { base: process.env.SOFTPHONE_TEST_URL, key: process.env.SOFTPHONE_TEST_API_KEY, stop: async () => {} }
    : await startServer(dir);
  log('server at', server.base);
  const browser = await launchChromium(wav);
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
