#!/usr/bin/env python3
"""Reference values for the audio front-end (reference only; never a product dependency).

    audio_reference.py make-fixtures DIR   espeak-ng speech in several voices, clean and with noise,
                                           16 kHz 16-bit mono WAVs (needs espeak-ng and sox)
    audio_reference.py reference DIR       librosa MFCCs and parselmouth (Praat) F0 of every WAV in
                                           DIR, written to DIR/reference.json
    audio_reference.py real-reference OUT FILE...
                                           librosa's whole pipeline (librosa.load(sr=16000), which
                                           resamples with soxr HQ, then MFCC) and parselmouth F0 of
                                           real recordings in any format libsndfile reads, to OUT
    audio_reference.py make-real-fixtures OUT ALSA_SOUNDS POCKETSPHINX
                                           the committed real-speech fixtures of tests/data/speech
    audio_reference.py time WAV REPEATS    seconds librosa takes for comparable features of WAV
                                           (MFCC, RMS, ZCR, spectral flux, YIN F0 at the device's
                                           framing), best of REPEATS; prints JSON

Run inside the venv that bench/venv.sh makes (librosa, praat-parselmouth, numpy).
"""
import json
import os
import subprocess
import sys
import tempfile
import time

# (name, espeak-ng voice, pitch 0-99, text)
VOICES = [
    ("us_male", "en-us", 40, "I have not been sleeping well lately, and most days I feel tired."),
    ("us_female", "en-us+f3", 60, "Sometimes I enjoy going for a walk by the river with my friends."),
    ("gb_low", "en-gb+m3", 25, "It is hard to say how long it has been since I felt like myself."),
    ("gb_high", "en-gb+f4", 75, "My work keeps me busy, but I try to find time for music."),
]
NOISE_SNR_DB = 15.0


def make_fixtures(out):
    import numpy as np
    import soundfile as sf

    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261125)
    with tempfile.TemporaryDirectory() as tmp:
        for name, voice, pitch, text in VOICES:
            raw = os.path.join(tmp, name + ".wav")
            subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", "150", "-w", raw, text], check=True)
            clean = os.path.join(out, name + "_clean.wav")
            subprocess.run(["sox", raw, "-r", "16000", "-c", "1", "-b", "16", clean, "rate", "-v"], check=True)
            x, sr = sf.read(clean, dtype="float32")
            speech_power = np.mean(x[np.abs(x) > 0.01] ** 2)
            noise = rng.normal(0.0, np.sqrt(speech_power / 10 ** (NOISE_SNR_DB / 10)), size=x.shape)
            noisy = np.clip(x + noise, -1.0, 32767 / 32768)
            sf.write(os.path.join(out, name + "_noisy.wav"), noisy.astype(np.float32), sr, subtype="PCM_16")


def reference(folder):
    import librosa
    import numpy as np
    import parselmouth

    out = {"librosa": librosa.__version__, "parselmouth": parselmouth.__version__, "files": {}}
    for f in sorted(os.listdir(folder)):
        if not f.endswith(".wav"):
            continue
        path = os.path.join(folder, f)
        y, sr = librosa.load(path, sr=None)
        mfcc = librosa.feature.mfcc(y=y, sr=sr)  # every other argument at librosa's default
        pitch = parselmouth.Sound(path).to_pitch()  # Praat defaults: ac, 75-600 Hz, step 0.75/75
        out["files"][f] = {
            "sr": int(sr),
            "mfcc": np.asarray(mfcc, dtype=np.float64).round(5).tolist(),
            "pitch_times": [round(float(t), 6) for t in pitch.xs()],
            "pitch_hz": [round(float(v), 4) for v in pitch.selected_array["frequency"]],
        }
    with open(os.path.join(folder, "reference.json"), "w") as fh:
        json.dump(out, fh, separators=(",", ":"))


