// Switchboard agent console: a browser agent signs in, sets their status, is offered calls by
// the ACD, accepts them and talks to the caller over WebRTC, then wraps up with a disposition.
// Plain JS for current Chromium and Firefox.
//
// Live updates come from /ws/events (`?api_key=`, since browsers cannot set headers on a
// WebSocket). Events can be missed (a reconnect, `lagged`, a server restart), so the agent's own
// record (GET /api/v1/agents/{id}) is the source of truth and is re-read on every (re)connect:
// an offer made while the socket was down must still ring.
//
// URL options: #key=<api key>&agent=<agent id> (sign in directly), ?raw=1 (no echo cancellation,
// noise suppression or gain control: for a WAV fed in as the microphone).
'use strict';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const fragment = new URLSearchParams(location.hash.slice(1));
const enc = encodeURIComponent;
const humanize = (s) => String(s).replace(/_/g, ' ');

const KEY_STORE = 'switchboard.apiKey'; // shared with the softphone page
const AGENT_STORE = 'switchboard.agentId';
const EVENT_KINDS = 'agent.*,queue.offered,call.*,transfer.*';
const MAX_LINES = 300;
const MAX_EVENTS = 100;
const BACKOFF_CAP_MS = 5000;
// After a transfer the server takes the agent off the call; if it never says so, stop
// carrying the (muted) media anyway.
const HANDOVER_LINGER_MS = 30000;
const BASE_TITLE = document.title;
const STATE_LABELS = { signed_out: 'signed out', offered: 'incoming call', in_call: 'in call', wrap_up: 'wrap-up' };
const MONITOR_LINES = {
  listen: 'A supervisor is listening.', whisper: 'A supervisor is whispering to you.', barge: 'A supervisor joined in.',
};

const ui = {};
for (const id of ['api-key', 'agent', 'load-agents', 'sign-in', 'sign-out', 'signin', 'session', 'agent-name',
  'agent-id', 'agent-status', 'agent-status-since', 'connection', 'state', 'error', 'offer', 'offer-title',
  'offer-actions', 'offer-caller', 'offer-to', 'offer-transport', 'offer-department', 'offer-reason', 'call-id',
  'accept', 'decline', 'controls', 'hold', 'mute', 'hangup', 'rejoin', 'media-state', 'transfer-target',
  'transfer', 'wrapup', 'disposition', 'notes', 'save-disposition', 'conversation', 'transcript', 'remote']) {
  ui[id.replace(/-(\w)/g, (_, c) => c.toUpperCase())] = $(id);
}
ui.statusButtons = Array.from(document.querySelectorAll('button[data-status]'));

// What a test (or a curious user) may want to look at.
const con = window.agentConsole = {
  state: 'signed_out', agentId: null, agentName: null, agentStatus: null, connection: 'offline',
  callId: null, offer: null, lines: [], events: [], departments: [], session: null,
  participantId: null, held: false, muted: false, joinFailed: false, mediaState: 'new',
  lastSeq: null, error: null, transferredTo: null, lastDisposition: null,
};

let apiKey = '', pc = null, mic = null, lingerTimer = null;
let ws = null, wsTimer = null, wsAttempts = 0;
let joinGen = 0; // bumped whenever a join in flight must be abandoned (hang-up, call ended, new call)
let seenLines = new Set(), botLines = new Map();

// Audio RTP packets received from the call so far (from getStats).
con.inboundPackets = async () => {
  if (!pc) return 0;
  let n = 0;
  (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'audio') n = s.packetsReceived; });
  return n;
};

// ---- rendering ---------------------------------------------------------------------------

const setState = (state) => { con.state = state; render(); };
const showError = (message) => { con.error = ui.error.textContent = message; ui.error.hidden = false; };
const clearError = () => { con.error = null; ui.error.hidden = true; };
const setConnection = (state) => { con.connection = ui.connection.dataset.state = ui.connection.textContent = state; };

