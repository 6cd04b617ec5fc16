#!/usr/bin/env bash
# Runs one k6 script from loadtest/ against a switchboard server.
#
#   loadtest/run.sh twilio_calls            # starts a release server, runs the script
#   loadtest/run.sh --smoke twilio_calls    # debug server, 3 short calls: what `make test` runs
#   TARGET_URL=http://127.0.0.1:8080 API_KEY=... loadtest/run.sh api   # an already running server
#
# Without TARGET_URL the server is started here on a free loopback port, in a scratch data
# directory, with the zero-cost speech pair (STT=null, TTS=tone; override with STT=... TTS=...)
# and the load-test flow (loadtest/flows), and stopped afterwards. Extra k6 flags go in K6_ARGS
# (e.g. K6_ARGS="-e SCENARIO=ramp -e CALLS=300"). Exits with k6's status (99: thresholds failed).
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; shift; fi
script=${1:?usage: loadtest/run.sh [--smoke] twilio_calls|api|events}
[ -f "loadtest/$script.js" ] || { echo "no such script: loadtest/$script.js" >&2; exit 2; }
command -v k6 >/dev/null || { echo "k6 is missing: tests/tools/deps.sh test installs k6 1.1.0" >&2; exit 2; }

mkdir -p loadtest/results
server_pid=""
scratch=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    # The server drains calls on SIGTERM; give it a moment, then insist.
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null || true
  fi
  if [ -n "$scratch" ]; then rm -rf "$scratch"; fi
}
trap cleanup EXIT

if [ -z "${TARGET_URL:-}" ]; then
  if [ "$smoke" = 1 ]; then profile=debug; build=(); else profile=release; build=(--release); fi
  cargo build --quiet "${build[@]}" --bin switchboard
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  scratch=$(mktemp -d)
  SWITCHBOARD_SPEECH__STT=${STT:-null} SWITCHBOARD_SPEECH__TTS=${TTS:-tone} \
  SWITCHBOARD_FLOWS__DIR=loadtest/flows SWITCHBOARD_CALLS__MAX_CONCURRENT=${MAX_CALLS:-5000} \
  SWITCHBOARD_SERVER__LOG_FILTER=${LOG_FILTER:-warn} \
    "${CARGO_TARGET_DIR:-target}/$profile/switchboard" serve --listen "127.0.0.1:$port" --data-dir "$scratch/data" \
    >"$scratch/server.log" 2>&1 &
  server_pid=$!
  export TARGET_URL="http://127.0.0.1:$port"
  for _ in $(seq 300); do
    curl -sf "$TARGET_URL/health" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || { echo "server exited:" >&2; tail -20 "$scratch/server.log" >&2; exit 1; }
    sleep 0.1
  done
  curl -sf "$TARGET_URL/health" >/dev/null || { echo "server did not come up" >&2; tail -20 "$scratch/server.log" >&2; exit 1; }
  if [ -z "${API_KEY:-}" ] && [ -f "$scratch/data/demo_api_key" ]; then
    API_KEY=$(tr -d '[:space:]' <"$scratch/data/demo_api_key")
    export API_KEY
  fi
  echo "server pid $server_pid on $TARGET_URL ($profile, stt=${STT:-null}, tts=${TTS:-tone})"
fi

args=(-e "SUMMARY_FILE=loadtest/results/$script-summary.json")
[ "$smoke" = 1 ] && args+=(-e SCENARIO=smoke)
status=0
# shellcheck disable=SC2086 # K6_ARGS is a list of flags on purpose
k6 run --quiet "${args[@]}" ${K6_ARGS:-} "loadtest/$script.js" || status=$?
if [ -n "$scratch" ] && [ "$status" -ne 0 ]; then
  echo "--- server log (last 20 lines) ---" >&2
  tail -20 "$scratch/server.log" >&2
fi
echo "summary: loadtest/results/$script-summary.json"
exit "$status"
