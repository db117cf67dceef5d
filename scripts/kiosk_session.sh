#!/usr/bin/env bash
# One whole kiosk session against a mimml-device binary, driven the way the kiosk is used: the
# daemon serves its screen on loopback and hosts over TCP; the screen's taps are posted as the
# page would post them (start, agree, one answer per prompt, the PHQ-8), and then a host syncs
# the result and checks it is a kiosk session with its questionnaire.
#
#   [KIOSK_ASR=1] [KIOSK_LIVE=1] scripts/kiosk_session.sh DEVICE_BINARY HOST_BINARY [RUNNER...]
#
# RUNNER runs the device binary (e.g. `qemu-aarch64 -L /` for an aarch64
# build: qemu-user has no serial ioctls, hence TCP). With KIOSK_ASR=1 the device transcribes the
# answers itself (`--asr`, Whisper installed by scripts/install_whisper.sh) and the result must
# have text from that transcription. With KIOSK_LIVE=1 the device captures live instead of
# taking the sample's files whole: its microphone is an ALSA capture PCM (the `file` plugin
# playing the sample's recording in real time, so the build needs `--features alsa`) and its
# camera the sample's frames; the recording is analysed as it arrives and only the answer
# windows' samples are kept for transcription. Exits non-zero, saying why, on any failure.
set -euo pipefail
device=$(realpath "$1")
host=$(realpath "$2")
shift 2
runner=("$@")
asr=()
[ "${KIOSK_ASR:-0}" = 1 ] && asr=(--asr)
cd "$(dirname "$0")/.."

work=$(mktemp -d)
daemon_pid=""
cleanup() {
    [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
link_port=$(free_port)
screen_port=$(free_port)
export MIMML_HOST_KEY="$work/host.key"

"$host" keys host | tail -1 > "$work/paired.pub"
"${runner[@]}" "$device" pairings --data-dir "$work/data" add --key "$work/paired.pub" --name "kiosk test"

capture=(--simulate assets/sample/session-001)
if [ "${KIOSK_LIVE:-0}" = 1 ]; then
    # The sample's recording six times over as raw 16-bit PCM: longer than any interview here.
    python3 - "$work/mic.raw" <<'PY'
import sys, wave
with wave.open("assets/sample/session-001/audio.wav") as w:
    assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
    pcm = w.readframes(w.getnframes())
open(sys.argv[1], "wb").write(pcm * 6)
PY
    printf 'pcm.kioskmic {\n  type file\n  slave.pcm { type null }\n  file "/dev/null"\n  infile "%s"\n  format "raw"\n}\n' \
        "$work/mic.raw" > "$work/asound.conf"
    export ALSA_CONFIG_PATH="$work/asound.conf"
    capture=(--mic kioskmic --camera assets/sample/session-001/frames)
fi

"${runner[@]}" "$device" run --board sim --data-dir "$work/data" "${capture[@]}" \
    --model assets/model/mimml-synth \
    --listen "127.0.0.1:$link_port" --kiosk --screen-port "$screen_port" "${asr[@]}" >"$work/device.log" 2>&1 &
daemon_pid=$!

tap() { curl -fsS -X POST -H 'Content-Type: application/json' -d "$1" "http://127.0.0.1:$screen_port/tap"; }
state() { curl -fsS -N --max-time 2 "http://127.0.0.1:$screen_port/events" 2>/dev/null | sed -n 's/^data: //p' | head -1 || true; }

started=$(date +%s)
until curl -fsS -o /dev/null "http://127.0.0.1:$screen_port/"; do
    kill -0 "$daemon_pid" 2>/dev/null || { cat "$work/device.log"; echo "the device exited"; exit 1; }
    [ $(( $(date +%s) - started )) -lt 600 ] || { cat "$work/device.log"; echo "no kiosk screen after 600 s"; exit 1; }
    sleep 1
done
echo "device up after $(( $(date +%s) - started )) s"

tap '{"tap":"start"}'
tap '{"tap":"agree","research":false}'
prompts=0
started=$(date +%s)
while :; do
    view=$(state)
    case "$view" in
        *'"screen":"prompt"'*'"recording":true'*)
            sleep 2
            tap '{"tap":"done"}'
            prompts=$((prompts + 1))
            sleep 0.5 ;;
        *'"screen":"prompt"'* | *'"screen":"idle"'* | *'"screen":"consent"'*) sleep 0.3 ;;
        *'"screen":"questionnaire"'*) break ;;
        *) echo "unexpected screen during the interview: $view"; cat "$work/device.log"; exit 1 ;;
    esac
    [ "$prompts" -le 20 ] || { echo "the interview never ended"; exit 1; }
    [ $(( $(date +%s) - started )) -lt 900 ] || { cat "$work/device.log"; echo "the interview took over 900 s"; exit 1; }
done
echo "interview: $prompts answers"
for answer in 1 2 0 1 1 0 2 1; do
    tap "{\"tap\":\"answer\",\"value\":$answer}"
    sleep 0.3
done

# The result is computed on the device (slowly under emulation), then synced over TCP.
started=$(date +%s)
until "$host" sync --port "tcp:127.0.0.1:$link_port" --db "$work/results.db" >/dev/null 2>&1 \
    && "$host" results --db "$work/results.db" --json | grep -q '"seq"'; do
    [ $(( $(date +%s) - started )) -lt 900 ] || { cat "$work/device.log"; echo "no result after 900 s"; exit 1; }
    sleep 5
done
echo "result synced after $(( $(date +%s) - started )) s"
json=$("$host" results --db "$work/results.db" --json)
echo "$json"
grep -q '"kiosk session (answer windows)"' <<<"$json" || { echo "not flagged as a kiosk session"; exit 1; }
grep -q '"score": 8' <<<"$json" || { echo "the PHQ-8 score (8) is not stored"; exit 1; }
if [ ${#asr[@]} -gt 0 ]; then
    grep -q '"machine transcript (on-device speech recognition)"' <<<"$json" \
        || { cat "$work/device.log"; echo "no text from the device's own transcription"; exit 1; }
    tr -d ' \n' <<<"$json" | grep -q '"modalities":\["audio","video","text"\]' \
        || { echo "the result lacks a modality"; exit 1; }
    if [ "${KIOSK_LIVE:-0}" = 1 ]; then
        grep -q "answer windows' samples kept for transcription" "$work/device.log" \
            || { cat "$work/device.log"; echo "live capture kept no answer samples"; exit 1; }
    fi
fi
echo "kiosk session ok"
