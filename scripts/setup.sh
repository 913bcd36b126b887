#!/usr/bin/env bash
# scripts/setup.sh: install the Debian 12 packages webexec needs (only the missing
# ones) and configure + build a CMake preset.
#
#   bash scripts/setup.sh            # install missing packages
#   bash scripts/setup.sh dev        # ... then configure and build the `dev` preset
#   source scripts/setup.sh          # define webexec_install_deps / webexec_build_preset
#                                    # and webexec_install_benchmark_deps
set -euo pipefail

WEBEXEC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

WEBEXEC_DEBIAN_PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev
  nginx-light wrk
  nlohmann-json3-dev libboost-dev libcpp-httplib-dev
  python3 curl
  # Redis engine: the server its tests start (never the system service) and hiredis.
  redis-server libhiredis-dev
)

# Only for benchmarks/redis_benchmarks.sh (the Celery baseline runs on Debian's
# /usr/bin/python3); BullMQ comes from npm, see benchmarks/redis_baselines/package.json.
WEBEXEC_BENCHMARK_DEBIAN_PACKAGES=(
  redis-server python3-celery python3-redis
)

webexec_log() {
  printf '[webexec] %s\n' "$*" >&2
}

# Installs the Debian packages given as arguments that are not installed yet.
webexec_install_packages() {
  if ! command -v dpkg-query >/dev/null 2>&1; then
    webexec_log "dpkg-query not found: not a Debian system; install these by hand if missing:"
    webexec_log "  $*"
    return 0
  fi

  local missing=() pkg status
  for pkg in "$@"; do
    status="$(dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null || true)"
    if ! grep -q 'install ok installed' <<<"${status}"; then
      missing+=("${pkg}")
    fi
  done
  if ((${#missing[@]} == 0)); then
    webexec_log "all Debian packages are installed"
    return 0
  fi

  webexec_log "installing missing Debian packages: ${missing[*]}"
  local sudo=()
  if ((EUID != 0)); then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      webexec_log "error: not root and sudo is not available; as root, run:"
      webexec_log "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
      return 1
    fi
  fi
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
}

# Installs the packages of WEBEXEC_DEBIAN_PACKAGES that are not installed yet.
webexec_install_deps() {
  webexec_install_packages "${WEBEXEC_DEBIAN_PACKAGES[@]}"
}

# Installs what benchmarks/redis_benchmarks.sh needs from Debian, if missing.
webexec_install_benchmark_deps() {
  webexec_install_packages "${WEBEXEC_BENCHMARK_DEBIAN_PACKAGES[@]}"
}

# Configures and builds CMake preset $1 (see CMakePresets.json) from the repo root.
webexec_build_preset() {
  local preset="${1:?usage: webexec_build_preset <preset>}"
  webexec_log "configuring preset '${preset}'"
  (cd "${WEBEXEC_ROOT}" && cmake --preset "${preset}")
  webexec_log "building preset '${preset}'"
  (cd "${WEBEXEC_ROOT}" && cmake --build --preset "${preset}")
}

# Executed (not sourced): install, then optionally build the preset given as $1.
if [[ "${BASH_SOURCE[0]}" == "${0}" ]]; then
  webexec_install_deps
  if (($# > 0)); then
    webexec_build_preset "$1"
  fi
fi
