#!/usr/bin/env python3
"""Builds the bundled sample session in assets/sample/session-001/.

- Speech: every utterance synthesized with espeak-ng (interviewer and participant in different
  voices), resampled to 16 kHz mono 16-bit PCM with sox, joined with pauses into audio.wav.
- transcript.tsv: DAIC-WOZ format (TAB-separated start_time, stop_time, speaker, value; speaker
  "Ellie" or "Participant"; seconds) with the real timings of the synthesized audio.
- frames/NNNNNN.jpg: a real face photo (scikit-image's `astronaut`, public domain, NASA) cropped
  around the face with slow head-motion-like drift and small nods, 3 frames per second, and
  video.toml saying so.

Needs: espeak-ng and sox (Debian), and a venv with scikit-image, numpy and pillow:
    python3 -m venv /tmp/v && /tmp/v/bin/pip install scikit-image pillow numpy
    /tmp/v/bin/python scripts/make_sample_session.py
Deterministic apart from espeak-ng's own version.
"""
import math
import pathlib
import subprocess
import tempfile
import wave

import numpy as np
from PIL import Image
from skimage import data

OUT = pathlib.Path(__file__).resolve().parent.parent / "assets" / "sample" / "session-001"
RATE = 16000
FPS = 3

DIALOGUE = [
    ("Ellie", "en-us+f3", "Hi, I'm Ellie. Thanks for coming in today. How are you doing?"),
    ("Participant", "en-us+m3", "I'm okay I guess. A bit tired."),
    ("Ellie", "en-us+f3", "Where are you from originally?"),
    ("Participant", "en-us+m3", "I grew up near the coast, but I moved here for work a few years ago."),
    ("Ellie", "en-us+f3", "How have you been sleeping lately?"),
    ("Participant", "en-us+m3", "Not great. I wake up early and I can't get back to sleep, and I feel worn out most days."),
    ("Ellie", "en-us+f3", "What do you enjoy doing to relax?"),
    ("Participant", "en-us+m3", "I used to play guitar with friends. I don't really do that anymore. I mostly stay home."),
    ("Ellie", "en-us+f3", "When was the last time you felt really happy?"),
    ("Participant", "en-us+m3", "Hmm. Maybe last summer, when my sister visited. That was nice."),
    ("Ellie", "en-us+f3", "Okay, I think I have asked everything I need to. Thanks for sharing your thoughts with me."),
    ("Participant", "en-us+m3", "Sure. Thank you."),
]


def synth(text: str, voice: str, speed: int) -> np.ndarray:
    with tempfile.TemporaryDirectory() as d:
        raw = pathlib.Path(d) / "raw.wav"
        out = pathlib.Path(d) / "out.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
        subprocess.run(["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(out)], check=True)
        with wave.open(str(out)) as w:
            return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    pieces, rows, t = [], [], 0.5
    pieces.append(np.zeros(int(0.5 * RATE), np.int16))
    for i, (speaker, voice, text) in enumerate(DIALOGUE):
        pcm = synth(text, voice, 165 if speaker == "Ellie" else 135)
        start, stop = t, t + len(pcm) / RATE
        rows.append(f"{start:.3f}\t{stop:.3f}\t{speaker}\t{text}")
        pause = 0.6 if speaker == "Ellie" else 0.9 + 0.15 * (i % 3)
        pieces += [pcm, np.zeros(int(pause * RATE), np.int16)]
        t = stop + pause
    audio = np.concatenate(pieces)
    with wave.open(str(OUT / "audio.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(audio.tobytes())
    (OUT / "transcript.tsv").write_text("start_time\tstop_time\tspeaker\tvalue\n" + "\n".join(rows) + "\n")

    img = Image.fromarray(data.astronaut())  # 512x512 RGB, face around (250, 130)
    frames = OUT / "frames"
    frames.mkdir(exist_ok=True)
    for old in frames.glob("*.jpg"):
        old.unlink()
    n = int(len(audio) / RATE * FPS)
    for k in range(n):
        s = k / FPS
        dx = 18 * math.sin(2 * math.pi * s / 11.0) + 4 * math.sin(2 * math.pi * s / 2.3)
        dy = 10 * math.sin(2 * math.pi * s / 7.0) + (6 if int(s) % 9 == 0 else 0)  # occasional nod
        zoom = 1.0 + 0.05 * math.sin(2 * math.pi * s / 17.0)
        w, h = 320 / zoom, 240 / zoom
        cx, cy = 250 + dx, 150 + dy
        box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        img.crop(tuple(int(round(v)) for v in box)).resize((320, 240), Image.BILINEAR).save(
            frames / f"{k:06d}.jpg", quality=75
        )
    (OUT / "video.toml").write_text(f"# Frames of frames/*.jpg, in name order.\nfps = {FPS}\n")
    print(f"{len(audio) / RATE:.1f} s of audio, {len(rows)} utterances, {n} frames -> {OUT}")


if __name__ == "__main__":
    main()
