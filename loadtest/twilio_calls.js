// Twilio Media Streams calls against switchboard, the way Twilio places them (k6 v1.1.0).
//
// Each iteration is one phone call on `ws://HOST/twilio/stream/<token>`: `connected`, `start`
// (with customParameters), then 20 ms μ-law `media` frames paced by the wall clock (every tick
// sends all frames due since t0, because k6's timers drift), speech from audio/caller.ulaw
// between silences, a DTMF key on one turn, marks echoed once the audio before them has played
// (Twilio's playout buffer, emulated; at once on `clear`), and `stop` at the end.
//
// The conversation: wait for the bot's answer to play out, pause, say the speech file, time the
// answer (end of speech -> first bot audio frame). Every BARGE_EVERY-th turn talks over the
// bot's answer instead and times speech start -> `clear`.
//
//   k6 run loadtest/twilio_calls.js                               # SCENARIO=constant
//   k6 run -e SCENARIO=ramp -e CALLS=200 loadtest/twilio_calls.js
//   k6 run -e SCENARIO=smoke -e TARGET_URL=http://127.0.0.1:18080 loadtest/twilio_calls.js
//
// Environment: TARGET_URL (http base, default http://127.0.0.1:8080), SCENARIO
// (smoke|constant|ramp|soak), CALLS, DURATION, CALL_SECONDS, FLOW (customParameters.flow),
// BARGE_EVERY, DTMF_TURN, PAUSE_MS, SUMMARY_FILE (JSON summary path).

import { WebSocket } from 'k6/experimental/websockets';
import { b64encode } from 'k6/encoding';
import exec from 'k6/execution';
import { Counter, Rate, Trend } from 'k6/metrics';

