"""The cluster install script (`curl https://PROXY/scripts/install.sh | sudo bash`).

The proxy serves the wheel of the very version it runs, found in (in order)
`$WICKET_WHEEL_DIR`, `<data_dir>/wheels/` and, when running from a source
checkout, its `dist/` folder (`scripts/dev.sh setup` builds it there). The script
checks the wheel's SHA-256, installs it into its own virtual environment under
the prefix, and links `wicket`, `wctl` and `wsh` onto the PATH. Downloads are
verified against the cluster's host CA, which the script carries.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import wicket
from wicket import __version__

WHEEL_NAME = f"wicket-{__version__}-py3-none-any.whl"
SAFE_WHEEL = re.compile(r"^wicket-[0-9A-Za-z.+_-]+-py3-none-any\.whl$")

SCRIPT = r"""#!/usr/bin/env bash
# Wicket {version} installer, served by the proxy at {proxy}.
# Usage: curl https://{proxy}/scripts/install.sh | sudo bash
# Environment: WICKET_PREFIX (default /opt/wicket), WICKET_BIN_DIR (default /usr/local/bin).
set -euo pipefail
PROXY="{proxy}"
VERSION="{version}"
WHEEL="{wheel}"
SHA256="{sha256}"
PREFIX="${{WICKET_PREFIX:-/opt/wicket}}"
BIN_DIR="${{WICKET_BIN_DIR:-/usr/local/bin}}"

fail() {{ echo "wicket install: $*" >&2; exit 1; }}
[ "$(uname -s)" = Linux ] || fail "this installer is for Linux hosts"
command -v curl >/dev/null || fail "curl is required"
PYTHON="${{WICKET_PYTHON:-python3}}"
command -v "$PYTHON" >/dev/null || fail "python3 (3.11 or newer) is required"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || fail "python3 is older than 3.11"
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null \
    || fail "python3 venv support is missing (Debian/Ubuntu: apt-get install python3-venv)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/cluster-ca.pem" <<'CA'
{ca_pem}CA
echo "Downloading Wicket $VERSION from $PROXY ..."
curl -fsS --proto '=https' --cacert "$work/cluster-ca.pem" -o "$work/$WHEEL" \
    "https://$PROXY/webapi/wheels/$WHEEL" || fail "download from $PROXY failed"
echo "$SHA256  $work/$WHEEL" | sha256sum -c --quiet - || fail "checksum mismatch for $WHEEL"

venv="$PREFIX/wicket-$VERSION"
mkdir -p "$PREFIX" "$BIN_DIR"
"$PYTHON" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$work/$WHEEL"
ln -sfn "$venv" "$PREFIX/current"
for tool in wicket wctl wsh; do
    ln -sf "$PREFIX/current/bin/$tool" "$BIN_DIR/$tool"
done
echo "Wicket $VERSION installed in $venv; wicket, wctl and wsh are in $BIN_DIR."
"""


@dataclass(frozen=True)
class Wheel:
    """The wheel the proxy hands out."""

    path: Path
    sha256: str


def wheel_directories(data_dir: Path | None) -> list[Path]:
    """Where to look for this version's wheel, in order."""
    places: list[Path] = []
    if os.environ.get("WICKET_WHEEL_DIR"):
        places.append(Path(os.environ["WICKET_WHEEL_DIR"]))
    if data_dir is not None:
        places.append(data_dir / "wheels")
    checkout = Path(wicket.__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").exists():
        places.append(checkout / "dist")
    return places


def find_wheel(data_dir: Path | None) -> Wheel | None:
    """This version's wheel, hashed, or None."""
    for directory in wheel_directories(data_dir):
        candidate = directory / WHEEL_NAME
        if candidate.is_file():
            digest = hashlib.sha256(candidate.read_bytes()).hexdigest()
            return Wheel(candidate, digest)
    return None


def render_script(*, proxy: str, wheel: Wheel, ca_pem: str) -> str:
    """The install script for this proxy and version."""
    if not ca_pem.endswith("\n"):
        ca_pem += "\n"
    return SCRIPT.format(
        proxy=proxy, version=__version__, wheel=wheel.path.name, sha256=wheel.sha256, ca_pem=ca_pem
    )
