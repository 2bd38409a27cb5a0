"""Which watched events the access stream forwards after a snapshot taken while watching."""

from __future__ import annotations

from wicket.authserver.watch_api import FeedAction, FeedFilter
from wicket.backend.base import Event, EventKind, Item


def put(key: str, revision: int) -> Event:
    return Event(EventKind.PUT, Item(key, b"{}", revision))


def delete(key: str, revision: int) -> Event:
    return Event(EventKind.DELETE, Item(key, b"", revision))


def test_what_the_snapshot_already_shows_is_skipped() -> None:
    feed = FeedFilter()
    feed.told("/users/bob", 7)
    assert feed.classify(put("/users/bob", 5)) is FeedAction.SKIP
    assert feed.classify(put("/users/bob", 7)) is FeedAction.SKIP
    assert feed.classify(delete("/users/bob", 6)) is FeedAction.SKIP
    assert feed.classify(put("/users/bob", 8)) is FeedAction.FORWARD
    assert feed.classify(delete("/users/bob", 9)) is FeedAction.FORWARD


def test_a_put_of_an_unknown_key_is_confirmed_and_a_delete_of_one_dropped() -> None:
    # it may be an old write of a key deleted before the snapshot was listed
    feed = FeedFilter()
    assert feed.classify(put("/locks/l-1", 3)) is FeedAction.CONFIRM
    assert feed.classify(delete("/locks/l-1", 4)) is FeedAction.SKIP


def test_forwarded_events_move_the_known_revision() -> None:
    feed = FeedFilter()
    feed.forwarded(put("/roles/dev", 3))
    assert feed.classify(put("/roles/dev", 3)) is FeedAction.SKIP
    assert feed.classify(delete("/roles/dev", 4)) is FeedAction.FORWARD
    feed.forwarded(delete("/roles/dev", 4))
    assert feed.classify(put("/roles/dev", 5)) is FeedAction.CONFIRM
