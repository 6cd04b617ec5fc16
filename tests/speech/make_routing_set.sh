#!/bin/sh
# Generates the offline-speech routing set: short call-routing answers spoken by espeak-ng in
# several voices and speeds, as the recogniser would receive them.
#
#   tests/speech/make_routing_set.sh OUT_DIR
#
# For each clip NAME it writes
#   NAME.16k.raw  16 kHz mono s16le (what a WebRTC call delivers after decoding)
#   NAME.8k.ul    8 kHz G.711 μ-law (what a phone call delivers)
# and OUT_DIR/manifest.tsv with one line per clip: NAME <TAB> voice <TAB> wpm <TAB> phrase.
# Needs espeak-ng and sox. Output is deterministic for a given espeak-ng/sox version.
set -eu

out=${1:?usage: make_routing_set.sh OUT_DIR}
mkdir -p "$out"
manifest="$out/manifest.tsv"
: > "$manifest"

# The phrases are also the grammar the test gives the recogniser (one intent per line group).
phrases='billing
billing please
talk to billing
sales
talk to sales
connect me to sales please
support
i need support
technical support
an agent please
let me talk to an agent
a human'

# voice:wpm pairs: US and British English, a female variant, slow, normal and fast.
variants='en-us:175 en-gb:150 en-us+f3:200'

i=0
echo "$phrases" | while IFS= read -r phrase; do
    for v in $variants; do
        voice=${v%%:*}
        wpm=${v##*:}
        i=$((i + 1))
        name=$(printf 'clip%02d' "$i")
        espeak-ng -v "$voice" -s "$wpm" -w "$out/$name.wav" "$phrase"
        sox "$out/$name.wav" -r 16000 -c 1 -b 16 -e signed-integer -t raw "$out/$name.16k.raw"
        sox "$out/$name.wav" -r 8000 -c 1 -e mu-law -t raw "$out/$name.8k.ul"
        rm "$out/$name.wav"
        printf '%s\t%s\t%s\t%s\n' "$name" "$voice" "$wpm" "$phrase" >> "$manifest"
    done
done
echo "$(wc -l < "$manifest") clips in $out"
