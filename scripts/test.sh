#!/usr/bin/env bash
# scripts/test.sh: install missing packages, build the `dev` preset and run its tests.
# Extra arguments go to ctest, e.g. `bash scripts/test.sh -L unit -j2`.
# Exits with ctest's status; a run that selects no tests fails (noTestsAction: error).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh

webexec_install_deps
webexec_build_preset dev

webexec_log "running: ctest --preset dev $*"
exec ctest --preset dev "$@"
