// Joining a call's audio from the supervisor dashboard: listen, whisper to the agent or barge in
// (WebRTC, WHIP-style, non-trickle). POST the offer to /webrtc/calls/{id}/participants, PATCH the
// session to change mode, DELETE it to leave. Plain JS, loaded before supervisor.js, which owns
// the rest of the page and hands in what this part needs from it through create().
'use strict';

window.SupervisorListen = (() => {
  const MODES = ['listen', 'whisper', 'barge'];
  const IDLE = Object.freeze({ state: 'idle', mode: null, callId: null, participantId: null, session: null });
  const MODE_LABELS = { listen: 'listening', whisper: 'whispering to the agent', barge: 'barged in' };

  // supervisor: the page's state, whose `monitor` this part keeps. apiKey, selectedCall and name
  // are functions because the key, the selection and the name change while the page runs.
  function create({ supervisor, apiKey, selectedCall, name, render, logError, errorFrom }) {
    const $ = (id) => document.getElementById(id);
    const ui = { monitorState: $('monitor-state'), monitorError: $('monitor-error'), leave: $('leave'), audio: $('monitor-audio') };
    let pc = null, sender = null, mic = null, monitorKey = '';
    let monitorGen = 0;        // bumped on every teardown: the steps of an older join stop there

    function setMonitor(fields) { Object.assign(supervisor.monitor, fields); render(); }

    function monitorError(message) {
      if (message) logError(message);
      ui.monitorError.textContent = message || '';
      ui.monitorError.hidden = !message;
    }

    async function microphone(gen) {
      if (!navigator.mediaDevices) throw new Error('no microphone on this page (it needs https or localhost)');
      let stream;
      try {
        stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true } });
      } catch (err) {
        throw new Error(`the microphone is not available (${err.name || err.message})`);
      }
      if (gen !== monitorGen) { stream.getTracks().forEach((t) => t.stop()); throw new Error('cancelled'); }
      mic = stream;
      return stream.getAudioTracks()[0];
    }

    function waitForIce(peer, ms) {
      return new Promise((resolve) => {
        if (peer.iceGatheringState === 'complete') return resolve();
        peer.addEventListener('icegatheringstatechange', () => { if (peer.iceGatheringState === 'complete') resolve(); });
        setTimeout(resolve, ms); // host candidates gather in milliseconds; never wait long for STUN
      });
    }

    async function join(mode) {
      const call = selectedCall(), mon = supervisor.monitor;
      if (!MODES.includes(mode) || !call || call.state === 'ended' || ['joining', 'switching', 'leaving'].includes(mon.state)) return;
      if (mon.session && mon.callId === call.id) { await switchMode(mode); return; }
      if (mon.state !== 'idle') await leave();
      const gen = ++monitorGen, key = monitorKey = apiKey();
      monitorError(null);
      setMonitor({ ...IDLE, state: 'joining', mode, callId: call.id });
      try {
        // Listening needs no microphone: the transceiver sends nothing until a track is put on it.
        const track = mode === 'listen' ? null : await microphone(gen);
        const peer = pc = new RTCPeerConnection({ iceServers: [] });
        sender = peer.addTransceiver(track || 'audio', { direction: 'sendrecv' }).sender;
        peer.ontrack = (ev) => { ui.audio.srcObject = ev.streams[0] || new MediaStream([ev.track]); ui.audio.play().catch(() => {}); };
        peer.onconnectionstatechange = () => { if (peer === pc && peer.connectionState === 'failed') failMonitor('The audio connection failed.'); };
        await peer.setLocalDescription(await peer.createOffer());
        await waitForIce(peer, 2000);
        if (gen !== monitorGen) return;
        const q = new URLSearchParams({ role: 'supervisor', mode, name: name() });
        const res = await fetch(`/webrtc/calls/${encodeURIComponent(call.id)}/participants?${q}`, {
          method: 'POST', headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/sdp' }, body: peer.localDescription.sdp,
        });
        if (res.status !== 201) throw await errorFrom(res);
        const where = res.headers.get('Location');
        const session = where ? new URL(where, location.href).href : null;
        if (gen !== monitorGen) { if (session) deleteSession(session, key).catch(() => {}); return; }
        if (!session) throw new Error('the server did not say where the participant session is');
        setMonitor({ session, participantId: res.headers.get('X-Participant-Id') });
        await peer.setRemoteDescription({ type: 'answer', sdp: await res.text() });
        if (gen === monitorGen) setMonitor({ state: 'connected' });
      } catch (err) {
        if (gen === monitorGen) failMonitor(`Cannot join the call: ${err.message || err}`);
      }
    }

    async function switchMode(mode) {
      const mon = supervisor.monitor, prev = mon.mode, gen = monitorGen;
      const track = () => mic && mic.getAudioTracks()[0];
      if (mon.state !== 'connected' || mode === prev) return;
      monitorError(null);
      setMonitor({ state: 'switching' });
      try {
        // Our voice stops before the server hears of listening, and starts only once it agreed.
        if (mode !== 'listen' && !track()) {
          const t = await microphone(gen);
          t.enabled = false;
          await sender.replaceTrack(t);
        }
        if (mode === 'listen' && track()) track().enabled = false;
        const res = await fetch(mon.session, {
          method: 'PATCH', headers: { Authorization: `Bearer ${monitorKey}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ mode }),
        });
        if (!res.ok) throw await errorFrom(res);
        const body = await res.json().catch(() => null);
        if (gen !== monitorGen) return;
        const now = body && MODES.includes(body.mode) ? body.mode : mode;
        if (track()) track().enabled = now !== 'listen';
        setMonitor({ state: 'connected', mode: now });
      } catch (err) {
        if (gen !== monitorGen) return;
        if (track()) track().enabled = prev !== 'listen';
        setMonitor({ state: 'connected' });
        monitorError(`Cannot switch to ${mode}: ${err.message || err}`);
      }
    }

    async function deleteSession(session, key) {
      const res = await fetch(session, { method: 'DELETE', headers: { Authorization: `Bearer ${key}` } });
      if (!res.ok && res.status !== 404) throw await errorFrom(res);
    }

    function teardown() {
      monitorGen++;
      if (pc) pc.close();
      if (mic) mic.getTracks().forEach((t) => t.stop());
      pc = sender = mic = null;
      ui.audio.srcObject = null;
    }

    async function leave() {
      const { session } = supervisor.monitor;
      teardown();
      const gen = monitorGen;
      setMonitor({ ...IDLE, state: session ? 'leaving' : 'idle' });
      if (!session) return;
      try {
        await deleteSession(session, monitorKey);
      } catch (err) {
        monitorError(`Leaving may not have reached the server: ${err.message || err}`);
      }
      if (gen === monitorGen) setMonitor({ state: 'idle' });
    }

    function failMonitor(message) {
      const { session } = supervisor.monitor;
      teardown();
      if (session) deleteSession(session, monitorKey).catch(() => {});
      setMonitor({ ...IDLE, state: 'failed' });
      monitorError(message);
    }

    // The server ended our part (the call ended, or we were removed): nothing to tell it.
    function monitorGone(message) {
      teardown();
      setMonitor({ ...IDLE });
      if (message) monitorError(message);
    }

    // An event about our own participant: the server removed it, or changed its mode.
    function onOwnEvent(kind, data) {
      const mon = supervisor.monitor;
      if (!mon.participantId || data.participant !== mon.participantId) return;
      if (kind === 'participant_left') monitorGone(`You are no longer on the call (${data.reason || 'removed'}).`);
      if (kind === 'monitor_mode' && MODES.includes(data.mode)) mon.mode = data.mode;
    }

    function setText(node, text) { if (node.textContent !== text) node.textContent = text; }

    function renderMonitor() {
      const mon = supervisor.monitor, call = selectedCall();
      const busy = ['joining', 'switching', 'leaving'].includes(mon.state);
      for (const mode of MODES) {
        $(mode).disabled = busy || !call || call.state === 'ended';
        $(mode).setAttribute('aria-pressed', String(mon.state === 'connected' && !!call && mon.callId === call.id && mon.mode === mode));
      }
      ui.leave.disabled = ['idle', 'failed', 'leaving'].includes(mon.state);
      ui.monitorState.dataset.state = mon.state;
      setText(ui.monitorState, mon.state === 'connected' ? `${MODE_LABELS[mon.mode] || mon.mode} on ${mon.callId}`
        : mon.state === 'joining' ? `joining ${mon.callId}…` : mon.state === 'idle' ? 'not listening' : mon.state);
    }

    for (const mode of MODES) $(mode).addEventListener('click', () => join(mode));
    ui.leave.addEventListener('click', leave);
    // Closing the tab leaves the call rather than leaving a silent participant until it times out.
    window.addEventListener('pagehide', () => {
      const { session } = supervisor.monitor;
      if (session) fetch(session, { method: 'DELETE', keepalive: true, headers: { Authorization: `Bearer ${monitorKey}` } }).catch(() => {});
    });

    return { join, leave, gone: monitorGone, onOwnEvent, render: renderMonitor };
  }

  return Object.freeze({ IDLE, create });
})();
