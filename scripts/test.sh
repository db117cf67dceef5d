#!/usr/bin/env bash
# Every test, as README's second command runs them: installs what the tests need (Debian
# packages, the models not committed, registry test data — each skipped when present), then one
# build of the whole workspace with every hardware feature on, its tests run twice over:
#
#   1. every test but the hardware-in-the-loop ones (`hil_*`), in parallel;
#   2. the `hil_*` tests one at a time, as on a rig where they share the port, camera,
#      microphone and GPIO (on stand-ins where the environment names no hardware: see README,
#      "Hardware-in-the-loop").
#
# Both runs use the same build: one feature set, so every dependency is compiled once.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_system_packages.sh
scripts/install_models.sh
scripts/install_test_data.sh
cargo test --workspace --all-features -- --skip hil_
cargo test --workspace --all-features -- hil_ --test-threads=1