def real_reference(out_path, files):
    import librosa
    import numpy as np
    import parselmouth
    import soundfile as sf

    out = {"librosa": librosa.__version__, "parselmouth": parselmouth.__version__, "files": {}}
    base = os.path.dirname(os.path.abspath(out_path))
    for path in files:
        y, sr = librosa.load(path, sr=16000)  # soxr_hq, channels averaged
        mfcc = librosa.feature.mfcc(y=y, sr=sr)
        native, native_sr = sf.read(path, dtype="float64", always_2d=True)
        pitch = parselmouth.Sound(native.mean(axis=1), sampling_frequency=native_sr).to_pitch()
        out["files"][os.path.relpath(os.path.abspath(path), base)] = {
            "native_sr": int(native_sr),
            "samples_16k": int(len(y)),
            "mfcc": np.asarray(mfcc, dtype=np.float64).round(3).tolist(),
            "pitch_times": [round(float(t), 6) for t in pitch.xs()],
            "pitch_hz": [round(float(v), 3) for v in pitch.selected_array["frequency"]],
        }
    with open(out_path, "w") as fh:
        json.dump(out, fh, separators=(",", ":"))


def make_real_fixtures(out, alsa, pocketsphinx):
    """alsa-utils' 48 kHz voice prompts at 44.1 and 22.05 kHz (soxr VHQ), and real speech in the
    formats field recorders and telephones write, encoded by libsndfile."""
    import shutil

    import soundfile as sf
    import soxr

    for name in ["Front_Center", "Rear_Right"]:
        x, sr = sf.read(f"{alsa}/{name}.wav", dtype="float64")
        for r in (44100, 22050):
            sf.write(f"{out}/{name}_{r}.wav", soxr.resample(x, sr, r, quality="VHQ"), r, subtype="PCM_16")
    shutil.copy(f"{alsa}/Front_Center.wav", f"{out}/Front_Center_48000.wav")
    x, sr = sf.read(f"{pocketsphinx}/leak-test.wav", dtype="float64")
    sf.write(f"{out}/leak-test_ulaw.wav", x, sr, subtype="ULAW")
    x, sr = sf.read(f"{out}/Front_Center_44100.wav", dtype="float64")
    sf.write(f"{out}/Front_Center_44100.flac", x, sr, subtype="PCM_16")
    sf.write(f"{out}/Front_Center_44100.mp3", x, sr, format="MP3", subtype="MPEG_LAYER_III")
    x, sr = sf.read(f"{out}/Rear_Right_44100.wav", dtype="float64")
    sf.write(f"{out}/Rear_Right_44100.ogg", x, sr, format="OGG", subtype="VORBIS")


def timing(wav, repeats):
    import librosa
    import numpy as np

    y, sr = librosa.load(wav, sr=None)

    def run():
        s = np.abs(librosa.stft(y, n_fft=512, hop_length=160, win_length=400, center=False)) ** 2
        mel = librosa.feature.melspectrogram(S=s, sr=sr, n_mels=40)
        librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None), n_mfcc=13)
        librosa.feature.rms(y=y, frame_length=400, hop_length=160, center=False)
        librosa.feature.zero_crossing_rate(y, frame_length=400, hop_length=160, center=False)
        librosa.onset.onset_strength(S=librosa.power_to_db(mel), sr=sr)
        librosa.yin(y, fmin=75, fmax=600, sr=sr, frame_length=640, hop_length=160, center=False)

    run()  # warm-up (numba/JIT caches, FFT plans)
    best = min(_timed(run) for _ in range(repeats))
    print(json.dumps({"seconds": best, "audio_seconds": len(y) / sr, "librosa": librosa.__version__}))


def _timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "make-fixtures":
        make_fixtures(sys.argv[2])
    elif cmd == "reference":
        reference(sys.argv[2])
    elif cmd == "real-reference":
        real_reference(sys.argv[2], sys.argv[3:])
    elif cmd == "make-real-fixtures":
        make_real_fixtures(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "time":
        timing(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(__doc__)
