// The agent console and the supervisor dashboard in a real browser, with a caller on the
// softphone: three pages of one headless Chromium, all hearing the same WAV as their microphone.
// It starts its own server (dead air after 3 s), creates the "billing" department and a browser
// agent, and checks: the caller asks for billing and the agent console rings with the caller and
// the bot conversation so far; the agent accepts, gets the call's audio and is heard (agent
// speech on the call log); the supervisor sees the call, its transcript and the agent busy; both
// sides muted raise a dead_air alert on the dashboard that clears once one of them talks again;
// the agent hangs up (cause agent_hangup) and saves a disposition, which lands on the call log.
// Screenshots go to test-artifacts/agent-console.png and test-artifacts/supervisor.png; on
// failure, *-failure.png of every page and test-artifacts/console-failure.json.
//
// Run from the repository root after `cargo build --bin switchboard`:
//   node tests/browser/console.test.mjs
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { artifacts, launchChromium, log, makeWav, startServer } from './harness.mjs';

// A slow machine runs the server (debug build), speech recognition and three pages of media
// at once: steps get a lot of room, and every wait ends as soon as its condition holds.
const STEP_TIMEOUT = 60_000;
const AGENT = 'ana';
const NOTES = 'Explained the last invoice; the caller is happy.';

// The one file every microphone in the browser plays, each from the top when it is opened: the
// caller's when the call starts, the agent's when they join. The caller answers the bot's
// question after the greeting; the long pause covers the transfer and the offer; then speech
// with pauses under the 3 s dead-air threshold, long enough that whoever is unmuted last still
// has something to say however slow the run (the agent says "billing please" too, 9 s in).
function micScript() {
  const talk = Array.from({ length: 24 }, () => ({ text: 'yes I can help you', after: 1.5 }));
  return [{ text: 'billing please', before: 9, after: 9 }, ...talk];
}

async function until(what, fn, ms = STEP_TIMEOUT, every = 250) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (err) { last = err; }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, every));
  }
}

function rest(server) {
  return async (method, path, body) => {
    const init = { method, headers: { Authorization: `Bearer ${server.key}` } };
    if (body !== undefined) { init.headers['Content-Type'] = 'application/json'; init.body = JSON.stringify(body); }
    const res = await fetch(`${server.base}${path}`, init);
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
    return text ? JSON.parse(text) : null;
  };
}

