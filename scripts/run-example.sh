#!/usr/bin/env bash
# scripts/run-example.sh: install missing packages, build the `dev` preset and run the
# futures tour example. Arguments are passed to the example.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh

webexec_install_deps
webexec_build_preset dev

example="build/dev/examples/futures_tour"
if [[ ! -x "${example}" ]]; then
  webexec_log "error: ${example} was not built (is examples/futures_tour.cpp there?)"
  exit 1
fi
exec "${example}" "$@"
