"""mongosh started interactively, as a person would, reaches its prompt and works."""

from __future__ import annotations

import pexpect
from pymongo import MongoClient

from localdocdb.process import LocalDocDBProcess
from tests.support.clients import Mongosh


def test_interactive_mongosh_show_dbs(docdb: LocalDocDBProcess, mongosh: Mongosh) -> None:
    with MongoClient(docdb.uri(), serverSelectionTimeoutMS=5000) as client:
        client.inventory.widgets.insert_one({"name": "gear"})
    child = pexpect.spawn(
        str(mongosh.executable),
        [docdb.uri()],
        env=mongosh.env,
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 200),
    )
    try:
        child.expect(r"test> ")
        child.sendline("show dbs")
        child.expect(r"inventory(\x1b\[0m)?\s+\d+")
        child.expect(r"test> ")
        child.sendline("db.getSiblingDB('inventory').widgets.findOne().name")
        child.expect("gear")
        child.expect(r"test> ")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0 or child.signalstatus is None
