// Switchboard softphone: a browser call to a flow over WebRTC (WHIP-style signalling), with a
// live transcript from /ws/events. Plain JS for current Chromium and Firefox.
//
// Credentials: the page holds an API key (typed in, or passed as #key=... in the URL, kept in
// localStorage). It never sends the key with the call itself: it asks POST /webrtc/tokens for a
// short-lived single-use call token and places the call with that. The key is used for the
// events WebSocket (`?api_key=`, since browsers cannot set headers on a WebSocket).
//
// URL options: #key=<api key>, ?entry=<entry point>, ?raw=1 (no echo cancellation, noise
// suppression or gain control: for a WAV fed in as the microphone).
'use strict';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const ui = {
  key: $('api-key'), entry: $('entry'), call: $('call'), hangup: $('hangup'), mute: $('mute'),
  state: $('state'), transcript: $('transcript'), callId: $('call-id'), remote: $('remote'),
  micLevel: $('mic-level'), botLevel: $('bot-level'),
};

// Everything a test (or a curious user) may want to look at.
const softphone = window.softphone = {
  state: 'idle', callId: null, session: null, token: null, events: [], lines: [],
};

let pc = null;

// Audio RTP packets received from the bot so far (from getStats).
softphone.inboundPackets = async () => {
  if (!pc) return 0;
  let n = 0;
  (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'audio') n = s.packetsReceived; });
  return n;
};
let mic = null;
let events = null;
let audioCtx = null;
let meterTimer = null;

function setState(state) {
  softphone.state = state;
  ui.state.textContent = state;
  ui.state.dataset.state = state;
}

function addLine(speaker, text) {
  softphone.lines.push({ speaker, text });
  const li = document.createElement('li');
  li.className = speaker;
  li.textContent = text;
  ui.transcript.appendChild(li);
  li.scrollIntoView({ block: 'nearest' });
  return li;
}

function apiKey() {
  return ui.key.value.trim();
}

async function loadEntries() {
  const wanted = params.get('entry');
  try {
    const res = await fetch('/webrtc/entry-points');
    const list = await res.json();
    for (const e of list) {
      const opt = document.createElement('option');
      opt.value = e.entry;
      opt.textContent = `${e.entry} (${e.flow})`;
      ui.entry.appendChild(opt);
    }
    if (wanted) ui.entry.value = wanted;
  } catch (err) {
    addLine('system', `Cannot load departments: ${err}`);
  }
}

function waitForIce(peer, ms) {
  return new Promise((resolve) => {
    if (peer.iceGatheringState === 'complete') return resolve();
    const done = () => { if (peer.iceGatheringState === 'complete') resolve(); };
    peer.addEventListener('icegatheringstatechange', done);
    // Host candidates gather in milliseconds; do not wait forever for a STUN server.
    setTimeout(resolve, ms);
  });
}

async function call() {
  const key = apiKey();
  if (!key) { addLine('system', 'Enter an API key first.'); return; }
  localStorage.setItem('switchboard.apiKey', key);
  ui.call.disabled = true;
  ui.transcript.textContent = '';
  softphone.lines = []; softphone.events = [];
  setState('starting');
  try {
    const raw = params.get('raw') === '1';
    mic = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: !raw, noiseSuppression: !raw, autoGainControl: !raw, channelCount: 1 },
    });
    const tokenRes = await fetch('/webrtc/tokens', { method: 'POST', headers: { Authorization: `Bearer ${key}` } });
    if (tokenRes.status !== 201) throw new Error(`token request failed (${tokenRes.status})`);
    softphone.token = (await tokenRes.json()).token;

    pc = new RTCPeerConnection({ iceServers: [] });
    pc.addTransceiver(mic.getAudioTracks()[0], { direction: 'sendrecv', streams: [mic] });
    pc.ontrack = (ev) => {
      ui.remote.srcObject = ev.streams[0] || new MediaStream([ev.track]);
      ui.remote.play().catch(() => {});
      meter(ui.remote.srcObject, ui.botLevel);
    };
    pc.onconnectionstatechange = () => {
      const s = pc ? pc.connectionState : 'closed';
      if (s === 'connected' || s === 'connecting' || s === 'failed' || s === 'disconnected') setState(s);
      if (s === 'failed') { addLine('system', 'Connection failed.'); cleanup(); }
    };
    meter(mic, ui.micLevel);
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIce(pc, 2000);
    setState('connecting');
    const entry = encodeURIComponent(ui.entry.value || '');
    const res = await fetch(`/webrtc/calls?entry=${entry}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${softphone.token}` },
      body: pc.localDescription.sdp,
    });
    if (res.status !== 201) {
      let reason = `${res.status}`;
      try { reason += `: ${(await res.json()).error.message}`; } catch (_) { /* not JSON */ }
      throw new Error(`call refused (${reason})`);
    }
    softphone.session = new URL(res.headers.get('Location'), location.href).href;
    softphone.callId = res.headers.get('X-Call-Id');
    ui.callId.textContent = softphone.callId || '';
    subscribe(key, softphone.callId);
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
    ui.hangup.disabled = false;
    ui.mute.disabled = false;
  } catch (err) {
    addLine('system', `${err.message || err}`);
    setState('failed');
    cleanup();
  }
}

