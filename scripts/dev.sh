#!/usr/bin/env bash
# Wicket's developer entry point: one command sets everything up and runs a job.
#   scripts/dev.sh setup   install Debian packages, Python deps (pinned), mongosh (pinned)
#   scripts/dev.sh test    setup, then ruff, mypy --strict and the test suite
#   scripts/dev.sh demo    setup, then the local playground (the main job)
#   scripts/dev.sh bench   setup, then the benchmarks (not part of the tests; see bench/README.md)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
UV_VERSION=0.13.8
APT_PACKAGES=(tmux jq curl ca-certificates chromium haproxy)

log() { printf '==> %s\n' "$*" >&2; }

need_apt() {
    local missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        log "installing Debian packages: ${missing[*]}"
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

need_uv() {
    if ! command -v uv >/dev/null 2>&1 || [ "$(uv --version | awk '{print $2}')" != "$UV_VERSION" ]; then
        log "installing uv $UV_VERSION"
        python3 -m pip install --quiet "uv==$UV_VERSION"
    fi
}

need_python() {
    if [ ! -x .venv/bin/python ]; then
        log "creating .venv"
        uv venv --quiet --python python3 .venv
    fi
    log "syncing Python dependencies from requirements/dev.lock"
    uv pip sync --quiet --python .venv/bin/python --require-hashes requirements/dev.lock
    uv pip install --quiet --python .venv/bin/python --no-deps -e .
}

need_mongosh() {
    local stamp=tools/mongosh/node_modules/.wicket-installed-lock
    if [ ! -x tools/mongosh/node_modules/.bin/mongosh ] || ! cmp -s tools/mongosh/package-lock.json "$stamp"; then
        log "installing mongosh (pinned) from the npm registry"
        (cd tools/mongosh && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
        cp tools/mongosh/package-lock.json "$stamp"
    fi
}

need_wheel() {
    # The proxy serves this wheel to `curl https://PROXY/scripts/install.sh | sudo bash`.
    local version
    version=$(.venv/bin/python -c 'import wicket; print(wicket.__version__)')
    if [ ! -f "dist/wicket-$version-py3-none-any.whl" ]; then
        log "building dist/wicket-$version-py3-none-any.whl"
        uv build --quiet --wheel --out-dir dist .
    fi
}

setup() {
    need_apt
    need_uv
    need_python
    need_mongosh
    need_wheel
    export PATH="$ROOT/.venv/bin:$ROOT/tools/mongosh/node_modules/.bin:$PATH"
}

cmd=${1:-}
shift || true
case "$cmd" in
    setup)
        setup
        ;;
    test)
        setup
        log "ruff"
        ruff check src tests bench
        ruff format --check src tests bench
        log "mypy --strict"
        mypy
        log "pytest"
        set +e
        pytest "$@"
        rc=$?
        set -e
        # pytest exits 5 when nothing was collected: that is a failure here, not a pass.
        exit "$rc"
        ;;
    demo)
        setup
        exec wicket demo "$@"
        ;;
    bench)
        setup
        exec python -m bench "$@"
        ;;
    *)
        echo "usage: scripts/dev.sh setup|test|demo|bench [args...]" >&2
        exit 2
        ;;
esac
