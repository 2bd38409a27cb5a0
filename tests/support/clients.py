"""Real client programs the tests drive, as a user would run them."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from localdocdb.process import LocalDocDBProcess

StartDocDB = Callable[..., LocalDocDBProcess]


@dataclass(frozen=True)
class Mongosh:
    """The pinned mongosh (installed by scripts/dev.sh), telemetry off, with a private HOME."""

    executable: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run mongosh non-interactively and capture its output."""
        return subprocess.run(
            [str(self.executable), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