const kindOf = (e) => String(e.kind || '').replace(/^call\./, '');

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'console-'));
  mkdirSync(artifacts, { recursive: true });
  const wav = makeWav(dir, 'agent_call_48k', micScript());
  const server = await startServer(dir, {
    env: { SWITCHBOARD_ALERTS__DEAD_AIR: '3s', SWITCHBOARD_ALERTS__DEAD_AIR_CRITICAL: '60s' },
  });
  log('server at', server.base);
  const api = rest(server);
  const callLog = (id) => api('GET', `/api/v1/calls/${id}`);
  const key = encodeURIComponent(server.key);
  const started = Date.now();
  const browser = await launchChromium(wav);
  const pages = {};
  let callId = null;
  try {
    const dept = await api('POST', '/api/v1/departments', { name: 'billing' });
    await api('POST', '/api/v1/agents', { id: AGENT, name: 'Ana', departments: [dept.id], reach: { kind: 'browser' } });
    // Ana signs in with her own agent key, not the tenant's: the console works within its scope.
    const agentKey = encodeURIComponent((await api('POST', `/api/v1/agents/${AGENT}/keys`, { label: 'console test' })).key);
    log('department', dept.id, 'and agent', AGENT, 'created, with an agent key');

    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    for (const name of ['supervisor', 'agent', 'softphone']) {
      const page = pages[name] = await context.newPage();
      page.on('console', (m) => { if (m.type() === 'error') log(`${name} page error:`, m.text()); });
      page.on('pageerror', (err) => log(`${name} page exception:`, err.message));
    }
    const { supervisor: sup, agent, softphone: phone } = pages;
    const wait = (page, fn, arg) => page.waitForFunction(fn, arg, { timeout: STEP_TIMEOUT });

    await sup.goto(`${server.base}/supervisor#key=${key}`);
    await wait(sup, () => window.supervisor.connection === 'connected');
    log('supervisor connected');

    await agent.goto(`${server.base}/agent?raw=1#key=${agentKey}`);
    await wait(agent, () => window.agentConsole.state === 'idle' && window.agentConsole.connection === 'connected');
    const signedInAs = await agent.evaluate(() => document.querySelector('#agent-id').textContent);
    if (signedInAs !== AGENT) throw new Error(`the agent key signed in as ${signedInAs}, expected ${AGENT}`);
    await agent.click('#status-available');
    await wait(agent, () => window.agentConsole.agentStatus === 'available');
    await wait(sup, (id) => document.querySelector(`#agents-body tr[data-agent-id="${id}"]`)?.dataset.status === 'available', AGENT);
    log('agent signed in and available');

    await phone.goto(`${server.base}/?entry=front-desk&raw=1#key=${key}`);
    await wait(phone, () => document.querySelectorAll('#entry option').length > 0);
    await phone.click('#call');
    await wait(phone, () => window.softphone.state === 'connected');
    callId = await phone.evaluate(() => window.softphone.callId);
    log('caller connected, call', callId);

    await wait(phone, () => window.softphone.lines.some((l) => l.speaker === 'caller' && /billing/i.test(l.text)));
    log('caller said billing');

    // The offer: who is calling and what they told the bot, before answering.
    await wait(agent, (id) => window.agentConsole.state === 'offered' && window.agentConsole.callId === id, callId);
    const o = await (await wait(agent, () => {
      const offer = window.agentConsole.offer;
      return offer && offer.from && offer.history.some((l) => l.speaker === 'bot')
        && offer.history.some((l) => l.speaker === 'caller' && /billing/i.test(l.text)) && offer;
    })).jsonValue();
    const shown = await agent.evaluate(() => ({
      visible: !document.getElementById('offer').hidden,
      caller: document.getElementById('offer-caller').textContent,
      call: document.getElementById('call-id').textContent,
      title: document.title,
      transcript: Array.from(document.querySelectorAll('#transcript li'), (li) => `${li.className}: ${li.textContent}`),
    }));
    if (!shown.visible || shown.caller !== o.from || shown.call !== callId || !/incoming call/i.test(shown.title)) {
      throw new Error(`offer not shown as expected: ${JSON.stringify(shown)}`);
    }
    if (!shown.transcript.some((l) => /^caller: .*billing/i.test(l))) throw new Error(`the caller's words are not on the console: ${JSON.stringify(shown.transcript)}`);
    log(`offered: caller ${o.from}, ${o.transport}, department ${o.department}, ${o.history.length} lines of history`);

    await agent.click('#accept');
    await wait(agent, () => window.agentConsole.state === 'in_call');
    log('agent in call');

    // RTP keeps arriving from the call (50 packets a second, silence included).
    const first = await agent.evaluate(() => window.agentConsole.inboundPackets());
    const grown = await until('RTP packets at the agent', async () => {
      const n = await agent.evaluate(() => window.agentConsole.inboundPackets());
      return n >= first + 100 && n;
    });
    log('agent inbound RTP packets:', first, '->', grown);

    const joined = await until('the agent on the call log, and talking', async () => {
      const events = (await callLog(callId)).events || [];
      const join = events.find((e) => kindOf(e) === 'participant_joined' && e.data?.role === 'agent');
      const spoke = events.find((e) => kindOf(e) === 'agent_speech_started');
      return join && spoke && { join, spoke };
    });
    log('call log: participant_joined', JSON.stringify(joined.join.data), '; agent_speech_started',
      joined.spoke.at && joined.join.at ? `${joined.spoke.at - joined.join.at} ms after joining` : '');

    // The dashboard: the call row, its transcript once selected, the agent busy on it.
    const row = `#calls-body tr[data-call-id="${callId}"]`;
    await wait(sup, (sel) => document.querySelector(sel)?.dataset.state === 'agent', row);
    await sup.click(row);
    await wait(sup, (id) => window.supervisor.selected === id, callId);
    await wait(sup, () => Array.from(document.querySelectorAll('#transcript li[data-speaker="caller"]')).some((li) => /billing/i.test(li.textContent)));
    await wait(sup, ({ agentId, id }) => {
      const tr = document.querySelector(`#agents-body tr[data-agent-id="${agentId}"]`);
      return tr && tr.dataset.status === 'busy' && tr.textContent.includes(id);
    }, { agentId: AGENT, id: callId });
    const rowText = await sup.$eval(row, (tr) => tr.innerText.replace(/\s+/g, ' '));
    log('supervisor: row', JSON.stringify(rowText), '; transcript has billing; ana busy');

    // Dead air. Earlier silences (before the caller answered, in the queue) may have raised
    // alerts of their own: wait until none is active, so the one after muting is new.
    const deadAir = (id) => Object.values(window.supervisor.alerts).filter((a) => a.kind === 'dead_air' && a.call_id === id).map((a) => a.id);
    await wait(sup, (id) => !Object.values(window.supervisor.alerts).some((a) => a.kind === 'dead_air' && a.call_id === id), callId);
    await phone.click('#mute');
    await agent.click('#mute');
    await wait(phone, () => document.getElementById('mute').getAttribute('aria-pressed') === 'true');
    await wait(agent, () => window.agentConsole.muted === true);
    const mutedAt = Date.now();
    log('caller and agent muted');
    const alertId = await (await wait(sup, (id) => {
      const a = Object.values(window.supervisor.alerts).find((x) => x.kind === 'dead_air' && x.call_id === id);
      return a && document.querySelector(`#alerts li[data-alert-id="${a.id}"][data-call-id="${id}"]`) && a.id;
    }, callId)).jsonValue();
    const active = await api('GET', '/api/v1/alerts?status=active');
    if (!(active.alerts || []).some((a) => a.id === alertId)) throw new Error(`alert ${alertId} is not active over REST: ${JSON.stringify(active)}`);
    log(`dead_air alert ${alertId} on the dashboard ${((Date.now() - mutedAt) / 1000).toFixed(1)} s after muting`);
    // The pictures worth keeping: the dashboard with the call, its transcript and the alert;
    // the console on the call, muted.
    for (const [page, file] of [[agent, 'agent-console.png'], [sup, 'supervisor.png']]) {
      // A page in the background may never paint a frame, and a screenshot waits for one.
      await page.bringToFront();
      await page.screenshot({ path: join(artifacts, file), fullPage: true });
    }

    await agent.click('#mute');
    await wait(agent, () => window.agentConsole.muted === false);
    const unmutedAt = Date.now();
    await wait(sup, (id) => !document.querySelector(`#alerts li[data-alert-id="${id}"]`) && !window.supervisor.alerts[id], alertId);
    log(`dead_air alert resolved ${((Date.now() - unmutedAt) / 1000).toFixed(1)} s after the agent unmuted`);
    const still = await sup.evaluate(deadAir, callId);
    if (still.length) throw new Error(`dead_air alerts still shown: ${still}`);
    await until('the alert resolved over REST', async () => !((await api('GET', '/api/v1/alerts?status=active')).alerts || []).some((a) => a.id === alertId));

    // The agent ends the call, then wraps up.
    await agent.click('#hangup');
    const ended = await (await wait(phone, () => window.softphone.events.find((e) => e.kind === 'call.ended')?.data)).jsonValue();
    if (ended.cause !== 'agent_hangup') throw new Error(`call ended with cause ${ended.cause}, expected agent_hangup`);
    await wait(agent, () => window.agentConsole.state === 'wrap_up');
    log('call ended (agent_hangup); console in wrap-up');

    await agent.selectOption('#disposition', 'resolved');
    await agent.fill('#notes', NOTES);
    await agent.click('#save-disposition');
    await wait(agent, () => window.agentConsole.state === 'idle' && window.agentConsole.agentStatus === 'available');
    const disposition = await until('the disposition on the call log', async () => {
      const events = (await callLog(callId)).events || [];
      return events.find((e) => kindOf(e) === 'disposition');
    });
    if (disposition.data?.disposition !== 'resolved' || disposition.data?.notes !== NOTES || disposition.data?.agent_id !== AGENT) {
      throw new Error(`unexpected disposition event: ${JSON.stringify(disposition)}`);
    }
    log('disposition saved:', JSON.stringify(disposition.data));
    log(`PASS in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (err) {
    await recordFailure(pages, callId && (() => callLog(callId)));
    throw err;
  } finally {
    await browser.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// Everything needed to tell what went wrong without rerunning: each page as it looked, and
// each page's own account of its state, with the call log.
async function recordFailure(pages, callLog) {
  const state = { at: new Date().toISOString() };
  const globals = { agent: 'agentConsole', supervisor: 'supervisor', softphone: 'softphone' };
  for (const [name, page] of Object.entries(pages)) {
    const shot = name === 'agent' ? 'agent-console' : name;
    // A page in the background may never paint a frame, and a screenshot waits for one.
    await page.bringToFront().catch(() => {});
    await page.screenshot({ path: join(artifacts, `${shot}-failure.png`), fullPage: true, timeout: 10_000 })
      .catch((err) => log(`no screenshot of the ${name} page:`, err.message));
    state[name] = await page.evaluate((g) => JSON.parse(JSON.stringify(window[g] ?? null)), globals[name])
      .catch((err) => `unavailable: ${err.message}`);
  }
  if (callLog) state.callLog = await callLog().catch((err) => `unavailable: ${err.message}`);
  const file = join(artifacts, 'console-failure.json');
  writeFileSync(file, JSON.stringify(state, null, 2));
  log('page state written to', file);
  if (state.agent?.lines) log('agent console lines:', JSON.stringify(state.agent.lines));
  if (state.softphone?.lines) log('softphone lines:', JSON.stringify(state.softphone.lines));
}

main().catch((err) => { console.error('[browser-test] FAIL:', err); process.exit(1); });
