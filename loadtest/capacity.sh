#!/usr/bin/env bash
# Capacity sweep: for each provider pair and each call count, a fresh release server pinned to
# CPU 0 and switchboard-loadgen pinned to CPU 1 run N concurrent paced calls; the reports go to
# loadtest/results/capacity/, then capacity.py picks the largest passing N, writes the table and
# loadtest/capacity.png, and refreshes the "## Capacity" section of BENCHMARKS.md.
#
#   loadtest/capacity.sh                        # the full sweep (`make bench` runs this)
#   COUNTS_TONE="50 200" COUNTS_OFFLINE="10" HOLD=10s loadtest/capacity.sh    # a quick one
#
# Environment: COUNTS_TONE / COUNTS_OFFLINE (call counts per pair), RAMP, HOLD, SERVER_CPU,
# GEN_CPU, SERVER_BIN (default target/release/switchboard), MODES ("tone offline").
set -euo pipefail
cd "$(dirname "$0")/.."

COUNTS_TONE=${COUNTS_TONE:-"1 100 250 500 750 1000 1250 1500"}
COUNTS_OFFLINE=${COUNTS_OFFLINE:-"1 10 25 50 75 100"}
MODES=${MODES:-"tone offline"}
RAMP=${RAMP:-10s}
HOLD=${HOLD:-30s}
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
SERVER_BIN=${SERVER_BIN:-${CARGO_TARGET_DIR:-target}/release/switchboard}
out=loadtest/results/capacity
mkdir -p "$out"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

if [ "$SERVER_BIN" = "${CARGO_TARGET_DIR:-target}/release/switchboard" ]; then
  cargo build --quiet --release --bin switchboard
fi
cargo build --quiet --release -p switchboard-loadgen
gen=${CARGO_TARGET_DIR:-target}/release/switchboard-loadgen

server_pid=""
scratch=$(mktemp -d)
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
trap 'stop_server; rm -rf "$scratch"' EXIT

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD)"
  echo "server: $SERVER_BIN (taskset -c $SERVER_CPU), generator: $gen (taskset -c $GEN_CPU)"
  echo "ramp: $RAMP, hold: $HOLD"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
} >"$out/run.txt"

for mode in $MODES; do
  case $mode in
    tone) stt=null; tts=tone; counts=$COUNTS_TONE ;;
    offline) stt=pocketsphinx; tts=espeak; counts=$COUNTS_OFFLINE ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
  for n in $counts; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    rm -rf "$scratch/data"
    SWITCHBOARD_SPEECH__STT=$stt SWITCHBOARD_SPEECH__TTS=$tts SWITCHBOARD_FLOWS__DIR=loadtest/flows \
    SWITCHBOARD_CALLS__MAX_CONCURRENT=20000 SWITCHBOARD_SERVER__LOG_FILTER=warn \
      taskset -c "$SERVER_CPU" "$SERVER_BIN" serve --listen "127.0.0.1:$port" --data-dir "$scratch/data" \
      >"$scratch/server-$mode-$n.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1; done
    echo "== $mode: $n calls (server pid $server_pid, port $port)"
    cmd=(taskset -c "$GEN_CPU" "$gen" --url "ws://127.0.0.1:$port/twilio/stream/capacity" --calls "$n"
         --ramp "$RAMP" --hold "$HOLD" --server-pid "$server_pid"
         --metrics-url "http://127.0.0.1:$port/metrics" --out "$out/$mode-$n.json")
    echo "${cmd[*]}" >"$out/$mode-$n.cmd"
    "${cmd[@]}" >/dev/null || echo "   generator failed for $mode $n" >&2
    python3 - "$out/$mode-$n.json" <<'EOF' || true
import json, sys
r = json.load(open(sys.argv[1])); s = r["summary"]; v = r.get("server") or {}
print(f"   failed {s['failed_calls']}/{s['calls']}  eos p50/p99 {s['eos_to_first_audio_ms']['p50']:.1f}/{s['eos_to_first_audio_ms']['p99']:.1f} ms"
      f"  clear p50/p99 {s['barge_in_to_clear_ms']['p50']:.1f}/{s['barge_in_to_clear_ms']['p99']:.1f} ms"
      f"  late p99 {s['outbound_frame_lateness_ms']['p99']:.1f} ms  cpu {v.get('cpu_percent', 0):.1f}%  rss {v.get('rss_mib_after', 0):.0f} MiB"
      f"  gen cpu {r['generator_cpu_percent']:.0f}% gen late {s['generator_late_sends']}")
EOF
    stop_server
  done
done

python3 loadtest/capacity.py "$out"
