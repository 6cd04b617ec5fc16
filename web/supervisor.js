// Switchboard supervisor dashboard: a tenant's live calls, queues, agents and alerts from
// /ws/events, and joining a call's audio to listen, whisper to the agent or barge in (the audio
// part is in supervisor-listen.js). Plain JS for current Chromium and Firefox, no build step.
//
// Keeping the picture right: a REST snapshot first, then the events from since=0. The server's
// retained history overlaps the snapshot, so calls already under way get their department, agent
// and transcript, and replayed events older than the snapshot cannot undo it (agents compare
// times). Reconnects resume with since=<last seq>; when events were lost, a new snapshot.
//
// The API key is typed in or passed as #key=<key>; it is kept in localStorage (shared with the
// softphone) and taken out of the address bar so it does not end up in bookmarks or history.
'use strict';

const MAX_LINES = 200, MAX_CALLS = 1000, MAX_ALERTS = 500;    // memory stays bounded
const ENDED_KEEP_MS = 15000;                                   // an ended call stays listed this long
const BACKOFF_MIN_MS = 250, BACKOFF_MAX_MS = 5000, QUEUE_REFRESH_MS = 5000;
const SILENCE_SHOW_MS = 2000, SILENCE_LONG_MS = 8000;
const KEY_STORE = 'switchboard.apiKey', NAME_STORE = 'switchboard.supervisorName';
const STATE_LABELS = {
  bot: 'with bot', queued: 'queued', offered: 'ringing agent', agent: 'with agent',
  transferring: 'transferring', overflow: 'overflow', ended: 'ended',
};
const SPEAKERS = { caller: 'Caller', bot: 'Bot', agent: 'Agent', supervisor: 'Supervisor' };
const STATUS_ORDER = ['busy', 'offered', 'wrap_up', 'available', 'away', 'offline'];
const SEVERITY_ORDER = ['critical', 'warning', 'info'];

const $ = (id) => document.getElementById(id);
const ui = {
  form: $('key-form'), key: $('api-key'), name: $('supervisor-name'), connection: $('connection'),
  error: $('error'), callsBody: $('calls-body'), callsEmpty: $('calls-empty'), callCount: $('call-count'),
  selectedId: $('selected-call-id'), summary: $('call-summary'), participants: $('participants'),
  transcript: $('transcript'), queuesBody: $('queues-body'), queuesStatus: $('queues-status'),
  agentsBody: $('agents-body'), agentsEmpty: $('agents-empty'), alerts: $('alerts'),
  alertsEmpty: $('alerts-empty'), alertCount: $('alert-count'),
};

// Everything a test (or a curious user) may want to look at. Collections are keyed by id, have
// no prototype (so any id is a safe key) and hold plain data only.
const dict = () => Object.create(null);
const supervisor = window.supervisor = {
  connection: 'offline', lastSeq: 0, eventCount: 0, selected: null, errors: [],
  calls: dict(), agents: dict(), alerts: dict(), departments: dict(), queues: [], monitor: { ...SupervisorListen.IDLE },
};

// ---- REST and errors -------------------------------------------------------------------------

let apiKey = '';

// The server's `{"error":{"code","message"}}` as an Error a person can read.
async function errorFrom(res) {
  let code = '', message = res.statusText || 'request failed';
  try {
    const body = await res.json();
    if (body && body.error) { code = body.error.code || ''; message = body.error.message || message; }
  } catch (_) { /* not JSON: the status says enough */ }
  return Object.assign(new Error(`${message} (${res.status}${code ? ` ${code}` : ''})`), { status: res.status, code });
}