function render() {
  const s = con.state;
  const onCall = s === 'connecting' || s === 'in_call';
  ui.state.textContent = STATE_LABELS[s] || s;
  ui.state.dataset.state = s;
  document.title = s === 'offered' ? `Incoming call · ${BASE_TITLE}` : BASE_TITLE;
  ui.signin.hidden = s !== 'signed_out';
  ui.session.hidden = s === 'signed_out';
  ui.signOut.disabled = onCall;
  for (const b of ui.statusButtons) {
    b.disabled = s === 'signed_out' || onCall || s === 'offered';
    b.setAttribute('aria-pressed', String(con.agentStatus === b.dataset.status));
  }
  ui.offer.hidden = ui.conversation.hidden = !(onCall || s === 'offered' || s === 'wrap_up');
  ui.offer.classList.toggle('accepted', s !== 'offered');
  ui.offerTitle.textContent = s === 'offered' ? 'Incoming call' : 'Call';
  ui.offerActions.hidden = ui.accept.disabled = ui.decline.disabled = s !== 'offered';
  ui.controls.hidden = ui.hangup.disabled = !onCall;
  ui.hold.disabled = ui.mute.disabled = ui.transfer.disabled = s !== 'in_call';
  ui.rejoin.hidden = !(onCall && con.joinFailed);
  ui.hold.setAttribute('aria-pressed', String(con.held));
  ui.hold.textContent = con.held ? 'Resume' : 'Hold';
  ui.mute.setAttribute('aria-pressed', String(con.muted));
  ui.mute.textContent = con.muted ? 'Unmute' : 'Mute';
  ui.wrapup.hidden = s !== 'wrap_up';
  ui.callId.textContent = con.callId || '';
}

function renderOffer() {
  const o = con.offer || {};
  ui.offerCaller.textContent = o.from || '…';
  ui.offerTo.textContent = o.to || '—';
  ui.offerTransport.textContent = [o.transport, o.flow && `flow ${o.flow}`].filter(Boolean).join(', ') || '…';
  ui.offerDepartment.textContent = o.department || '—';
  ui.offerReason.textContent = o.reason || '—';
  ui.callId.textContent = con.callId || '';
}

function setMediaState(state) {
  con.mediaState = ui.mediaState.dataset.state = state;
  ui.mediaState.textContent = state === 'new' ? '' : `audio: ${state}`;
}

function showAgentStatus(status, since) {
  con.agentStatus = ui.agentStatus.dataset.value = status || '';
  ui.agentStatus.textContent = humanize(status || '');
  ui.agentStatusSince.textContent = since ? `since ${new Date(since).toLocaleTimeString()}` : '';
  render();
}

function addLine(speaker, text) {
  const entry = { speaker, text: String(text) };
  const li = document.createElement('li');
  li.className = speaker;
  li.textContent = entry.text;
  con.lines.push(entry);
  ui.transcript.appendChild(li);
  // A long call must not grow the page (or memory) without bound.
  while (con.lines.length > MAX_LINES) { con.lines.shift(); ui.transcript.firstChild.remove(); }
  ui.transcript.scrollTop = ui.transcript.scrollHeight;
  return { li, entry };
}

// A transcript line not shown yet: the same words can come from the timeline and the stream.
function fresh(key) {
  if (seenLines.has(key)) return false;
  seenLines.add(key);
  if (seenLines.size > MAX_LINES * 2) seenLines.delete(seenLines.values().next().value);
  return true;
}

// ---- REST --------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) { super(message); Object.assign(this, { status, code }); }
}

async function responseError(res) {
  const text = await res.text().catch(() => '');
  let body = null;
  try { body = JSON.parse(text); } catch (_) { /* not JSON */ }
  const e = (body && body.error) || {};
  return new ApiError(res.status, e.code || 'http', e.message || text.slice(0, 300) || res.statusText || `HTTP ${res.status}`);
}

async function api(method, path, body) {
  const init = { method, headers: { Authorization: `Bearer ${apiKey}` } };
  if (body !== undefined) { init.headers['Content-Type'] = 'application/json'; init.body = JSON.stringify(body); }
  const res = await fetch(path, init).catch((err) => {
    throw new ApiError(0, 'network', `cannot reach the server (${err.message || err})`);
  });
  if (!res.ok) throw await responseError(res);
  const text = await res.text();
  try { return text ? JSON.parse(text) : null; } catch (_) { return text; }
}

function describe(err) {
  if (err instanceof ApiError && err.status === 401) return 'The API key was not accepted (401): check it and sign in again.';
  if (err instanceof ApiError) return err.status ? `${err.message} (${err.status})` : err.message;
  if (err && err.name === 'NotAllowedError') return 'Microphone access was denied.';
  return (err && err.message) || String(err);
}

