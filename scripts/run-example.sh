#!/usr/bin/env bash
# scripts/run-example.sh: install missing packages, build the `dev` preset and start the
# example web service (examples/service.cpp) on 127.0.0.1:8080. Arguments go to the
# service, e.g. `--port 9000` (or set WEBEXEC_PORT).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh

webexec_install_deps
webexec_build_preset dev

example="build/dev/examples/service"
if [[ ! -x "${example}" ]]; then
  webexec_log "error: ${example} was not built"
  exit 1
fi
exec "${example}" "$@"
