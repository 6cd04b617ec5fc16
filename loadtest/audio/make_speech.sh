#!/usr/bin/env bash
# Regenerates the caller's speech used by the load tests: espeak-ng speech resampled to
# 8 kHz and encoded as headerless μ-law, the way Twilio carries it.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp --suffix .wav)
trap 'rm -f "$tmp"' EXIT
espeak-ng -v en-us -s 165 -w "$tmp" "I need some help with my bill please"
# Pad to whole 20 ms frames (160 bytes) so every frame of the file is a full frame.
# Leading and trailing silence is trimmed: the file is speech only, so "end of speech" is its end.
sox "$tmp" -r 8000 -c 1 -e mu-law -t raw caller.ulaw silence 1 0.02 1% reverse silence 1 0.02 1% reverse
size=$(stat -c %s caller.ulaw)
pad=$(( (160 - size % 160) % 160 ))
head -c "$pad" /dev/zero | tr '\0' '\377' >> caller.ulaw
echo "caller.ulaw: $(stat -c %s caller.ulaw) bytes ($(( $(stat -c %s caller.ulaw) / 8 )) ms)"