// Button handlers: no double submits, and every failure ends up on screen, not in the console.
function guarded(fn) {
  let running = false;
  return async (ev) => {
    if (running) return;
    running = true;
    try { await fn(ev); } catch (err) { showError(describe(err)); } finally { running = false; }
  };
}

// Runs a request; on failure shows `what` and the reason, and gives null.
const attempt = (promise, what) => promise.catch((err) => { showError(`${what}: ${describe(err)}`); return null; });

// ---- signing in --------------------------------------------------------------------------

async function loadAgents(preferred) {
  apiKey = ui.apiKey.value.trim();
  if (!apiKey) { showError('Enter an API key.'); return false; }
  const me = await attempt(api('GET', '/api/v1/me'), 'Cannot check the API key');
  if (!me) return false;
  clearError();
  ui.agent.textContent = '';
  ui.agent.disabled = Boolean(me.agent_id);
  if (me.agent_id) {
    // An agent key acts as its own agent only: there is nobody to pick.
    ui.agent.appendChild(new Option(me.agent_id, me.agent_id));
    ui.agent.value = me.agent_id;
    return true;
  }
  const agents = await attempt(api('GET', '/api/v1/agents'), 'Cannot load agents');
  if (!Array.isArray(agents)) return false;
  ui.agent.appendChild(new Option(agents.length ? '— pick yourself —' : '— no agents —', ''));
  for (const a of agents) {
    const via = a.reach && a.reach.kind && a.reach.kind !== 'browser' ? ` · reached by ${a.reach.kind}` : '';
    ui.agent.appendChild(new Option(`${a.name} (${a.id})${via}`, a.id));
  }
  if (!agents.length) showError('This API key has no agents yet: create one with POST /api/v1/agents.');
  else if (preferred && agents.some((a) => a.id === preferred)) ui.agent.value = preferred;
  else if (preferred) showError(`There is no agent "${preferred}" for this API key.`);
  return agents.length > 0;
}

async function signIn() {
  clearError();
  if (!ui.apiKey.value.trim()) { showError('Enter an API key.'); return; }
  if ((ui.apiKey.value.trim() !== apiKey || ui.agent.options.length <= 1) && !(await loadAgents(ui.agent.value))) return;
  const id = ui.agent.value;
  if (!id) { showError('Pick your agent from the list.'); return; }
  const agent = await attempt(api('GET', `/api/v1/agents/${enc(id)}`), `Cannot sign in as ${id}`);
  if (!agent) return;
  localStorage.setItem(KEY_STORE, apiKey);
  localStorage.setItem(AGENT_STORE, agent.id);
  con.agentId = ui.agentId.textContent = agent.id;
  con.agentName = ui.agentName.textContent = agent.name;
  if (agent.reach && agent.reach.kind !== 'browser') showError(`${agent.name} is reached by ${agent.reach.kind}, not on this page.`);
  setState('idle');
  applyAgent(agent);
  loadDepartments();
  connectEvents();
}

// `why` stays on screen after signing out (a deleted agent, say).
async function signOut(why) {
  clearError();
  try {
    if (con.state === 'offered') await api('POST', `/api/v1/agents/${enc(con.agentId)}/decline`);
    if (con.agentStatus !== 'offline') await api('PUT', `/api/v1/agents/${enc(con.agentId)}/status`, { status: 'offline' });
  } catch (_) { /* signing out locally matters more than the status */ }
  stopEvents();
  clearCall();
  localStorage.removeItem(AGENT_STORE);
  con.agentId = con.agentName = con.lastSeq = null;
  showAgentStatus(null, null);
  setState('signed_out');
  if (typeof why === 'string') showError(why);
}

async function loadDepartments() {
  const list = await api('GET', '/api/v1/departments').catch(() => null); // only needed for transfers
  if (!Array.isArray(list)) return;
  const names = con.departments = list.map((d) => d.name).filter(Boolean);
  const keep = ui.transferTarget.value;
  ui.transferTarget.textContent = '';
  ui.transferTarget.appendChild(new Option(names.length ? '— department —' : '— no departments —', ''));
  for (const n of names) ui.transferTarget.appendChild(new Option(n, n));
  if (names.includes(keep)) ui.transferTarget.value = keep;
}