function subscribe(key, callId) {
  if (!callId) return;
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const q = new URLSearchParams({ api_key: key, calls: callId, since: '0' });
  events = new WebSocket(`${proto}//${location.host}/ws/events?${q}`);
  events.onmessage = (msg) => {
    let m;
    try { m = JSON.parse(msg.data); } catch (_) { return; }
    if (m.type !== 'event') return;
    softphone.events.push(m);
    onEvent(m.kind, m.data || {});
  };
  events.onerror = () => addLine('system', 'Live transcript unavailable.');
}

const botLines = new Map();

function onEvent(kind, data) {
  switch (kind) {
    case 'call.transcript_final':
      addLine('caller', data.text);
      break;
    case 'call.bot_speaking':
      botLines.set(data.utterance, addLine('bot', data.text));
      break;
    case 'call.bot_utterance': {
      const li = botLines.get(data.utterance);
      if (li && data.cut) { li.textContent = `${data.heard}… (interrupted)`; }
      break;
    }
    case 'call.dtmf':
      addLine('caller', `[pressed ${data.digit}]`);
      break;
    case 'call.transfer_requested':
      addLine('system', `Transferring to ${data.target}…`);
      setState('transferring');
      break;
    case 'call.ended':
      addLine('system', `Call ended (${data.cause}).`);
      setState('ended');
      cleanup();
      break;
    default:
      break;
  }
}

async function hangup() {
  const session = softphone.session;
  const token = softphone.token;
  if (session) {
    try {
      await fetch(session, { method: 'DELETE', headers: { Authorization: `Bearer ${token}` } });
    } catch (_) { /* the connection closing ends the call too */ }
  }
  setState('ended');
  // Keep the events socket a moment so `call.ended` arrives.
  closeMedia();
  setTimeout(cleanup, 3000);
}

function closeMedia() {
  if (pc) { pc.close(); pc = null; }
  if (mic) { mic.getTracks().forEach((t) => t.stop()); mic = null; }
  ui.hangup.disabled = true;
  ui.mute.disabled = true;
  ui.mute.setAttribute('aria-pressed', 'false');
  ui.call.disabled = false;
}

function cleanup() {
  closeMedia();
  if (events) { events.close(); events = null; }
  if (meterTimer) { clearInterval(meterTimer); meterTimer = null; }
  meters.length = 0;
  ui.micLevel.value = 0;
  ui.botLevel.value = 0;
  softphone.session = null;
}

function toggleMute() {
  if (!mic) return;
  const track = mic.getAudioTracks()[0];
  track.enabled = !track.enabled;
  ui.mute.setAttribute('aria-pressed', String(!track.enabled));
  ui.mute.textContent = track.enabled ? 'Mute' : 'Unmute';
}

function sendDigit(digit) {
  const sender = pc && pc.getSenders().find((s) => s.track && s.track.kind === 'audio');
  if (!sender || !sender.dtmf) return;
  sender.dtmf.insertDTMF(digit, 100, 70);
}

// Level meters: RMS of the analyser's time-domain data, refreshed ten times a second.
const meters = [];
function meter(stream, element) {
  try {
    audioCtx = audioCtx || new AudioContext();
    audioCtx.resume().catch(() => {});
    const analyser = audioCtx.createAnalyser();
    analyser.fftSize = 512;
    audioCtx.createMediaStreamSource(stream).connect(analyser);
    meters.push({ analyser, element, buf: new Float32Array(analyser.fftSize) });
    if (!meterTimer) {
      meterTimer = setInterval(() => {
        for (const m of meters) {
          m.analyser.getFloatTimeDomainData(m.buf);
          let sum = 0;
          for (const v of m.buf) sum += v * v;
          m.element.value = Math.min(1, Math.sqrt(sum / m.buf.length) * 4);
        }
      }, 100);
    }
  } catch (_) { /* meters are cosmetic */ }
}

ui.call.addEventListener('click', call);
ui.hangup.addEventListener('click', hangup);
ui.mute.addEventListener('click', toggleMute);
document.querySelectorAll('.keypad button').forEach((b) => b.addEventListener('click', () => sendDigit(b.textContent)));

const fromFragment = new URLSearchParams(location.hash.slice(1)).get('key');
ui.key.value = fromFragment || localStorage.getItem('switchboard.apiKey') || '';
loadEntries();