const TARGET = (__ENV.TARGET_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const WS_BASE = TARGET.replace(/^http/, 'ws');
const SCENARIO = __ENV.SCENARIO || 'constant';
const CALL_SECONDS = Number(__ENV.CALL_SECONDS || (SCENARIO === 'smoke' ? 12 : 30));
const BARGE_EVERY = Number(__ENV.BARGE_EVERY || 3);
const DTMF_TURN = Number(__ENV.DTMF_TURN || 2);
const PAUSE_MS = Number(__ENV.PAUSE_MS || 300);
const BARGE_DELAY_MS = Number(__ENV.BARGE_DELAY_MS || 500);
const TURN_TIMEOUT_MS = Number(__ENV.TURN_TIMEOUT_MS || 5000);
const SUMMARY_FILE = __ENV.SUMMARY_FILE || 'loadtest/results/twilio_calls-summary.json';

const FRAME_MS = 20;
const FRAME_BYTES = 160;
// Bot frames after a gap longer than this start a new utterance (for lateness and jitter).
const RUN_GAP_MS = 100;
// Frames this close to an utterance's first frame are its lead burst (the server sends its first
// 200 ms at once); timing is measured on the frames after it.
const BURST_WINDOW_MS = 5;

// Init context: the caller's speech, cut into pre-encoded 20 ms frames once per VU.
const speech = open('./audio/caller.ulaw', 'b');
const SPEECH_FRAMES = [];
for (let off = 0; off + FRAME_BYTES <= speech.byteLength; off += FRAME_BYTES) {
  SPEECH_FRAMES.push(b64encode(speech.slice(off, off + FRAME_BYTES)));
}
const SILENCE = b64encode(new Uint8Array(FRAME_BYTES).fill(0xff).buffer);

const eosToFirstAudio = new Trend('eos_to_first_audio', true);
const bargeInToClear = new Trend('barge_in_to_clear', true);
const dtmfToFirstAudio = new Trend('dtmf_to_first_audio', true);
const frameLateness = new Trend('outbound_frame_lateness', true);
const interarrivalJitter = new Trend('outbound_interarrival_jitter', true);
const handshake = new Trend('handshake_time', true);
const callFailed = new Rate('call_failed');
const turnsUnanswered = new Counter('turns_unanswered');
const violations = new Counter('protocol_violations');
const lateSends = new Counter('caller_frames_sent_late');
const turnsTaken = new Counter('turns');

function scenarios() {
  const calls = Number(__ENV.CALLS || 0);
  const duration = __ENV.DURATION;
  switch (SCENARIO) {
    case 'smoke':
      return { smoke: { executor: 'per-vu-iterations', vus: calls || 3, iterations: 1, maxDuration: '60s' } };
    case 'constant':
      return { constant: { executor: 'constant-vus', vus: calls || 50, duration: duration || '2m', gracefulStop: `${CALL_SECONDS + 10}s` } };
    case 'ramp':
      return {
        ramp: {
          executor: 'ramping-vus', startVUs: 0, gracefulRampDown: `${CALL_SECONDS + 10}s`,
          stages: [
            { duration: '1m', target: calls || 200 },
            { duration: duration || '3m', target: calls || 200 },
            { duration: '30s', target: 0 },
          ],
        },
      };
    case 'soak':
      return { soak: { executor: 'constant-vus', vus: calls || 20, duration: duration || '30m', gracefulStop: `${CALL_SECONDS + 10}s` } };
    default:
      throw new Error(`unknown SCENARIO ${SCENARIO} (smoke|constant|ramp|soak)`);
  }
}

export const options = {
  scenarios: scenarios(),
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'],
  thresholds: {
    call_failed: ['rate<0.01'],
    // VAD end-of-speech (600 ms) + answer; a human notices above ~1.5 s.
    eos_to_first_audio: ['p(95)<1500'],
    // VAD start (200 ms) + the flow's 300 ms minimum speech + a margin.
    barge_in_to_clear: ['p(95)<1000'],
    // k6 timestamps are whole milliseconds and its event loop adds its own delay: the bound is
    // looser than the capacity criterion (20 ms), which the Rust generator measures.
    outbound_frame_lateness: ['p(99)<40'],
    handshake_time: ['p(95)<500'],
    protocol_violations: ['count==0'],
  },
};

// Decoded size of a base64 string without decoding it.
function b64Bytes(s) {
  const pad = s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0;
  return (s.length / 4) * 3 - pad;
}

export default function () {
  const vu = exec.vu.idInTest;
  const iter = exec.vu.iterationInScenario;
  const tag = `${String(vu).padStart(8, '0')}${String(iter).padStart(8, '0')}`;
  const streamSid = `MZk6${tag}`;
  const callSid = `CAk6${tag}`;
  const params = { From: '+15550001000', To: '+15550002000' };
  if (__ENV.FLOW) params.flow = __ENV.FLOW;

  const opened = Date.now();
  const ws = new WebSocket(`${WS_BASE}/twilio/stream/k6-${tag}`);
  let t0 = 0;
  let seq = 1;
  let nextFrame = 0;
  let interval = null;
  let ended = false;
  let failed = false;
  let stopping = false;

  // Conversation state: 'waiting' (for the bot's answer to play out), 'speaking', 'answering'.
  let phase = 'waiting';
  let speechAt = 0;
  let barge = false;
  let answerFrom = 0; // eos (or key press) time while answering
  let answerIsDtmf = false;
  let answerStarted = 0; // first frame of the bot's current answer
  let bargeStarted = 0;
  let turn = 0;
  let lastMedia = 0;

  // Emulated playout buffer.
  let playEnd = 0;
  const marks = []; // [dueMs, name]
  let runStart = 0;
  let runAudioMs = 0;
  let anchor = null; // the utterance's schedule, set by the first frame after the burst
  let lastArrival = 0;

  const send = (obj) => ws.send(JSON.stringify(obj));
  const fail = (why) => {
    if (!failed) console.warn(`call ${callSid}: ${why}`);
    failed = true;
  };
  const echo = (name) => send({ event: 'mark', sequenceNumber: String(seq++), streamSid, mark: { name } });

  function tick() {
    const now = Date.now();
    while (marks.length && marks[0][0] <= now) echo(marks.shift()[1]);
    if (now - t0 >= CALL_SECONDS * 1000) {
      hangUp();
      return;
    }
    advance(now);
    while (t0 + (nextFrame + 1) * FRAME_MS <= now) {
      const due = t0 + (nextFrame + 1) * FRAME_MS;
      if (now - due > FRAME_MS) lateSends.add(1);
      let payload = SILENCE;
      if (phase === 'speaking') {
        if (speechAt === 0 && barge) bargeStarted = due - FRAME_MS;
        payload = SPEECH_FRAMES[speechAt++];
        if (speechAt === SPEECH_FRAMES.length) {
          phase = 'answering';
          answerFrom = due;
          answerIsDtmf = false;
          answerStarted = 0;
        }
      }
      send({
        event: 'media', sequenceNumber: String(seq++),
        media: { track: 'inbound', chunk: String(nextFrame + 1), timestamp: String(nextFrame * FRAME_MS), payload },
        streamSid,
      });
      nextFrame++;
    }
  }

  function advance(now) {
    if (phase === 'waiting' && answerStarted > 0) {
      const next = turn + 1;
      const wantsBarge = BARGE_EVERY > 0 && next % BARGE_EVERY === 0;
      if (wantsBarge && playEnd > now && now >= answerStarted + BARGE_DELAY_MS) {
        turn = next; turnsTaken.add(1);
        phase = 'speaking'; speechAt = 0; barge = true;
        return;
      }
      if (playEnd <= now && now >= lastMedia + PAUSE_MS) {
        turn = next; turnsTaken.add(1);
        if (next === DTMF_TURN) {
          send({ event: 'dtmf', streamSid, sequenceNumber: String(seq++), dtmf: { track: 'inbound_track', digit: '1' } });
          phase = 'answering'; answerFrom = now; answerIsDtmf = true; answerStarted = 0;
        } else {
          phase = 'speaking'; speechAt = 0; barge = false;
        }
      }
    } else if (phase === 'answering' && now - answerFrom > TURN_TIMEOUT_MS) {
      turnsUnanswered.add(1);
      fail(`turn ${turn} got no answer`);
      phase = 'waiting';
      answerStarted = now;
    }
    if (bargeStarted > 0 && now - bargeStarted > TURN_TIMEOUT_MS) {
      bargeStarted = 0;
      fail(`barge-in on turn ${turn} got no clear`);
    }
  }

  function onMedia(now, bytes) {
    lastMedia = now;
    if (phase === 'answering') {
      (answerIsDtmf ? dtmfToFirstAudio : eosToFirstAudio).add(now - answerFrom);
      phase = 'waiting';
    }
    if (answerStarted === 0 && phase === 'waiting') answerStarted = now;
    if (lastArrival === 0 || now - lastArrival > RUN_GAP_MS) {
      runStart = now; runAudioMs = 0; anchor = null;
    }
    if (now - runStart > BURST_WINDOW_MS) {
      const offset = now - runStart - runAudioMs;
      if (anchor === null) anchor = offset;
      // Early frames (sent in a pair with the one before) count as on time.
      frameLateness.add(Math.max(0, offset - anchor));
      interarrivalJitter.add(Math.abs(now - lastArrival - FRAME_MS));
    }
    runAudioMs += bytes / 8;
    lastArrival = now;
    playEnd = Math.max(playEnd, now) + bytes / 8;
  }

  function onServerMessage(text) {
    const now = Date.now();
    let msg;
    try {
      msg = JSON.parse(text);
    } catch (e) {
      violations.add(1);
      fail('server sent invalid JSON');
      return;
    }
    if (msg.streamSid !== streamSid) {
      violations.add(1);
      fail(`wrong streamSid ${msg.streamSid}`);
      return;
    }
    switch (msg.event) {
      case 'media':
        onMedia(now, b64Bytes(msg.media.payload));
        break;
      case 'mark':
        if (playEnd > now) marks.push([playEnd, msg.mark.name]);
        else echo(msg.mark.name);
        break;
      case 'clear':
        if (bargeStarted > 0) {
          bargeInToClear.add(now - bargeStarted);
          bargeStarted = 0;
        }
        playEnd = now;
        while (marks.length) echo(marks.shift()[1]);
        break;
      default:
        violations.add(1);
        fail(`unknown event ${msg.event}`);
    }
  }

  function finish() {
    if (ended) return;
    ended = true;
    if (interval !== null) clearInterval(interval);
    callFailed.add(failed ? 1 : 0);
  }

  function hangUp() {
    if (stopping) return;
    stopping = true;
    send({ event: 'stop', sequenceNumber: String(seq++), stop: { accountSid: 'AC00000000000000000000000000000000', callSid }, streamSid });
    ws.close(1000);
    finish();
  }

  ws.addEventListener('open', () => {
    handshake.add(Date.now() - opened);
    send({ event: 'connected', protocol: 'Call', version: '1.0.0' });
    send({
      event: 'start', sequenceNumber: String(seq++),
      start: {
        accountSid: 'AC00000000000000000000000000000000', streamSid, callSid, tracks: ['inbound'],
        mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
        customParameters: params,
      },
      streamSid,
    });
    t0 = Date.now();
    // Global timers drift (they re-arm after each callback): the tick only wakes the sender,
    // which catches up on every frame due since t0.
    interval = setInterval(tick, 10);
  });
  ws.addEventListener('message', (e) => {
    if (typeof e.data !== 'string') {
      violations.add(1);
      fail('binary frame (31950)');
      return;
    }
    onServerMessage(e.data);
  });
  ws.addEventListener('error', (e) => {
    fail(`socket error: ${e.error}`);
    finish();
  });
  ws.addEventListener('close', () => {
    if (!stopping) fail('server closed the call');
    finish();
  });
}

function fmt(m) {
  if (!m) return '-';
  const v = m.values;
  if (m.type === 'trend') return `med=${v.med.toFixed(1)}ms p95=${v['p(95)'].toFixed(1)}ms p99=${v['p(99)'].toFixed(1)}ms max=${v.max.toFixed(1)}ms`;
  if (m.type === 'rate') return `${(v.rate * 100).toFixed(2)}% (${v.passes} of ${v.passes + v.fails})`;
  if (m.type === 'counter') return `${v.count}`;
  return JSON.stringify(v);
}

export function handleSummary(data) {
  const names = [
    'eos_to_first_audio', 'barge_in_to_clear', 'dtmf_to_first_audio', 'outbound_frame_lateness',
    'outbound_interarrival_jitter', 'handshake_time', 'ws_connecting', 'call_failed', 'turns',
    'turns_unanswered', 'protocol_violations', 'caller_frames_sent_late', 'ws_msgs_sent', 'ws_msgs_received',
  ];
  const lines = [`twilio_calls (${SCENARIO}) against ${TARGET}`];
  for (const n of names) {
    const m = data.metrics[n];
    const th = m && m.thresholds ? Object.entries(m.thresholds).map(([k, t]) => `${t.ok ? 'ok' : 'FAILED'} ${k}`).join(', ') : '';
    lines.push(`  ${n.padEnd(30)} ${fmt(m)}${th ? `   [${th}]` : ''}`);
  }
  return { [SUMMARY_FILE]: JSON.stringify(data, null, 2), stdout: lines.join('\n') + '\n' };
}