// ---- agent status and offers -------------------------------------------------------------

async function setStatus(status) {
  clearError();
  const agent = await api('PUT', `/api/v1/agents/${enc(con.agentId)}/status`, { status });
  // Choosing a status from wrap-up means the agent is done with the last call.
  if (con.state === 'wrap_up' && status !== 'wrap_up') { clearCall(); setState('idle'); }
  applyAgent(agent);
}

async function refreshAgent() {
  if (!con.agentId) return;
  try {
    applyAgent(await api('GET', `/api/v1/agents/${enc(con.agentId)}`));
  } catch (err) {
    if (err.status === 404) signOut(`Agent "${con.agentId}" was deleted.`);
    else if (err.status === 401) showError(describe(err));
  }
}

function applyAgent(agent) {
  if (!agent || agent.id !== con.agentId) return;
  showAgentStatus(agent.status, agent.status_since);
  reconcile(agent.status, agent.current_call_id || null, null);
}

// Brings the page in line with the agent's status, whether it came as an event or a re-read.
function reconcile(status, callId, department) {
  const s = con.state;
  if (s === 'signed_out') return;
  if (status === 'offered') {
    if (callId) onOffered(callId, department);
  } else if (status === 'busy') {
    // Busy with a call this page is not on: a reload mid-call. Get back on it.
    if (callId && (s === 'idle' || s === 'offered' || (s === 'wrap_up' && callId !== con.callId))) {
      startCall(callId, department);
      addLine('system', 'You are on this call; reconnecting its audio.');
      loadCallInfo(callId);
      joinMedia();
    }
  } else if (s === 'offered') {
    clearCall();
    setState('idle');
    showError(status === 'away'
      ? 'The offer expired before it was accepted; your status is now away.'
      : 'The offer was withdrawn (the caller may have hung up).');
  } else if (s === 'connecting' || s === 'in_call') {
    enterWrapUp('The call has ended.');
  }
}

function startCall(callId, department) {
  clearCall();
  con.callId = callId;
  con.offer = { callId, from: null, to: null, transport: null, flow: null, department: department || null, reason: null, history: [] };
  con.transferredTo = null;
  con.lines = [];
  ui.transcript.textContent = '';
  seenLines = new Set();
  botLines = new Map();
  renderOffer();
}

function onOffered(callId, department) {
  const s = con.state;
  if (s === 'connecting' || s === 'in_call' || (s === 'offered' && con.callId === callId)) return;
  clearError();
  startCall(callId, department);
  setState('offered');
  loadCallInfo(callId);
}

const normKind = (kind) => String(kind || '').replace(/^call\./, '');

// Who is calling, why they were passed on, and what they told the bot so far.
async function loadCallInfo(callId) {
  const call = await api('GET', `/api/v1/calls/${enc(callId)}`).catch((err) => {
    if (con.callId === callId) addLine('system', `Cannot load the call's details: ${describe(err)}`);
    return null;
  });
  if (!call || con.callId !== callId || !con.offer) return;
  const o = con.offer;
  Object.assign(o, { from: call.from_number || 'unknown', to: call.to_number, transport: call.transport, flow: call.flow });
  const events = Array.isArray(call.events) ? call.events : [];
  const transfers = Array.isArray(call.transfers) ? call.transfers : [];
  const last = transfers[transfers.length - 1];
  if (last) {
    if (last.target_kind === 'department' && !o.department) o.department = last.target;
    o.reason = last.reason ? humanize(last.reason) : `transfer to ${last.target}`;
  }
  const requested = events.filter((e) => normKind(e.kind) === 'transfer_requested').pop();
  if (!o.reason && requested && requested.data) o.reason = `transfer to ${requested.data.target}`;
  const before = con.lines.length;
  for (const ev of events) {
    try { callEvent(normKind(ev.kind), ev.data || {}, false); } catch (_) { /* one odd event must not hide the rest */ }
  }
  o.history = con.lines.slice(before).filter((l) => l.speaker !== 'system').map((l) => ({ ...l }));
  renderOffer();
}

