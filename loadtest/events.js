// Many live-event subscribers (`GET /ws/events`) while Twilio calls run (k6 v1.1.0).
//
// Each subscriber checks the contract: `hello` first; events in strictly increasing `seq`,
// never duplicated; with no filter every tenant event arrives, so a gap in `seq` must be
// announced by a `lagged` notice (a slow client) or it counts as a silently missed event.
// Filtered subscribers (every 4th, `kinds=call.started,call.ended`) check order only. The
// `calls` scenario runs twilio_calls.js's call so there is traffic to watch.
//
//   API_KEY=... k6 run -e TARGET_URL=http://127.0.0.1:8080 loadtest/events.js
//   make loadtest SCRIPT=events
//
// Environment: TARGET_URL, API_KEY (required), SUBSCRIBERS (50), CALLS (20), DURATION (1m),
// SUB_SECONDS (how long each subscription lasts, 20), SUMMARY_FILE.

import { WebSocket } from 'k6/experimental/websockets';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';
import twilioCall from './twilio_calls.js';

const TARGET = (__ENV.TARGET_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const WS_BASE = TARGET.replace(/^http/, 'ws');
const KEY = __ENV.API_KEY || '';
const SUB_SECONDS = Number(__ENV.SUB_SECONDS || 20);
const DURATION = __ENV.DURATION || '1m';
const SUMMARY_FILE = __ENV.SUMMARY_FILE || 'loadtest/results/events-summary.json';

const received = new Counter('events_received');
const orderViolations = new Counter('event_order_violations');
const missedSilently = new Counter('events_missed_silently');
const laggedNotices = new Counter('lagged_notices');
const laggedMissed = new Counter('lagged_missed_events');
const noHello = new Counter('subscriptions_without_hello');
const serverErrors = new Counter('event_socket_errors');
// The server dropped the connection instead of answering our close frame (RFC 6455 §5.5.1).
const noCloseReply = new Counter('close_without_reply');
const delay = new Trend('event_delivery_delay', true);

export const options = {
  scenarios: {
    subscribers: { executor: 'constant-vus', exec: 'subscribe', vus: Number(__ENV.SUBSCRIBERS || 50), duration: DURATION, gracefulStop: `${SUB_SECONDS + 5}s` },
    calls: { executor: 'constant-vus', exec: 'calls', vus: Number(__ENV.CALLS || 20), duration: DURATION, gracefulStop: '45s' },
  },
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'],
  thresholds: {
    event_order_violations: ['count==0'],
    events_missed_silently: ['count==0'],
    subscriptions_without_hello: ['count==0'],
    event_socket_errors: ['count==0'],
    // Publish (`at`, server clock) to arrival here: same machine, so the clocks agree.
    event_delivery_delay: ['p(95)<250'],
    events_received: ['count>0'],
  },
};

export function calls() {
  twilioCall();
}

export function subscribe() {
  if (!KEY) throw new Error('API_KEY is required');
  const filtered = exec.vu.idInTest % 4 === 0;
  const query = filtered ? '?kinds=call.started,call.ended' : '';
  const ws = new WebSocket(`${WS_BASE}/ws/events${query}`, null, { headers: { Authorization: `Bearer ${KEY}` } });
  let helloSeen = false;
  let first = true;
  let lastSeq = null;
  let lagged = false;
  let timer = null;
  let closing = false;

  ws.addEventListener('open', () => {
    timer = setTimeout(() => {
      closing = true;
      ws.close(1000);
    }, SUB_SECONDS * 1000);
  });
  ws.addEventListener('message', (e) => {
    let msg;
    try {
      msg = JSON.parse(e.data);
    } catch (err) {
      serverErrors.add(1);
      return;
    }
    if (first) {
      first = false;
      if (msg.type !== 'hello') noHello.add(1);
      else helloSeen = true;
      if (msg.type === 'hello') return;
    }
    switch (msg.type) {
      case 'event': {
        received.add(1);
        if (typeof msg.at === 'number') delay.add(Math.max(0, Date.now() - msg.at));
        if (lastSeq !== null) {
          if (msg.seq <= lastSeq) orderViolations.add(1);
          else if (!filtered && msg.seq !== lastSeq + 1 && !lagged) missedSilently.add(msg.seq - lastSeq - 1);
        }
        lastSeq = msg.seq;
        lagged = false;
        break;
      }
      case 'lagged':
        laggedNotices.add(1);
        laggedMissed.add(msg.missed || 0);
        lagged = true;
        break;
      case 'history_truncated':
        lagged = true;
        break;
      case 'error':
        serverErrors.add(1);
        break;
      default:
        break;
    }
  });
  ws.addEventListener('error', (e) => {
    if (closing) {
      noCloseReply.add(1);
    } else {
      console.warn(`event socket error: ${e.error}`);
      serverErrors.add(1);
    }
    if (timer !== null) clearTimeout(timer);
  });
  ws.addEventListener('close', () => {
    if (timer !== null) clearTimeout(timer);
    if (!helloSeen && first) noHello.add(1);
  });
}

export function handleSummary(data) {
  const names = ['events_received', 'event_order_violations', 'events_missed_silently', 'lagged_notices',
    'lagged_missed_events', 'subscriptions_without_hello', 'event_socket_errors', 'close_without_reply', 'event_delivery_delay', 'call_failed'];
  const lines = [`events against ${TARGET}`];
  for (const n of names) {
    const m = data.metrics[n];
    if (!m) continue;
    const v = m.values;
    const val = m.type === 'trend' ? `med=${v.med.toFixed(1)}ms p95=${v['p(95)'].toFixed(1)}ms p99=${v['p(99)'].toFixed(1)}ms`
      : m.type === 'rate' ? `${(v.rate * 100).toFixed(2)}%` : `${v.count}`;
    const th = m.thresholds ? Object.entries(m.thresholds).map(([k, t]) => `${t.ok ? 'ok' : 'FAILED'} ${k}`).join(', ') : '';
    lines.push(`  ${n.padEnd(30)} ${val}${th ? `   [${th}]` : ''}`);
  }
  return { [SUMMARY_FILE]: JSON.stringify(data, null, 2), stdout: lines.join('\n') + '\n' };
}
