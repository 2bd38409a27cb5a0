"""File descriptor limits and the exhaustion message (wicket.descriptors)."""

from __future__ import annotations

import errno
import resource

from wicket.descriptors import (
    DescriptorAlarm,
    descriptor_limit,
    exhaustion_message,
    is_exhaustion,
    raise_descriptor_limit,
)


def test_raise_reaches_the_hard_limit() -> None:
    change = raise_descriptor_limit()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert change.after == soft == descriptor_limit()
    assert change.hard == hard
    assert change.after >= change.before
    if hard != resource.RLIM_INFINITY:
        assert soft == hard


def test_exhaustion_is_emfile_or_enfile() -> None:
    assert is_exhaustion(OSError(errno.EMFILE, "Too many open files"))
    assert is_exhaustion(OSError(errno.ENFILE, "Too many open files in system"))
    assert not is_exhaustion(OSError(errno.ECONNREFUSED, "refused"))
    assert not is_exhaustion(TimeoutError())
    assert not is_exhaustion(None)


def test_message_names_the_cause_the_limit_and_the_fix() -> None:
    message = exhaustion_message("accepting connections", limit=1024)
    assert message.startswith(
        "the proxy has run out of file descriptors (limit 1024) while accepting connections"
    )
    assert "LimitNOFILE" in message


def test_alarm_remembers_recent_exhaustion_only() -> None:
    now = [100.0]
    alarm = DescriptorAlarm(clock=lambda: now[0], recent=30.0)
    assert not alarm.recently_exhausted()
    assert not alarm.check(OSError(errno.ECONNRESET, "reset"))
    assert not alarm.recently_exhausted()
    assert alarm.check(OSError(errno.EMFILE, "Too many open files"))
    now[0] += 30.0
    assert alarm.recently_exhausted()
    now[0] += 0.5
    assert not alarm.recently_exhausted()