const accept = guarded(async () => {
  if (con.state !== 'offered') return;
  clearError();
  const offered = con.callId;
  setState('connecting');
  const res = await api('POST', `/api/v1/agents/${enc(con.agentId)}/accept`).catch((err) => {
    if (con.callId !== offered) return null;
    clearCall();
    setState('idle');
    showError(err.status === 409
      ? 'The offer is no longer open: it expired or the call was taken (409).'
      : `Accepting the call failed: ${describe(err)}`);
    refreshAgent();
    return null;
  });
  if (!res || con.callId !== offered || con.state !== 'connecting') return;
  if (res.call_id && res.call_id !== offered) {
    // The server connected another call than the one shown: show that one instead.
    startCall(res.call_id, null);
    loadCallInfo(res.call_id);
  }
  loadDepartments();
  await joinMedia();
});

const decline = guarded(async () => {
  if (con.state !== 'offered') return;
  clearError();
  // Idle first: the server's "available" event for this decline must not read as a withdrawal.
  clearCall();
  setState('idle');
  await api('POST', `/api/v1/agents/${enc(con.agentId)}/decline`).catch((err) => {
    showError(err.status === 409 ? 'There was no offer left to decline.' : `Declining failed: ${describe(err)}`);
    refreshAgent();
  });
});

// ---- media -------------------------------------------------------------------------------

function waitForIce(peer, ms) {
  return new Promise((resolve) => {
    if (peer.iceGatheringState === 'complete') return resolve();
    peer.addEventListener('icegatheringstatechange', () => { if (peer.iceGatheringState === 'complete') resolve(); });
    // Host candidates gather in milliseconds; do not wait forever for a STUN server.
    setTimeout(resolve, ms);
  });
}

const deleteSession = (url) => fetch(url, { method: 'DELETE', headers: { Authorization: `Bearer ${apiKey}` } });

async function joinMedia() {
  const callId = con.callId;
  if (!callId) return;
  closeMedia();
  const gen = ++joinGen;
  con.joinFailed = false;
  setState('connecting');
  setMediaState('starting');
  try {
    const raw = params.get('raw') === '1';
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: !raw, noiseSuppression: !raw, autoGainControl: !raw, channelCount: 1 },
    });
    if (gen !== joinGen) { stream.getTracks().forEach((t) => t.stop()); return; }
    mic = stream;
    stream.getAudioTracks().forEach((t) => { t.enabled = !con.muted; });
    const peer = pc = new RTCPeerConnection({ iceServers: [] });
    peer.addTransceiver(stream.getAudioTracks()[0], { direction: 'sendrecv', streams: [stream] });
    peer.ontrack = (ev) => {
      if (pc !== peer) return;
      Object.assign(ui.remote, { srcObject: ev.streams[0] || new MediaStream([ev.track]), muted: false });
      ui.remote.play().catch(() => {});
    };
    peer.onconnectionstatechange = () => onMediaState(peer);
    await peer.setLocalDescription(await peer.createOffer());
    await waitForIce(peer, 2000);
    if (gen !== joinGen) return;
    setMediaState('connecting');
    const q = new URLSearchParams({ role: 'agent', agent_id: con.agentId });
    const headers = { 'Content-Type': 'application/sdp', Authorization: `Bearer ${apiKey}` };
    const body = peer.localDescription.sdp;
    const res = await fetch(`/webrtc/calls/${enc(callId)}/participants?${q}`, { method: 'POST', headers, body });
    if (res.status !== 201) throw await responseError(res);
    const loc = res.headers.get('Location');
    const session = loc ? new URL(loc, location.href).href : null;
    const answer = await res.text();
    if (gen !== joinGen) {
      // Hung up or ended while joining: do not leave a participant behind.
      if (session) deleteSession(session).catch(() => {});
      return;
    }
    con.session = session;
    con.participantId = res.headers.get('X-Participant-Id');
    await peer.setRemoteDescription({ type: 'answer', sdp: answer });
  } catch (err) {
    if (gen !== joinGen) return;
    closeMedia();
    con.joinFailed = true;
    setMediaState('failed');
    const why = err instanceof ApiError && err.status !== 401 ? `${err.message} (${err.status})` : describe(err);
    showError(`Could not join the call: ${why}`);
    render();
  }
}