async function api(path, { method = 'GET', body } = {}) {
  const key = apiKey;
  const headers = { Authorization: `Bearer ${key}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.ok) return res.json().catch(() => null);
  const err = await errorFrom(res);
  if (res.status === 401 && key === apiKey) keyRefused();
  throw err;
}

function logError(message) {
  supervisor.errors.push({ at: Date.now(), message });
  if (supervisor.errors.length > 20) supervisor.errors.shift();
}

function showError(message) { logError(message); ui.error.textContent = message; ui.error.hidden = false; }
function clearError() { ui.error.hidden = true; ui.error.textContent = ''; }

function keyRefused() {
  stop();
  ui.key.setAttribute('aria-invalid', 'true');
  showError('The API key was refused (401). Check it and press Connect.');
  render();
}

// ---- connection ------------------------------------------------------------------------------

let ws = null, runId = 0;  // runId changes on every (re)start: late answers of an older run are dropped
let attempts = 0, reconnectTimer = null, queueTimer = null;
let gotHello = false, helloSeq = 0, resumedFrom = 0, needSnapshot = false, snapshotting = false;
let skew = null;           // server clock minus ours, estimated from live events

const serverNow = () => Date.now() + (skew === null ? 0 : skew);

function setConnection(state, text) {
  supervisor.connection = state;
  ui.connection.dataset.state = state;
  ui.connection.textContent = text || state;
}

function stop() {
  runId++;
  if (ws) { ws.onclose = null; ws.onmessage = null; ws.close(); ws = null; }
  clearTimeout(reconnectTimer); clearInterval(queueTimer);
  setConnection('offline', apiKey ? 'offline' : 'offline: enter an API key');
}

async function start() {
  if (ui.name.value.trim()) localStorage.setItem(NAME_STORE, ui.name.value.trim());
  if (supervisor.monitor.state !== 'idle') listen.leave();
  apiKey = ui.key.value.trim();
  stop();
  clearError();
  ui.key.removeAttribute('aria-invalid');
  Object.assign(supervisor, { calls: dict(), agents: dict(), alerts: dict(), queues: [], lastSeq: 0, selected: null });
  skew = null; attempts = 0; transcriptDirty = true;
  if (!apiKey) { render(); return; }
  localStorage.setItem(KEY_STORE, apiKey);
  const run = runId;
  setConnection('reconnecting', 'connecting…');
  render();
  await loadSnapshot(run);
  if (run !== runId) return;
  queueTimer = setInterval(refreshQueues, QUEUE_REFRESH_MS);
  openSocket(run);
}

function openSocket(run) {
  resumedFrom = supervisor.lastSeq;
  gotHello = false;
  const q = new URLSearchParams({ api_key: apiKey, since: String(resumedFrom) });
  const sock = ws = new WebSocket(`${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws/events?${q}`);
  sock.onmessage = (msg) => { if (run === runId) onMessage(msg.data); };
  // An error is always followed by close, which is where retrying happens.
  sock.onclose = () => { if (run === runId && ws === sock) { ws = null; reconnect(run); } };
}

async function reconnect(run) {
  setConnection('reconnecting', 'reconnecting…');
  if (!gotHello) {
    // A refused key looks like any other failed handshake; the REST API tells them apart.
    try { await loadDepartments(); } catch (_) { /* a 401 has stopped this run already */ }
    if (run !== runId) return;
  }
  const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempts) * (0.8 + Math.random() * 0.2);
  attempts = Math.min(attempts + 1, 10);
  setConnection('reconnecting', `reconnecting in ${(delay / 1000).toFixed(1)} s`);
  reconnectTimer = setTimeout(() => { if (run === runId) openSocket(run); }, delay);
}

function onMessage(text) {
  let m;
  try { m = JSON.parse(text); } catch (_) { return; }
  if (!m || typeof m !== 'object') return;
  if (m.type === 'hello') onHello(m);
  else if (m.type === 'event') onEventMessage(m);
  // Events were lost: a snapshot puts back what they would have told.
  else if (m.type === 'lagged' || (m.type === 'history_truncated' && resumedFrom > 0)) loadSnapshot(runId);
  else if (m.type === 'error') showError(`Event stream: ${m.message || 'error'}`);
}

function onHello(m) {
  gotHello = true;
  attempts = 0;
  setConnection('connected', 'connected');
  helloSeq = Number(m.last_seq) || 0;
  // A smaller sequence than ours: the server restarted and numbers from 1 again.
  if (helloSeq < supervisor.lastSeq) { supervisor.lastSeq = helloSeq; needSnapshot = true; }
  if (needSnapshot) loadSnapshot(runId);
  refreshQueues();
}

function onEventMessage(m) {
  const seq = Number(m.seq);
  if (seq <= supervisor.lastSeq) return;
  if (Number.isFinite(seq)) supervisor.lastSeq = seq;
  supervisor.eventCount++;
  const live = !(seq <= helloSeq);
  // The least delayed event gives the best estimate of the server's clock.
  if (live && Number.isFinite(m.at)) skew = Math.max(skew === null ? -Infinity : skew, m.at - Date.now());
  applyEvent(m, live);
  scheduleRender();
}

// Taken after the socket is up (events were lost, the server restarted), a snapshot must not
// roll anything back: agents keep a newer status, calls only gain details, and calls or alerts
// missing from it are dropped only when they are older than the request.
async function loadSnapshot(run) {
  if (snapshotting) return;
  snapshotting = true;
  const sentLocal = Date.now(), sentServer = serverNow();
  try {
    const [calls, agents, alerts, queues] = await Promise.all([
      api('/api/v1/calls?status=active&limit=500'), api('/api/v1/agents'),
      api('/api/v1/alerts?status=active&limit=500'), api('/api/v1/queues'), loadDepartments(),
    ]);
    if (run !== runId) return;
    applySnapshot(calls || {}, agents || [], (alerts && alerts.alerts) || [], sentLocal, sentServer);
    setQueues(queues || []);
    needSnapshot = false;
  } catch (err) {
    if (run !== runId || err.status === 401) return;
    showError(`Cannot load the current state: ${err.message}`);
    needSnapshot = true; // again on the next hello
  } finally {
    snapshotting = false;
    scheduleRender();
  }
}

function applySnapshot(callList, agents, alerts, sentLocal, sentServer) {
  const listed = new Set(agents.map((a) => a.id));
  for (const id of Object.keys(supervisor.agents)) if (!listed.has(id)) delete supervisor.agents[id];
  for (const a of agents) if (a.id && !(supervisor.agents[a.id] && supervisor.agents[a.id].status_since > a.status_since)) supervisor.agents[a.id] = a;
  const raised = new Set(alerts.map((a) => a.id));
  for (const a of Object.values(supervisor.alerts)) if (!raised.has(a.id) && a.raised_at < sentServer) delete supervisor.alerts[a.id];
  for (const a of alerts.slice(0, MAX_ALERTS)) if (a && a.id) supervisor.alerts[a.id] = a;
  const active = new Set();
  for (const rec of callList.calls || []) {
    active.add(rec.id);
    fillFromRecord(supervisor.calls[rec.id] || addCall(rec.id, rec.started_at), rec);
  }
  for (const a of agents) {
    const call = a.current_call_id && supervisor.calls[a.current_call_id];
    if (call && call.state !== 'ended') agentOnCall(call, a.id, a.status);
  }
  if (callList.next_cursor) return; // a partial list cannot tell which calls ended
  for (const call of Object.values(supervisor.calls)) {
    // The call log is written in batches and may not list a call that has just started.
    if (call.state !== 'ended' && !active.has(call.id) && priv(call).seenAt < sentLocal - 5000) endCall(call, {}, serverNow(), true);
  }
}

async function loadDepartments() {
  const map = dict();
  for (const d of (await api('/api/v1/departments')) || []) if (d && d.id) map[d.id] = d.name;
  supervisor.departments = map;
}

let queuesSoonTimer = null;

// On failure the figures stay as they were; the next refresh is a few seconds away.
function refreshQueues() {
  const run = runId;
  if (apiKey) api('/api/v1/queues').then((list) => { if (run === runId) { setQueues(list || []); scheduleRender(); } }, () => {});
}

function refreshQueuesSoon() {
  if (!queuesSoonTimer) queuesSoonTimer = setTimeout(() => { queuesSoonTimer = null; refreshQueues(); }, 300);
}

// fetchedAt lets the longest wait keep ticking between refreshes.
function setQueues(list) { const fetchedAt = Date.now(); supervisor.queues = list.map((q) => ({ ...q, fetchedAt })); }

// ---- events -> state -------------------------------------------------------------------------

// Per-call bookkeeping kept out of window.supervisor: when the page first heard of the call, when
// it ended by our clock (null while live), whether its start was seen (else its stored timeline
// is fetched on selection).
const callPriv = new WeakMap();
const priv = (call) => callPriv.get(call);
let transcriptDirty = true;

function addCall(id, at) {
  const all = Object.values(supervisor.calls).filter((c) => c.id !== supervisor.selected);
  if (all.length >= MAX_CALLS) {
    const drop = all.find((c) => c.state === 'ended') || all.sort((a, b) => a.startedAt - b.startedAt)[0];
    delete supervisor.calls[drop.id];
  }
  const t = Number(at) || serverNow();
  const call = supervisor.calls[id] = {
    id, from: null, to: null, transport: null, flow: null, state: 'bot', hold: false, muted: false,
    department: null, agentId: null, offeredAgentId: null, driver: null, disposition: null,
    startedAt: t, endedAt: null, durationMs: null, endCause: null, lastSpeechAt: t,
    talking: { caller: false, bot: false, agent: false }, participants: {}, lines: [],
  };
  callPriv.set(call, { seenAt: Date.now(), endedLocal: null, sawStart: false, detail: null });
  return call;
}

function fillFromRecord(call, rec) {
  Object.assign(call, {
    from: rec.from_number || call.from, to: rec.to_number || call.to,
    transport: rec.transport || call.transport, flow: rec.flow || call.flow,
  });
  if (Number.isFinite(rec.started_at)) call.startedAt = rec.started_at;
}

function addLine(call, speaker, text, at, extra) {
  call.lines.push({ speaker, text: String(text == null ? '' : text), at, ...extra });
  if (call.lines.length > MAX_LINES) call.lines.splice(0, call.lines.length - MAX_LINES);
  if (call.id === supervisor.selected) transcriptDirty = true;
}

function talk(call, who, on, at) { call.talking[who] = on; call.lastSpeechAt = at; }

function agentOnCall(call, agentId, status) {
  if (status === 'busy') Object.assign(call, { agentId, state: 'agent' });
  else if (status === 'offered' && call.state !== 'agent') Object.assign(call, { offeredAgentId: agentId, state: 'offered' });
}

function endCall(call, data, at, live) {
  Object.assign(call, { state: 'ended', endedAt: at, endCause: data.cause || null, hold: false });
  call.talking = { caller: false, bot: false, agent: false };
  if (Number.isFinite(data.duration_ms)) call.durationMs = data.duration_ms;
  // A call that was over before the page connected has no place in the active table.
  priv(call).endedLocal = live ? Date.now() : 0;
  if (supervisor.monitor.callId === call.id) listen.gone(null);
}

function applyEvent(m, live) {
  const kind = typeof m.kind === 'string' ? m.kind : '';
  const data = m.data && typeof m.data === 'object' ? m.data : {};
  const at = Number.isFinite(m.at) ? m.at : serverNow();
  const [group, name] = [kind.slice(0, kind.indexOf('.')), kind.slice(kind.indexOf('.') + 1)];
  try {
    if (group === 'call') onCallEvent(m.call_id, name, data, at, live);
    else if (group === 'queue') onQueueEvent(m, name, data, at);
    else if (group === 'agent') onAgentEvent(m, name, data, at, live);
    else if (group === 'alert') onAlertEvent(name, data);
    else if (group === 'department') { loadDepartments().catch(() => {}); refreshQueuesSoon(); }
  } catch (err) {
    // A malformed event must not stop the ones after it.
    console.warn('supervisor: skipped an event', kind, err);
  }
}

function onCallEvent(id, kind, data, at, live) {
  const call = id && (supervisor.calls[id] || (kind !== 'ended' && addCall(id, at)));
  if (!call) return;
  applyCallEvent(call, kind, data, at);
  if (kind === 'ended') endCall(call, data, at, live);
  listen.onOwnEvent(kind, data);
}

function applyCallEvent(call, kind, data, at) {
  const pid = String(data.participant);
  switch (kind) {
    case 'started':
      Object.assign(call, { from: data.from || call.from, to: data.to || call.to, startedAt: at, lastSpeechAt: at });
      Object.assign(call, { transport: data.transport || call.transport, flow: data.flow || call.flow });
      priv(call).sawStart = true;
      break;
    case 'speech_started': case 'speech_ended': talk(call, 'caller', kind === 'speech_started', at); break;
    case 'agent_speech_started': case 'agent_speech_ended': talk(call, 'agent', kind === 'agent_speech_started', at); break;
    case 'bot_speaking': talk(call, 'bot', true, at); addLine(call, 'bot', data.text, at, { utterance: data.utterance }); break;
    case 'bot_utterance': {
      // The line went up when the bot started; a barge-in shortens it to what the caller heard.
      talk(call, 'bot', false, at);
      const line = call.lines.findLast((l) => l.speaker === 'bot' && l.utterance === data.utterance);
      const text = data.cut ? `${data.heard || ''}…` : data.text;
      if (!line) addLine(call, 'bot', text, at, { utterance: data.utterance, cut: !!data.cut });
      else if (data.cut) { Object.assign(line, { text, cut: true }); transcriptDirty = true; }
      break;
    }
    case 'transcript_final': addLine(call, SPEAKERS[data.speaker] ? data.speaker : 'caller', data.text, at); break;
    case 'dtmf': addLine(call, 'caller', `[pressed ${data.digit}]`, at); break;
    case 'hold': call.hold = !!data.on; break;
    case 'mute': call.muted = !!data.on; break;
    case 'driver_changed': call.driver = data.driver || null; break;
    case 'transfer_requested':
      call.state = 'transferring';
      if (data.target_kind === 'department' && data.target) call.department = data.target;
      addLine(call, 'system', `Transfer to ${data.target || '?'} requested.`, at);
      break;
    case 'transfer_failed':
      if (call.state === 'transferring') call.state = call.agentId ? 'agent' : 'bot';
      addLine(call, 'system', `Transfer failed (${data.reason || 'no reason given'}).`, at);
      break;
    case 'participant_joined': {
      const p = call.participants[pid] = { role: data.role || 'participant', mode: data.mode || null, agentId: data.agent_id || null, name: data.name || null };
      if (p.role === 'agent' && p.agentId) agentOnCall(call, p.agentId, 'busy');
      addLine(call, 'system', `${participantLabel(p)} joined.`, at);
      break;
    }
    case 'participant_left':
      addLine(call, 'system', `${participantLabel(call.participants[pid] || data)} left${data.reason ? ` (${data.reason})` : ''}.`, at);
      delete call.participants[pid];
      break;
    case 'monitor_mode': if (call.participants[pid] && data.mode) call.participants[pid].mode = data.mode; break;
    case 'disposition':
      call.disposition = data.disposition || null;
      addLine(call, 'system', `Disposition: ${data.disposition || '?'}${data.notes ? ` (${data.notes})` : ''}.`, at);
      break;
    case 'ended': addLine(call, 'system', `Call ended (${data.cause || 'unknown'}).`, at); break;
    default: break; // kinds this page does not show
  }
}

function onQueueEvent(m, kind, data, at) {
  refreshQueuesSoon();
  const call = m.call_id && (supervisor.calls[m.call_id] || addCall(m.call_id, at));
  if (!call || call.state === 'ended') return;
  if (m.department) call.department = m.department;
  if (kind === 'joined') Object.assign(call, { state: 'queued', agentId: null, offeredAgentId: null });
  else if (kind === 'offered') agentOnCall(call, data.agent_id || null, 'offered');
  else if (kind === 'answered') agentOnCall(call, data.agent_id || call.agentId, 'busy');
  else if (kind === 'overflow') call.state = 'overflow';
}

function onAgentEvent(m, kind, data, at, live) {
  const agents = supervisor.agents;
  if (kind === 'created' || kind === 'updated') {
    const prev = agents[data.id];
    if (!data.id || (prev && prev.updated_at > data.updated_at)) return;
    const next = agents[data.id] = { ...prev, ...data };
    if (prev && prev.status_since > data.status_since) Object.assign(next, { status: prev.status, status_since: prev.status_since, current_call_id: prev.current_call_id });
  } else if (kind === 'deleted') {
    delete agents[data.agent_id];
  } else if (kind === 'status' && data.agent_id) {
    const id = data.agent_id, status = data.status, callId = data.call_id || m.call_id || null;
    const agent = agents[id] || (agents[id] = { id, name: id });
    // Replayed history must not undo a newer status from the snapshot.
    if (live || !(agent.status_since > at)) {
      Object.assign(agent, { status, status_since: at, current_call_id: status === 'busy' || status === 'offered' ? callId : null });
    }
    const call = callId && supervisor.calls[callId];
    if (call && call.state !== 'ended') agentOnCall(call, id, status);
    if (status === 'busy' || status === 'offered') return;
    // An offer that timed out or was declined puts its call back in the queue.
    for (const c of Object.values(supervisor.calls)) {
      if (c.state === 'offered' && c.offeredAgentId === id) Object.assign(c, { state: 'queued', offeredAgentId: null });
    }
  }
}

function onAlertEvent(kind, alert) {
  if (!alert.id) return;
  if (kind === 'resolved' || alert.resolved_at) delete supervisor.alerts[alert.id];
  else if (kind === 'raised' && (supervisor.alerts[alert.id] || Object.keys(supervisor.alerts).length < MAX_ALERTS)) supervisor.alerts[alert.id] = alert;
}

const agentName = (id) => (id && supervisor.agents[id] && supervisor.agents[id].name) || id || '';
const supervisorName = () => ui.name.value.trim() || 'supervisor';

function participantLabel(p) {
  if (p.role === 'agent') return `Agent ${agentName(p.agentId)}`.trim();
  if (p.role === 'supervisor') return `Supervisor ${p.name || ''}`.trim() + (p.mode ? ` (${p.mode})` : '');
  return p.role || 'Participant';
}

// A call whose start the page did not see: the stored transcript goes before the lines received
// live, without doubling those that are in both.
async function loadCallDetail(call) {
  const p = priv(call), run = runId;
  if (p.detail) return;
  p.detail = 'loading';
  try {
    const d = await api(`/api/v1/calls/${encodeURIComponent(call.id)}`);
    if (run !== runId || !d) return;
    fillFromRecord(call, d);
    const stored = (d.transcript || []).map((l) => ({ speaker: SPEAKERS[l.speaker] ? l.speaker : 'caller', text: String(l.text), at: l.at }));
    const fresh = call.lines.filter((l) => !stored.some((s) => s.text === l.text && Math.abs(s.at - l.at) < 3000));
    call.lines = stored.concat(fresh).sort((a, b) => a.at - b.at).slice(-MAX_LINES);
    const entry = (d.queue || []).at(-1);
    if (entry && !call.department) call.department = supervisor.departments[entry.department_id] || null;
    if (d.state === 'ended' && call.state !== 'ended') endCall(call, { cause: d.end_cause, duration_ms: d.duration_ms }, d.ended_at, true);
    p.detail = 'done';
  } catch (err) {
    p.detail = null;
    if (run === runId) addLine(call, 'system', `Cannot load the call's history: ${err.message}`, serverNow());
  }
  transcriptDirty = true;
  scheduleRender();
}

function select(id) {
  const call = supervisor.calls[id];
  if (!call) return;
  supervisor.selected = id;
  transcriptDirty = true;
  if (!priv(call).sawStart) loadCallDetail(call);
  render();
}

const resolving = new Set();

async function resolveAlert(id) {
  if (resolving.has(id)) return;
  resolving.add(id);
  render();
  try {
    await api(`/api/v1/alerts/${encodeURIComponent(id)}/resolve`, { method: 'POST', body: { by: supervisorName() } });
    delete supervisor.alerts[id];
  } catch (err) {
    // Already resolved (by the rules or by someone else): the list just catches up.
    if (err.status === 404 || err.status === 409) delete supervisor.alerts[id];
    else if (err.status !== 401) showError(`Cannot resolve the alert: ${err.message}`);
  } finally {
    resolving.delete(id);
    scheduleRender();
  }
}

// ---- joining a call's audio ------------------------------------------------------------------

const listen = SupervisorListen.create({
  supervisor, apiKey: () => apiKey, selectedCall: () => supervisor.calls[supervisor.selected], name: supervisorName,
  render, logError, errorFrom,
});

// ---- rendering -------------------------------------------------------------------------------

let renderTimer = null, transcriptFor = null;

function scheduleRender() { if (!renderTimer) renderTimer = setTimeout(render, 50); }

function render() {
  clearTimeout(renderTimer);
  renderTimer = null;
  const now = Date.now();
  for (const call of Object.values(supervisor.calls)) {
    const ended = priv(call).endedLocal;
    if (ended !== null && now - ended > ENDED_KEEP_MS && call.id !== supervisor.selected) delete supervisor.calls[call.id];
  }
  renderCalls(now);
  renderSelected();
  listen.render();
  renderQueues();
  renderAgents();
  renderAlerts();
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

function row(classes) { const tr = el('tr'); for (const cls of classes) tr.appendChild(el('td', cls)); return tr; }
function setText(node, text) { if (node.textContent !== text) node.textContent = text; }
function setCells(tr, texts) { texts.forEach((t, i) => { if (t != null) setText(tr.cells[i], String(t)); }); }

// One element per item, in order, updated in place: rows keep focus and hover, and a click is
// not lost to a refresh that replaced the row under the pointer.
function reconcile(parent, items, keyOf, create, update) {
  const old = new Map([...parent.children].map((e) => [e.dataset.key, e]));
  let prev = null;
  for (const item of items) {
    const key = String(keyOf(item));
    let e = old.get(key);
    if (e) old.delete(key); else { e = create(item); e.dataset.key = key; }
    update(e, item);
    const want = prev ? prev.nextSibling : parent.firstChild;
    if (e !== want) parent.insertBefore(e, want);
    prev = e;
  }
  for (const e of old.values()) e.remove();
}

function fmtDuration(ms) {
  const s = Math.max(0, Math.floor((Number(ms) || 0) / 1000));
  const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

const rank = (order, v) => (order.includes(v) ? order.indexOf(v) : order.length);
const callDuration = (c) => (c.state === 'ended' ? c.durationMs ?? c.endedAt - c.startedAt : serverNow() - c.startedAt);
const stateLabel = (c) => (STATE_LABELS[c.state] || c.state) + (c.hold && c.state !== 'queued' ? ' · on hold' : '') + (c.muted ? ' · muted' : '');

function handlerLabel(c) {
  if (c.agentId) return agentName(c.agentId);
  if (c.state === 'offered') return `offered to ${agentName(c.offeredAgentId) || 'an agent'}`;
  if (c.state === 'queued' || c.state === 'ended') return '—';
  return c.driver ? `bot (${c.driver})` : 'bot';
}

function talkState(c) {
  if (c.state === 'ended') return { talk: 'ended', text: '', long: false };
  const who = Object.keys(SPEAKERS).filter((w) => c.talking[w]);
  if (who.length) return { talk: who.join(' '), text: who.join(' + '), long: false };
  const quiet = serverNow() - c.lastSpeechAt;
  return { talk: 'silence', text: quiet >= SILENCE_SHOW_MS ? `silent ${fmtDuration(quiet)}` : 'silence', long: quiet >= SILENCE_LONG_MS && !c.hold };
}

function renderCalls(now) {
  const shown = Object.values(supervisor.calls)
    .filter((c) => priv(c).endedLocal === null || now - priv(c).endedLocal <= ENDED_KEEP_MS)
    .sort((a, b) => a.startedAt - b.startedAt);
  const alerted = new Set(Object.values(supervisor.alerts).map((a) => a.call_id));
  reconcile(ui.callsBody, shown, (c) => c.id, (c) => {
    const tr = row(['caller', 'state', 'department', 'handler', 'duration num', 'talk-cell']);
    tr.tabIndex = 0;
    tr.dataset.callId = c.id;
    tr.cells[0].append(el('span', 'from'), el('span', 'sub'));
    tr.cells[5].appendChild(el('span', 'talk'));
    return tr;
  }, (tr, c) => {
    const selected = c.id === supervisor.selected, talk = talkState(c), badge = tr.cells[5].firstChild;
    tr.dataset.state = c.state;
    tr.classList.toggle('selected', selected);
    tr.setAttribute('aria-selected', String(selected));
    tr.classList.toggle('has-alert', alerted.has(c.id));
    setText(tr.cells[0].firstChild, c.from || 'unknown caller');
    setText(tr.cells[0].lastChild, [c.transport, c.to && `to ${c.to}`].filter(Boolean).join(' · '));
    setCells(tr, [null, stateLabel(c), c.department || '—', handlerLabel(c), fmtDuration(callDuration(c))]);
    badge.dataset.talk = talk.talk;
    badge.classList.toggle('long', talk.long);
    setText(badge, talk.text);
  });
  setText(ui.callCount, `(${shown.filter((c) => c.state !== 'ended').length})`);
  ui.callsEmpty.hidden = shown.length > 0;
}

function renderSelected() {
  const c = supervisor.calls[supervisor.selected];
  setText(ui.selectedId, c ? c.id : '');
  setText(ui.summary, !c ? 'Select a call to follow its transcript and to listen in.'
    : [`${c.from || 'unknown caller'} → ${c.to || '?'}`, stateLabel(c), c.department, handlerLabel(c), fmtDuration(callDuration(c))]
      .filter((t) => t && t !== '—').join(' · '));
  reconcile(ui.participants, c ? Object.entries(c.participants) : [], ([id]) => id, () => el('li'), (li, [id, p]) => {
    li.classList.toggle('me', id === supervisor.monitor.participantId);
    setText(li, participantLabel(p));
  });
  if (!transcriptDirty) return;
  transcriptDirty = false;
  const box = ui.transcript;
  // Follow new lines unless the reader has scrolled up to older ones.
  const follow = transcriptFor !== supervisor.selected || box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  transcriptFor = supervisor.selected;
  box.textContent = '';
  for (const l of c ? c.lines : []) {
    const li = el('li', l.speaker + (l.cut ? ' cut' : ''));
    li.dataset.speaker = l.speaker;
    if (SPEAKERS[l.speaker]) li.appendChild(el('span', 'who', SPEAKERS[l.speaker]));
    li.appendChild(document.createTextNode(l.text));
    box.appendChild(li);
  }
  if (follow) box.scrollTop = box.scrollHeight;
}

function renderQueues() {
  reconcile(ui.queuesBody, supervisor.queues, (q) => q.department_id, () => row(['name', 'num', 'num', 'num', 'num']), (tr, q) => {
    const waiting = q.waiting > 0;
    tr.dataset.department = q.name;
    tr.classList.toggle('waiting', waiting);
    setCells(tr, [q.name, q.waiting, waiting ? fmtDuration(q.longest_wait_ms + Date.now() - q.fetchedAt) : '—',
      `${q.agents_available} / ${q.agents_busy}`, q.service_level_pct == null ? '—' : `${Math.round(q.service_level_pct)} %`]);
  });
  ui.queuesStatus.hidden = supervisor.queues.length > 0;
}

function renderAgents() {
  const agents = Object.values(supervisor.agents)
    .sort((a, b) => rank(STATUS_ORDER, a.status) - rank(STATUS_ORDER, b.status) || String(a.name).localeCompare(String(b.name)));
  reconcile(ui.agentsBody, agents, (a) => a.id, () => {
    const tr = row(['name', 'status-cell', 'since num', 'call']);
    tr.cells[1].appendChild(el('span', 'status'));
    return tr;
  }, (tr, a) => {
    Object.assign(tr.dataset, { agentId: a.id, status: a.status || '' });
    tr.cells[1].firstChild.dataset.status = a.status || '';
    setText(tr.cells[1].firstChild, (a.status || 'unknown').replace('_', '-'));
    setCells(tr, [a.name || a.id, null, a.status_since ? fmtDuration(serverNow() - a.status_since) : '—', a.current_call_id || '']);
  });
  ui.agentsEmpty.hidden = agents.length > 0;
}

function renderAlerts() {
  const alerts = Object.values(supervisor.alerts)
    .sort((a, b) => rank(SEVERITY_ORDER, a.severity) - rank(SEVERITY_ORDER, b.severity) || a.raised_at - b.raised_at);
  reconcile(ui.alerts, alerts, (a) => a.id, () => {
    const li = el('li'), body = el('span', 'body'), button = el('button', 'resolve', 'Resolve');
    body.append(el('span', 'message'), el('span', 'meta'));
    button.type = 'button';
    li.append(body, button);
    return li;
  }, (li, a) => {
    const [message, meta] = li.firstChild.children;
    Object.assign(li.dataset, { alertId: a.id, severity: a.severity || 'info', callId: a.call_id || '' });
    message.classList.toggle('linked', !!(a.call_id && supervisor.calls[a.call_id]));
    setText(message, a.message || a.kind || 'alert');
    setText(meta, [a.severity, a.kind, a.department, a.call_id, a.raised_at && `${fmtDuration(serverNow() - a.raised_at)} ago`].filter(Boolean).join(' · '));
    li.lastChild.disabled = resolving.has(a.id);
  });
  setText(ui.alertCount, alerts.length ? `(${alerts.length})` : '');
  ui.alertsEmpty.hidden = alerts.length > 0;
}

// ---- wiring ----------------------------------------------------------------------------------

const target = (ev, selector) => ev.target.closest(selector);
ui.form.addEventListener('submit', (ev) => { ev.preventDefault(); start(); });
ui.error.addEventListener('click', clearError);
ui.callsBody.addEventListener('click', (ev) => { const tr = target(ev, 'tr[data-call-id]'); if (tr) select(tr.dataset.callId); });
ui.callsBody.addEventListener('keydown', (ev) => {
  const tr = target(ev, 'tr[data-call-id]');
  if (tr && (ev.key === 'Enter' || ev.key === ' ')) { ev.preventDefault(); select(tr.dataset.callId); }
});
ui.alerts.addEventListener('click', (ev) => {
  const li = target(ev, 'li[data-alert-id]');
  if (li && target(ev, 'button.resolve')) resolveAlert(li.dataset.alertId);
  else if (li && target(ev, '.message.linked')) select(li.dataset.callId);
});
setInterval(render, 1000);

// For tests and the console; not enumerable, so the state still serialises as plain data.
for (const [name, fn] of Object.entries({ connect: start, select, join: listen.join, leave: listen.leave, resolveAlert })) {
  Object.defineProperty(supervisor, name, { value: fn, enumerable: false });
}

const fromFragment = new URLSearchParams(location.hash.slice(1)).get('key');
if (fromFragment) history.replaceState(null, '', location.pathname + location.search);
ui.key.value = fromFragment || localStorage.getItem(KEY_STORE) || '';
ui.name.value = localStorage.getItem(NAME_STORE) || '';
start();
