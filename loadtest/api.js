// Control-plane REST load (k6 v1.1.0): list calls, queue status, agent status changes and
// transfers under /api/v1, with p95 thresholds per endpoint and 429 / error rates.
//
//   API_KEY=... k6 run -e TARGET_URL=http://127.0.0.1:8080 loadtest/api.js
//   make loadtest SCRIPT=api          # starts a server and passes its demo key
//
// setup() creates one department and AGENTS agents in it; each iteration reads calls and
// queues, flips one agent between available and away, and transfers a live call to the
// department when one exists (run twilio_calls.js beside it for that), otherwise asks for a
// transfer of an unknown call and expects 404.
//
// Environment: TARGET_URL, API_KEY (required), VUS (20), DURATION (1m), AGENTS (20),
// SUMMARY_FILE.

import http from 'k6/http';
import { check, group } from 'k6';
import exec from 'k6/execution';
import { Counter, Rate } from 'k6/metrics';

const TARGET = (__ENV.TARGET_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const API = `${TARGET}/api/v1`;
const KEY = __ENV.API_KEY || '';
const AGENTS = Number(__ENV.AGENTS || 20);
const SUMMARY_FILE = __ENV.SUMMARY_FILE || 'loadtest/results/api-summary.json';

const rateLimited = new Rate('rate_limited');
const unexpected = new Rate('unexpected_errors');
const transfersStarted = new Counter('transfers_started');

export const options = {
  scenarios: {
    control_plane: { executor: 'constant-vus', vus: Number(__ENV.VUS || 20), duration: __ENV.DURATION || '1m' },
  },
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'],
  thresholds: {
    'http_req_duration{name:list_calls}': ['p(95)<100'],
    'http_req_duration{name:queues}': ['p(95)<100'],
    'http_req_duration{name:department_queue}': ['p(95)<100'],
    'http_req_duration{name:agent_status}': ['p(95)<150'],
    'http_req_duration{name:transfer}': ['p(95)<250'],
    'http_req_duration{name:health}': ['p(95)<50'],
    rate_limited: ['rate<0.05'],
    unexpected_errors: ['rate<0.01'],
  },
};

const params = (name) => ({
  headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
  tags: { name },
  // 404/409/422 are answers these requests may legitimately get; they are checked below.
  responseCallback: http.expectedStatuses({ min: 200, max: 299 }, 404, 409, 422, 429),
});

// Records 429s and anything outside `ok` statuses.
function account(res, ok) {
  rateLimited.add(res.status === 429);
  unexpected.add(res.status !== 429 && !ok.includes(res.status));
  return res;
}

export function setup() {
  if (!KEY) throw new Error('API_KEY is required (the demo key is printed on first start and kept in <data_dir>/demo_api_key)');
  const name = `k6-${Date.now()}`;
  const dept = http.post(`${API}/departments`, JSON.stringify({ name }), params('setup'));
  if (dept.status !== 201 && dept.status !== 200) throw new Error(`creating department: ${dept.status} ${dept.body}`);
  const deptId = dept.json('id');
  const agents = [];
  for (let i = 0; i < AGENTS; i++) {
    const a = http.post(`${API}/agents`, JSON.stringify({ id: `${name}-a${i}`, name: `Agent ${i}`, departments: [deptId], reach: { kind: 'browser' } }), params('setup'));
    if (a.status !== 201 && a.status !== 200) throw new Error(`creating agent: ${a.status} ${a.body}`);
    agents.push(a.json('id'));
  }
  return { deptId, deptName: name, agents };
}

export default function (data) {
  group('read', () => {
    account(http.get(`${TARGET}/health`, { tags: { name: 'health' } }), [200]);
    const calls = account(http.get(`${API}/calls?limit=50`, params('list_calls')), [200]);
    check(calls, { 'calls listed': (r) => r.status === 200 });
    account(http.get(`${API}/queues`, params('queues')), [200]);
    account(http.get(`${API}/departments/${data.deptId}/queue`, params('department_queue')), [200]);
    account(http.get(`${API}/agents`, params('agents')), [200]);
  });

  group('agent status', () => {
    const id = data.agents[(exec.vu.idInTest + exec.vu.iterationInScenario) % data.agents.length];
    const status = exec.vu.iterationInScenario % 2 === 0 ? 'available' : 'away';
    // 409: the agent was just offered a call or is on one.
    const r = account(http.put(`${API}/agents/${id}/status`, JSON.stringify({ status }), params('agent_status')), [200, 409]);
    check(r, { 'status changed or agent busy': (x) => x.status === 200 || x.status === 409 });
  });

  group('transfer', () => {
    const live = http.get(`${API}/calls?state=active&limit=1`, params('list_calls'));
    let callId = null;
    if (live.status === 200) {
      const body = live.json();
      const items = Array.isArray(body) ? body : (body.items || body.calls || []);
      const active = items.find((c) => !c.ended_at);
      if (active) callId = active.id;
    }
    const body = { call_id: callId || 'call_does_not_exist', target_kind: 'department', target: data.deptName };
    const r = account(http.post(`${API}/transfers`, JSON.stringify(body), params('transfer')), callId ? [200, 201, 202, 409, 422] : [404, 422]);
    if (callId && r.status < 300) transfersStarted.add(1);
    check(r, { 'transfer answered': (x) => x.status < 500 });
  });
}

export function handleSummary(data) {
  const lines = [`api against ${TARGET}`];
  for (const [name, m] of Object.entries(data.metrics)) {
    if (!name.startsWith('http_req_duration{') && !['rate_limited', 'unexpected_errors', 'http_reqs', 'transfers_started'].includes(name)) continue;
    const v = m.values;
    const val = m.type === 'trend' ? `med=${v.med.toFixed(1)}ms p95=${v['p(95)'].toFixed(1)}ms p99=${v['p(99)'].toFixed(1)}ms`
      : m.type === 'rate' ? `${(v.rate * 100).toFixed(2)}%` : `${v.count}`;
    const th = m.thresholds ? Object.entries(m.thresholds).map(([k, t]) => `${t.ok ? 'ok' : 'FAILED'} ${k}`).join(', ') : '';
    lines.push(`  ${name.padEnd(44)} ${val}${th ? `   [${th}]` : ''}`);
  }
  return { [SUMMARY_FILE]: JSON.stringify(data, null, 2), stdout: lines.join('\n') + '\n' };
}