function onMediaState(peer) {
  if (pc !== peer) return;
  const s = peer.connectionState;
  setMediaState(s);
  if (s === 'connected' && con.state === 'connecting') {
    clearError();
    setState('in_call');
  } else if (s === 'failed') {
    // No DELETE: that would end the call for the caller. The agent can rejoin or hang up.
    closeMedia();
    con.joinFailed = true;
    setMediaState('failed');
    showError('The audio connection to the call was lost. Rejoin, or hang up.');
    if (con.state === 'in_call') setState('connecting'); else render();
  }
}

function closeMedia() {
  clearTimeout(lingerTimer);
  if (pc) pc.close();
  if (mic) mic.getTracks().forEach((t) => t.stop());
  pc = mic = lingerTimer = ui.remote.srcObject = con.session = con.participantId = null;
  setMediaState('new');
}

// The call went elsewhere but the server has not yet taken this leg down: keep it quiet
// instead of tearing it down ourselves, which could read as the agent hanging up.
function lingerMedia() {
  if (mic) mic.getAudioTracks().forEach((t) => { t.enabled = false; });
  ui.remote.muted = true;
  clearTimeout(lingerTimer);
  lingerTimer = setTimeout(closeMedia, HANDOVER_LINGER_MS);
}

function clearCall() {
  joinGen++;
  closeMedia();
  con.callId = con.offer = null;
  con.held = con.muted = con.joinFailed = false;
  renderOffer();
}

const hangup = guarded(async () => {
  const callId = con.callId;
  if (!callId) return;
  clearError();
  const session = con.session;
  joinGen++;
  try {
    if (session) {
      const res = await deleteSession(session);
      if (!res.ok && res.status !== 404) throw await responseError(res);
    } else {
      // Not on the media (joining, or the join failed): end the call through call control.
      await api('POST', `/api/v1/calls/${enc(callId)}/hangup`, { reason: 'agent_hangup' });
    }
  } catch (err) {
    if (err.status !== 404) showError(`Hanging up failed: ${describe(err)}`);
  }
  if (con.callId === callId && con.state !== 'wrap_up') enterWrapUp('You hung up.');
});

function toggleMute() {
  if (!mic) return;
  con.muted = !con.muted;
  mic.getAudioTracks().forEach((t) => { t.enabled = !con.muted; });
  render();
}

const toggleHold = guarded(async () => {
  const callId = con.callId;
  if (!callId) return;
  clearError();
  const on = !con.held;
  await api('POST', `/api/v1/calls/${enc(callId)}/${on ? 'hold' : 'unhold'}`);
  if (con.callId === callId) { con.held = on; render(); }
});

const transfer = guarded(async () => {
  const callId = con.callId;
  const target = ui.transferTarget.value;
  if (!callId) return;
  clearError();
  if (!target) { showError('Pick a department to transfer to.'); return; }
  const body = { target_kind: 'department', target, mode: 'blind', reason: 'agent_transfer' };
  const t = await attempt(api('POST', `/api/v1/calls/${enc(callId)}/transfer`, body), `Transfer to ${target} failed`);
  if (!t || con.callId !== callId) return;
  if (t.state === 'failed') { showError(`Transfer to ${target} failed: ${t.reason || 'no reason given'}`); return; }
  con.transferredTo = target;
  enterWrapUp(`Transferred to ${target}.`, { keepMedia: true, disposition: 'transferred' });
});

// ---- wrap-up -----------------------------------------------------------------------------

function enterWrapUp(message, opts = {}) {
  if (con.state === 'wrap_up') { if (!opts.keepMedia) closeMedia(); return; }
  joinGen++;
  if (opts.keepMedia) lingerMedia(); else closeMedia();
  if (message) addLine('system', message);
  con.joinFailed = con.held = false;
  ui.disposition.value = opts.disposition || 'resolved';
  ui.notes.value = '';
  setState('wrap_up');
}

const saveDisposition = guarded(async () => {
  const callId = con.callId;
  if (!callId || con.state !== 'wrap_up') return;
  clearError();
  const body = { agent_id: con.agentId, disposition: ui.disposition.value, notes: ui.notes.value.trim() };
  const saved = await api('POST', `/api/v1/calls/${enc(callId)}/disposition`, body).then(() => true, (err) => {
    showError(`Saving the disposition failed: ${describe(err)}`);
    return false;
  });
  if (!saved) return;
  con.lastDisposition = { callId, ...body };
  if (con.callId === callId && con.state === 'wrap_up') { clearCall(); setState('idle'); }
  await setStatus('available').catch((err) => showError(`Saved, but setting your status to available failed: ${describe(err)}`));
});

