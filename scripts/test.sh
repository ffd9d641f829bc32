#!/usr/bin/env bash
# The one test command: installs prerequisites, then builds and runs every test.
# Tests run as root: they really create namespaces, mounts, cgroups and processes.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/prereqs.sh
cargo build --workspace --all-targets
cargo test --workspace -- "$@"
