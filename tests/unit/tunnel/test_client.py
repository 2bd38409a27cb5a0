"""The agent's reconnect policy and what it says about its tunnel (tunnel/client.py)."""

from __future__ import annotations

import logging
import random

import pytest

from wicket.tunnel.client import BACKOFF_MAXIMUM, Backoff, FailureLog


def test_default_backoff_is_capped_at_two_seconds() -> None:
    highest = Backoff(random_fraction=lambda: 0.0)  # no jitter taken off: the base delay
    delays = [highest.next_delay() for _ in range(40)]
    assert delays[:4] == pytest.approx([0.25, 0.5, 1.0, 2.0])
    assert max(delays) == BACKOFF_MAXIMUM == 2.0
    assert sum(delays[:6]) < 8.0  # six failed tries in a row still retry within seconds


def test_jitter_stays_within_its_bounds() -> None:
    rng = random.Random(7)
    backoff = Backoff(random_fraction=rng.random)
    for attempt in range(200):
        base = min(2.0, 0.25 * 2**attempt)
        delay = backoff.next_delay()
        assert base * 0.5 <= delay <= base
    spread = {round(Backoff(random_fraction=rng.random).next_delay(), 4) for _ in range(50)}
    assert len(spread) > 10  # agents that lost the same proxy do not retry in lock step


def test_copy_keeps_settings_and_starts_over() -> None:
    backoff = Backoff(0.1, 1.0, 0.0)
    backoff.next_delay()
    backoff.next_delay()
    fresh = backoff.copy()
    assert fresh.next_delay() == pytest.approx(0.1)
    assert (fresh.initial, fresh.maximum, fresh.jitter) == (0.1, 1.0, 0.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_failure_log_says_what_happened(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    failures = FailureLog(logging.getLogger("test.tunnel"), "proxy.example.com:3080", clock)
    with caplog.at_level(logging.DEBUG, logger="test.tunnel"):
        failures.connected()
        failures.failed("RemoteProtocolError: tunnel connection closed", lost=True)
        refused = "ConnectionRefusedError: [Errno 111] Connection refused"
        for _ in range(5):
            clock.now += 1.0
            failures.failed(refused, lost=False)
        clock.now += 61.0
        failures.failed(refused, lost=False)
        clock.now += 0.5
        failures.connected()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert warnings[0] == (
        "tunnel to proxy.example.com:3080 lost "
        "(RemoteProtocolError: tunnel connection closed); reconnecting"
    )
    assert warnings[1].startswith(f"cannot reach the proxy at proxy.example.com:3080: {refused}")
    assert len(warnings) == 3  # the same refusal: once, then again a minute later
    assert "7 attempts in 66 s" in warnings[2]
    assert infos == [
        "tunnel to proxy.example.com:3080 connected",
        "tunnel to proxy.example.com:3080 connected (again, after 66.5 s)",
    ]
    for message in warnings + infos:
        assert "log in" not in message
