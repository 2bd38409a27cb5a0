"""File descriptor limits: raise the soft limit at start, and say so when they run out.

Every connection the proxy holds (client, TLS, upstream, tunnel) is a descriptor. The
usual soft limit (1,024) is far below what a proxy needs and far below the usual hard
limit, so the daemon raises it at start. When descriptors do run out, the symptom is
wherever the next descriptor was needed (an accept, an upstream connection, an agent's
tunnel connection that never arrived); `DescriptorAlarm` remembers recent exhaustion so
those places can tell the user the cause instead of a misleading timeout.
"""

from __future__ import annotations

import errno
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

EXHAUSTION_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE})
RECENT_SECONDS = 30.0
"""How long after the last exhaustion a failure is blamed on it."""


@dataclass(frozen=True)
class LimitChange:
    """The descriptor soft limit before and after `raise_descriptor_limit`, and the hard one."""

    before: int
    after: int
    hard: int


def _finite(value: int) -> int | None:
    return None if value == resource.RLIM_INFINITY else value


def raise_descriptor_limit(ceiling: int = 1 << 20) -> LimitChange:
    """Raise RLIMIT_NOFILE's soft limit to its hard limit (capped at `ceiling` if unlimited)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _finite(hard) or ceiling
    if _finite(soft) is not None and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            target = soft
    else:
        target = soft
    return LimitChange(before=soft, after=target, hard=hard)


def descriptor_limit() -> int:
    """The current soft limit on open descriptors."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def is_exhaustion(error: BaseException | None) -> bool:
    """Whether an error is "too many open files" (per process or system-wide)."""
    return isinstance(error, OSError) and error.errno in EXHAUSTION_ERRNOS


def exhaustion_message(doing: str, limit: int | None = None) -> str:
    """What to tell a user (and the log) when descriptors ran out while `doing` something."""
    shown = descriptor_limit() if limit is None else limit
    return (
        f"the proxy has run out of file descriptors (limit {shown}) while {doing}; "
        "raise its limit (LimitNOFILE= in the systemd unit, or `ulimit -n` before "
        "`wicket start`) or find what holds connections open (see the troubleshooting guide)"
    )


class DescriptorAlarm:
    """Remembers when descriptors last ran out, so later failures can name the cause."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, recent: float = RECENT_SECONDS
    ) -> None:
        self._clock = clock
        self._recent = recent
        self._last: float | None = None

    def record(self) -> None:
        """Descriptors ran out just now."""
        self._last = self._clock()

    def check(self, error: BaseException | None) -> bool:
        """Record `error` if it is exhaustion; return whether it was."""
        if is_exhaustion(error):
            self.record()
            return True
        return False

    def recently_exhausted(self) -> bool:
        """Whether descriptors ran out within the last `recent` seconds."""
        return self._last is not None and self._clock() - self._last <= self._recent