// ---- live events -------------------------------------------------------------------------

function connectEvents() {
  if (!con.agentId) return;
  clearTimeout(wsTimer);
  const q = new URLSearchParams({ api_key: apiKey, kinds: EVENT_KINDS });
  if (con.lastSeq !== null) q.set('since', String(con.lastSeq));
  const sock = ws = new WebSocket(`${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws/events?${q}`);
  if (con.connection !== 'connected') setConnection(wsAttempts ? 'reconnecting' : 'offline');
  sock.onmessage = (msg) => {
    if (ws !== sock) return;
    let m;
    try { m = JSON.parse(msg.data); } catch (_) { return; }
    try { onMessage(sock, m); } catch (err) { console.error('event handling failed', err, m); }
  };
  sock.onclose = () => {
    if (ws !== sock) return;
    ws = null;
    if (!con.agentId) return;
    setConnection('reconnecting');
    const delay = Math.min(BACKOFF_CAP_MS, 500 * 2 ** wsAttempts) * (0.8 + Math.random() * 0.4);
    wsAttempts = Math.min(wsAttempts + 1, 10);
    wsTimer = setTimeout(connectEvents, delay);
  };
}

function stopEvents() {
  clearTimeout(wsTimer);
  const s = ws;
  ws = wsTimer = null;
  wsAttempts = 0;
  if (s) s.close();
  setConnection('offline');
}

function onMessage(sock, m) {
  if (!m || typeof m !== 'object') return;
  if (m.type === 'hello') {
    const last = Number(m.last_seq) || 0;
    if (con.lastSeq !== null && last < con.lastSeq) {
      // The server restarted and numbers from scratch: `since` would hide its new events.
      con.lastSeq = last;
      ws = null;
      sock.close();
      connectEvents();
      return;
    }
    if (con.lastSeq === null) con.lastSeq = last;
    wsAttempts = 0;
    setConnection('connected');
    refreshAgent();
  } else if (m.type === 'event') {
    const seq = Number(m.seq);
    if (Number.isFinite(seq) && (con.lastSeq === null || seq > con.lastSeq)) con.lastSeq = seq;
    con.events.push(m);
    if (con.events.length > MAX_EVENTS) con.events.splice(0, con.events.length - MAX_EVENTS);
    onEvent(m);
  } else if (m.type === 'lagged' || m.type === 'history_truncated') {
    if (con.callId && con.state !== 'offered') addLine('system', 'Some live updates were missed.');
    refreshAgent();
  }
}

function onEvent(m) {
  const kind = String(m.kind || '');
  const d = m.data && typeof m.data === 'object' ? m.data : {};
  if (kind === 'agent.status') {
    if (d.agent_id !== con.agentId) return;
    showAgentStatus(d.status, Date.now());
    reconcile(d.status, d.call_id || null, m.department || null);
  } else if (kind === 'agent.deleted') {
    if (d.agent_id === con.agentId) signOut(`Agent "${con.agentId}" was deleted.`);
  } else if (kind === 'queue.offered') {
    if (d.agent_id === con.agentId && m.call_id) onOffered(m.call_id, m.department || null);
  } else if (m.call_id && m.call_id === con.callId) {
    if (kind.startsWith('call.')) callEvent(kind.slice(5), d, true);
    // Only the transfer this agent made; the one that brought the call here is history.
    else if (kind === 'transfer.failed' && con.transferredTo) {
      addLine('system', `Transfer to ${con.transferredTo} failed: ${humanize(d.reason || 'no reason given')}.`);
    } else if (kind === 'transfer.connected' && con.transferredTo && con.state === 'wrap_up') closeMedia();
  }
}

