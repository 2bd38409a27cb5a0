"""Database URIs: parsing, refusals, and mongodb+srv seedlists from a real DNS responder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import cast

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from wicket.agent.mongodb.upstream import TOPOLOGY_FIELDS, direct_hello_fields
from wicket.agent.mongodb.uri import (
    MongoTarget,
    UpstreamConnectError,
    parse_host,
    parse_mongo_uri,
    resolve_seedlist,
)
from wicket.errors import BadParameter


@pytest.mark.parametrize(
    ("uri", "hosts", "replica_set", "tls"),
    [
        ("db.example.com", (("db.example.com", 27017),), None, None),
        ("db.example.com:27018", (("db.example.com", 27018),), None, None),
        ("[::1]:27017", (("::1", 27017),), None, None),
        ("[::1]", (("::1", 27017),), None, None),
        ("mongodb://10.0.0.5", (("10.0.0.5", 27017),), None, None),
        (
            "mongodb://h1:1,h2:2/?replicaSet=rs0&tls=true",
            (("h1", 1), ("h2", 2)),
            "rs0",
            True,
        ),
        ("mongodb://H1.Example.com:1/test?ssl=false", (("h1.example.com", 1),), None, False),
        ("mongodb://[::1]:3,[fe80::1]/?REPLICASET=x", (("::1", 3), ("fe80::1", 27017)), "x", None),
    ],
)
def test_parse(
    uri: str, hosts: tuple[tuple[str, int], ...], replica_set: str | None, tls: bool | None
) -> None:
    target = parse_mongo_uri(uri)
    assert target.hosts == hosts
    assert target.replica_set == replica_set
    assert target.tls is tls
    assert target.srv is False


def test_options_are_case_insensitive_and_decoded() -> None:
    target = parse_mongo_uri("mongodb://h/?authSource=%24external&appName=my%20app")
    assert target.auth_source == "$external"
    assert target.options["appname"] == "my app"


def test_topology_decision() -> None:
    assert not parse_mongo_uri("h:1").discovers_topology
    assert parse_mongo_uri("h:1,h:2").discovers_topology
    assert parse_mongo_uri("h:1/?replicaSet=rs0").discovers_topology
    assert not parse_mongo_uri("h:1/?replicaSet=rs0&directConnection=true").discovers_topology


def test_srv_uri_shape() -> None:
    target = parse_mongo_uri("mongodb+srv://cluster.example.com/?replicaSet=rs9")
    assert target.srv and target.hosts == (("cluster.example.com", 27017),)
    assert target.tls is None  # resolve_seedlist turns TLS on


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("mongodb://user:secret@h:1", "credentials"),
        ("mongodb://user@h", "credentials"),
        ("postgres://h", "scheme 'postgres'"),
        ("mongodb://h:0", "port must be"),
        ("mongodb://h:99999", "port must be"),
        ("mongodb://h:x", "port must be"),
        ("mongodb://::1", "brackets"),
        ("mongodb://[::1", "closing"),
        ("mongodb://[zz]:1", "not an IPv6"),
        ("mongodb://%2Ftmp%2Fmongodb-27017.sock", "Unix domain"),
        ("mongodb://bad_host!:1", "not a valid host"),
        ("mongodb://h/?tls=maybe", "true or false"),
        ("mongodb://h/?tls=true&ssl=false", "disagree"),
        ("mongodb://h/?a=1&A=2", "twice"),
        ("mongodb://h/?tlsCAFile=/x.pem", "tls.ca_cert_file"),
        ("mongodb://h/?tlsInsecure=true", "tls.mode"),
        ("mongodb+srv://a.example.com:27017", "no port"),
        ("mongodb+srv://a.example.com,b.example.com", "exactly one host"),
        ("mongodb+srv://a.example.com/?directConnection=true", "directConnection"),
        ("mongodb://a:1,b:2/?directConnection=true", "exactly one host"),
        ("", "empty"),
        ("mongodb://h/?" + "a" * 5000, "longer than"),
        ("mongodb://" + ",".join(f"h{i}" for i in range(65)), "more than 64 hosts"),
    ],
)
def test_refused(uri: str, fragment: str) -> None:
    with pytest.raises(BadParameter, match=fragment):
        parse_mongo_uri(uri)


def test_parse_host_of_a_hello_primary() -> None:
    assert parse_host("node-1.rs.local:27019") == ("node-1.rs.local", 27019)
    assert parse_host("[2001:db8::1]:5") == ("2001:db8::1", 5)


def test_direct_hello_fields_strip_the_topology() -> None:
    hello = {
        "isWritablePrimary": True,
        "hosts": ["a:1", "b:2"],
        "setName": "rs0",
        "primary": "a:1",
        "me": "a:1",
        "passives": ["c:3"],
        "arbiters": ["d:4"],
        "setVersion": 7,
        "electionId": "x",
        "maxWireVersion": 21,
        "ok": 1.0,
    }
    shown = direct_hello_fields(hello)
    assert shown == {"isWritablePrimary": True, "maxWireVersion": 21, "ok": 1.0}
    assert "setName" in hello  # the input is not modified
    assert {"hosts", "setName", "primary", "me", "passives", "arbiters"} <= TOPOLOGY_FIELDS


# --- mongodb+srv against a real DNS responder on loopback ------------------------------


class DnsResponder(asyncio.DatagramProtocol):
    """Answers SRV and TXT questions from a table (NXDOMAIN for the rest), over UDP."""

    def __init__(self, records: dict[tuple[str, str], list[str]]) -> None:
        self.records = records
        self.questions: list[tuple[str, str]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        kind = dns.rdatatype.to_text(question.rdtype)
        self.questions.append((name, kind))
        answers = self.records.get((name, kind))
        if answers is None:
            if not any(key[0] == name for key in self.records):
                response.set_rcode(dns.rcode.NXDOMAIN)
        else:
            rrset = dns.rrset.from_text_list(
                question.name, 60, dns.rdataclass.IN, question.rdtype, answers
            )
            response.answer.append(rrset)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


@pytest.fixture
async def dns_server() -> AsyncIterator[tuple[DnsResponder, int]]:
    responder = DnsResponder({})
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: responder, local_addr=("127.0.0.1", 0)
    )
    port = int(transport.get_extra_info("sockname")[1])
    yield responder, port
    transport.close()


async def resolve(uri: str, port: int) -> MongoTarget:
    return await resolve_seedlist(
        parse_mongo_uri(uri), nameservers=[("127.0.0.1", port)], lifetime=3
    )


async def test_srv_seedlist_and_txt_options(dns_server: tuple[DnsResponder, int]) -> None:
    responder, port = dns_server
    responder.records = {
        ("_mongodb._tcp.cluster0.example.com", "SRV"): [
            "0 0 27017 node1.example.com.",
            "0 0 27018 node2.cluster0.example.com.",
        ],
        ("cluster0.example.com", "TXT"): ['"replicaSet=rs0&authSource=admin"'],
    }
    target = await resolve("mongodb+srv://cluster0.example.com/?authSource=other", port)
    assert sorted(target.hosts) == [
        ("node1.example.com", 27017),
        ("node2.cluster0.example.com", 27018),
    ]
    assert target.replica_set == "rs0"
    assert target.auth_source == "other"  # the URI wins over TXT
    assert target.tls is True
    assert target.discovers_topology
    assert ("_mongodb._tcp.cluster0.example.com", "SRV") in responder.questions


async def test_srv_tls_false_in_the_uri_is_kept(dns_server: tuple[DnsResponder, int]) -> None:
    responder, port = dns_server
    responder.records = {("_mongodb._tcp.c.example.com", "SRV"): ["0 0 1 n.example.com."]}
    target = await resolve("mongodb+srv://c.example.com/?tls=false", port)
    assert target.tls is False and target.replica_set is None


async def test_srv_target_outside_the_parent_domain(dns_server: tuple[DnsResponder, int]) -> None:
    responder, port = dns_server
    responder.records = {("_mongodb._tcp.c.example.com", "SRV"): ["0 0 1 evil.attacker.net."]}
    with pytest.raises(UpstreamConnectError, match=r"not in the domain example\.com"):
        await resolve("mongodb+srv://c.example.com", port)


async def test_srv_short_host_needs_a_deeper_target(dns_server: tuple[DnsResponder, int]) -> None:
    responder, port = dns_server
    responder.records = {("_mongodb._tcp.example.com", "SRV"): ["0 0 1 example.com."]}
    with pytest.raises(UpstreamConnectError, match="parent domain"):
        await resolve("mongodb+srv://example.com", port)
    responder.records = {("_mongodb._tcp.example.com", "SRV"): ["0 0 1 db.example.com."]}
    assert (await resolve("mongodb+srv://example.com", port)).hosts == (("db.example.com", 1),)


async def test_txt_may_not_set_other_options(dns_server: tuple[DnsResponder, int]) -> None:
    responder, port = dns_server
    responder.records = {
        ("_mongodb._tcp.c.example.com", "SRV"): ["0 0 1 n.example.com."],
        ("c.example.com", "TXT"): ['"tls=false"'],
    }
    with pytest.raises(UpstreamConnectError, match="only replicaSet, authSource and loadBalanced"):
        await resolve("mongodb+srv://c.example.com", port)


async def test_more_than_one_txt_record(dns_server: tuple[DnsResponder, int]) -> None:
    responder, port = dns_server
    responder.records = {
        ("_mongodb._tcp.c.example.com", "SRV"): ["0 0 1 n.example.com."],
        ("c.example.com", "TXT"): ['"replicaSet=a"', '"authSource=b"'],
    }
    with pytest.raises(UpstreamConnectError, match="at most one"):
        await resolve("mongodb+srv://c.example.com", port)


async def test_missing_srv_record_names_the_host(dns_server: tuple[DnsResponder, int]) -> None:
    _, port = dns_server
    with pytest.raises(UpstreamConnectError) as failure:
        await resolve("mongodb+srv://nothere.example.com", port)
    assert "_mongodb._tcp.nothere.example.com" in str(failure.value)
    assert "nothere.example.com" in str(failure.value)


async def test_unanswering_dns_server_times_out() -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    port = int(transport.get_extra_info("sockname")[1])
    try:
        with pytest.raises(UpstreamConnectError, match="timed out"):
            await resolve_seedlist(
                parse_mongo_uri("mongodb+srv://c.example.com"),
                nameservers=[("127.0.0.1", port)],
                lifetime=0.5,
            )
    finally:
        transport.close()


async def test_non_srv_target_is_returned_unchanged() -> None:
    target = parse_mongo_uri("h:1")
    assert await resolve_seedlist(target) is target
