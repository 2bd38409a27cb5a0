"""The proxy's deadline for an agent's next control message (tunnel/server.py)."""

from __future__ import annotations

from collections import deque

import pytest

from wicket.tunnel.server import MIN_KEEPALIVE_TIMEOUT, keepalive_timeout


def test_unknown_pace_gets_the_full_heartbeat_timeout() -> None:
    assert keepalive_timeout(deque(), 60.0) == 60.0
    assert keepalive_timeout(deque([1.0]), 60.0) == 60.0


def test_one_second_keepalives_are_missed_after_four_seconds() -> None:
    assert keepalive_timeout(deque([1.0, 1.0, 1.02]), 60.0) == pytest.approx(4.08)
    assert keepalive_timeout(deque([0.1, 0.1]), 60.0) == MIN_KEEPALIVE_TIMEOUT


def test_slow_heartbeats_keep_the_ceiling() -> None:
    # an agent heartbeating every 15 s (an older one) is not dropped between heartbeats
    assert keepalive_timeout(deque([15.0, 15.0]), 60.0) == 60.0
    # one late gap among quick ones widens the deadline: a loaded agent is not dropped
    assert keepalive_timeout(deque([1.0, 1.0, 3.0, 1.0]), 60.0) == pytest.approx(12.0)