// One event of the current call, from the live stream or (live = false) the stored timeline.
function callEvent(kind, d, live) {
  if (kind === 'transcript_final') {
    const speaker = ['agent', 'supervisor'].includes(d.speaker) ? d.speaker : 'caller';
    if (d.text && fresh(`t:${speaker}:${d.start_ms}:${d.end_ms}:${d.text}`)) addLine(speaker, d.text);
  } else if (kind === 'bot_speaking') {
    if (!d.text || !fresh(`b:${d.utterance}`)) return;
    botLines.set(d.utterance, addLine('bot', d.text));
    if (botLines.size > MAX_LINES) botLines.delete(botLines.keys().next().value);
  } else if (kind === 'bot_utterance') {
    const shown = botLines.get(d.utterance);
    const text = d.cut ? `${d.heard || ''}… (interrupted)` : d.heard || d.text;
    if (shown) { if (d.cut) shown.entry.text = shown.li.textContent = text; }
    else if (text && fresh(`b:${d.utterance}`)) addLine('bot', text);
  } else if (kind === 'dtmf') {
    addLine('caller', `[pressed ${d.digit}]`);
  } else if (kind === 'transfer_requested') {
    addLine('system', `Transfer to ${d.target} requested.`);
  } else if (live) {
    liveCallEvent(kind, d);
  }
}

// Events that only matter as they happen (the timeline replays the conversation, not these).
function liveCallEvent(kind, d) {
  const me = d.participant ? !!con.participantId && d.participant === con.participantId
    : d.role === 'agent' && d.agent_id === con.agentId;
  if (kind === 'hold') {
    con.held = !!d.on;
    addLine('system', d.on ? 'The caller is on hold.' : 'The caller is off hold.');
    render();
  } else if (kind === 'monitor_mode' || (kind === 'participant_joined' && d.role === 'supervisor')) {
    addLine('system', MONITOR_LINES[d.to || d.mode] || 'A supervisor joined.');
  } else if (kind === 'participant_left' && me) {
    if (con.state === 'wrap_up') closeMedia();
    else if (con.state === 'connecting' || con.state === 'in_call') {
      enterWrapUp(!d.reason || d.reason === 'left' ? 'You left the call.' : `You were taken off the call (${humanize(d.reason)}).`);
    }
  } else if (kind === 'participant_left' && d.role === 'supervisor') {
    addLine('system', 'A supervisor left.');
  } else if (kind === 'ended') {
    if (con.state === 'wrap_up') closeMedia();
    else if (con.state === 'offered') { clearCall(); setState('idle'); showError('The caller hung up before you answered.'); }
    else enterWrapUp(`The call ended (${humanize(d.cause || 'ended')}).`);
  }
  // Anything else (including kinds newer than this page) is not for the agent.
}

// ---- wiring ------------------------------------------------------------------------------

ui.loadAgents.addEventListener('click', guarded(() => loadAgents(ui.agent.value)));
ui.apiKey.addEventListener('change', guarded(() => loadAgents(ui.agent.value)));
ui.signIn.addEventListener('click', guarded(signIn));
ui.signOut.addEventListener('click', guarded(() => signOut()));
for (const b of ui.statusButtons) b.addEventListener('click', guarded(() => setStatus(b.dataset.status)));
ui.accept.addEventListener('click', accept);
ui.decline.addEventListener('click', decline);
ui.hold.addEventListener('click', toggleHold);
ui.mute.addEventListener('click', toggleMute);
ui.hangup.addEventListener('click', hangup);
ui.rejoin.addEventListener('click', guarded(() => { clearError(); return joinMedia(); }));
ui.transfer.addEventListener('click', transfer);
ui.saveDisposition.addEventListener('click', saveDisposition);
// Audio joined without a user gesture (a reload mid-call) may be held back by autoplay rules.
document.addEventListener('click', () => { if (ui.remote.srcObject && ui.remote.paused) ui.remote.play().catch(() => {}); });
// A laptop back from sleep or a network switch: do not sit out the backoff.
window.addEventListener('online', () => { if (con.agentId && !ws) { wsAttempts = 0; connectEvents(); } });

(async () => {
  ui.apiKey.value = fragment.get('key') || localStorage.getItem(KEY_STORE) || '';
  const wanted = fragment.get('agent') || localStorage.getItem(AGENT_STORE) || '';
  render();
  // An agent key signs in as its agent; a tenant key as the agent named in the link.
  const ready = ui.apiKey.value && (await loadAgents(wanted));
  if (ready && ui.agent.value && (ui.agent.disabled || ui.agent.value === wanted)) await signIn();
})().catch((err) => showError(describe(err)));
