"""The reverse tunnel end to end over real TLS on loopback: agent, pool, sessions, refusals."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import os
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.integration.tunnel.certs import Issued, client_context
from tests.integration.tunnel.conftest import Pki, Proxy, agent_context_factory, wait_until
from wicket.errors import LocalProtocolError, Timeout, UpstreamError
from wicket.identity import HostRole
from wicket.tunnel.client import Backoff, TunnelClient, TunnelState
from wicket.tunnel.protocol import SessionHeader, decode_message
from wicket.tunnel.streams import read_frame

StartProxy = Callable[..., Awaitable[Proxy]]
FLOOD_BYTES = 64 * 1024 * 1024


class Agent:
    """An agent whose sessions echo, or flood when the route says so."""

    def __init__(self, pki: Pki, port: int, issued: Issued, **kwargs: Any) -> None:
        self.headers: list[SessionHeader] = []
        self.databases: list[dict[str, Any]] = [{"name": "docdb-1", "protocol": "mongodb"}]
        self.delays: list[float] = []
        self.flood_sent = 0
        self.client = TunnelClient(
            proxy_addr=("127.0.0.1", port),
            ssl_context_factory=agent_context_factory(pki, issued),
            agent_id=kwargs.pop("agent_id", "agent-1"),
            databases=lambda: list(self.databases),
            handle_session=self.session,
            server_hostname="localhost",
            sleep=self.sleep,
            heartbeat_interval=0.3,
            connect_timeout=3.0,
            **kwargs,
        )
        self.task = asyncio.create_task(self.client.run())

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(delay / 10)

    async def session(
        self, header: SessionHeader, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.headers.append(header)
        if header.route.get("mode") == "flood":
            chunk = bytes(64 * 1024)
            while self.flood_sent < FLOOD_BYTES:
                writer.write(chunk)
                await writer.drain()
                self.flood_sent += len(chunk)
            return
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()

    async def close(self) -> None:
        await self.client.close()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
async def start_agent(pki: Pki) -> AsyncIterator[Callable[..., Agent]]:
    agents: list[Agent] = []

    def start(port: int, issued: Issued | None = None, **kwargs: Any) -> Agent:
        agent = Agent(pki, port, issued or pki.agent, **kwargs)
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        await agent.close()


def header(session_id: str, **route: Any) -> SessionHeader:
    return SessionHeader(
        ("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",),
        {"service": "docdb-1", **route},
        "127.0.0.1:5555",
        session_id,
    )


async def echo_through(proxy: Proxy, session_id: str, size: int) -> bytes:
    reader, writer = await proxy.tunnel.open_session("agent-1", header(session_id))
    payload = os.urandom(size)

    async def send() -> None:
        for offset in range(0, size, 65536):
            writer.write(payload[offset : offset + 65536])
            await writer.drain()

    async with asyncio.TaskGroup() as group:
        group.create_task(send())
        received = group.create_task(reader.readexactly(size))
    writer.close()
    assert received.result() == payload
    return received.result()


async def test_agent_announces_databases_and_heartbeats_update_them(
    start_proxy: StartProxy, start_agent: Callable[..., Agent]
) -> None:
    proxy = await start_proxy()
    agent = start_agent(proxy.port)
    await wait_until(lambda: bool(proxy.tunnel.agents()))
    (seen,) = proxy.tunnel.agents()
    assert seen.agent_id == "agent-1"
    assert [dict(d) for d in seen.databases] == [{"name": "docdb-1", "protocol": "mongodb"}]
    await wait_until(lambda: agent.client.state is TunnelState.CONNECTED)
    await wait_until(lambda: proxy.tunnel.agents()[0].idle_connections == 4)
    agent.databases.append({"name": "docdb-2", "protocol": "mongodb"})
    await wait_until(lambda: len(proxy.tunnel.agents()[0].databases) == 2)


async def test_twenty_concurrent_sessions_and_the_pool_refills(
    start_proxy: StartProxy, start_agent: Callable[..., Agent]
) -> None:
    proxy = await start_proxy()
    agent = start_agent(proxy.port, pool_size=4)
    await wait_until(
        lambda: bool(proxy.tunnel.agents()) and proxy.tunnel.agents()[0].idle_connections == 4
    )
    async with asyncio.timeout(30):
        await asyncio.gather(*(echo_through(proxy, f"s{i}", 100_000 + i) for i in range(20)))
    assert sorted(h.session_id for h in agent.headers) == sorted(f"s{i}" for i in range(20))
    first = agent.headers[0]
    assert first.client_addr == "127.0.0.1:5555"
    assert first.route["service"] == "docdb-1"
    assert first.user_cert_chain_pem[0].startswith("-----BEGIN CERTIFICATE-----")
    await wait_until(lambda: proxy.tunnel.agents()[0].idle_connections >= 4)
    await wait_until(lambda: agent.client.active_sessions == 0)


async def test_agent_reconnects_with_backoff_after_the_proxy_restarts(
    start_proxy: StartProxy, start_agent: Callable[..., Agent]
) -> None:
    proxy = await start_proxy()
    agent = start_agent(proxy.port, backoff=Backoff(0.5, 30.0, 0.2, random_fraction=lambda: 0.5))
    await wait_until(lambda: bool(proxy.tunnel.agents()))
    await echo_through(proxy, "before", 1000)
    port = proxy.port
    await proxy.stop()
    await wait_until(lambda: len(agent.delays) >= 3)
    assert agent.client.state in (TunnelState.BACKING_OFF, TunnelState.CONNECTING)
    restarted = await start_proxy(port=port)
    await wait_until(lambda: bool(restarted.tunnel.agents()))
    await wait_until(lambda: agent.client.connections_made == 2)
    # Exponential with the injected jitter (0.2 * 0.5 off each delay): 0.45, 0.9, 1.8, ...
    assert {0.45, 0.9, 1.8} <= {round(delay, 6) for delay in agent.delays}
    async with asyncio.timeout(10):
        await echo_through(restarted, "after", 1000)


@pytest.mark.parametrize("who", ["intruder", "rogue"])
async def test_unauthorized_or_foreign_agent_certificate_is_refused(
    start_proxy: StartProxy, start_agent: Callable[..., Agent], pki: Pki, who: str
) -> None:
    proxy = await start_proxy()
    issued = pki.intruder if who == "intruder" else pki.rogue
    agent = start_agent(proxy.port, issued, agent_id="agent-1")
    await wait_until(lambda: len(agent.delays) >= 2)
    assert proxy.tunnel.agents() == []
    assert agent.client.connections_made == 0
    assert agent.client.last_error is not None
    if who == "intruder":
        assert "is not a database agent" in agent.client.last_error


async def test_a_server_that_is_not_the_proxy_is_refused(
    pki: Pki, start_agent: Callable[..., Agent]
) -> None:
    """Another host of the cluster (here a db host) with a valid server certificate for
    the proxy's address is not taken for the proxy: the agent sends it nothing."""
    impostor = Proxy(
        dataclasses.replace(pki, proxy=pki.ca.issue("db-9", server=True, host_role=HostRole.DB))
    )
    await impostor.start()
    try:
        agent = start_agent(impostor.port)
        await wait_until(lambda: len(agent.delays) >= 2)
        assert impostor.tunnel.agents() == []
        assert agent.client.connections_made == 0
        assert "presented a certificate for a db host (db-9), not the proxy" in (
            agent.client.last_error or ""
        )
    finally:
        await impostor.stop()


async def test_agent_id_must_match_its_certificate(
    start_proxy: StartProxy, start_agent: Callable[..., Agent]
) -> None:
    proxy = await start_proxy()
    agent = start_agent(proxy.port, agent_id="agent-2")
    await wait_until(lambda: len(agent.delays) >= 1)
    assert proxy.tunnel.agents() == []
    assert "certificate is for 'agent-1'" in (agent.client.last_error or "")


async def test_no_agent_times_out_with_a_clear_message(start_proxy: StartProxy) -> None:
    proxy = await start_proxy(pool_wait_timeout=0.3)
    with pytest.raises(Timeout, match="no tunnel connection from agent agent-1"):
        await proxy.tunnel.open_session("agent-1", header("x"))


async def test_no_connection_while_out_of_descriptors_says_so(start_proxy: StartProxy) -> None:
    """When the proxy could not accept (EMFILE), the session is told that, not "no agent"."""
    proxy = await start_proxy(pool_wait_timeout=0.3)
    assert proxy.alarm.check(OSError(errno.EMFILE, "Too many open files"))
    with pytest.raises(
        UpstreamError,
        match=r"the proxy has run out of file descriptors \(limit \d+\) while accepting "
        r"the tunnel connections of agent agent-1",
    ):
        await proxy.tunnel.open_session("agent-1", header("x"))


async def test_agent_close_drops_its_pool(
    start_proxy: StartProxy, start_agent: Callable[..., Agent]
) -> None:
    proxy = await start_proxy(pool_wait_timeout=0.5)
    agent = start_agent(proxy.port)
    await wait_until(
        lambda: bool(proxy.tunnel.agents()) and proxy.tunnel.agents()[0].idle_connections == 4
    )
    await agent.close()
    await wait_until(lambda: proxy.tunnel.agents() == [])
    with pytest.raises(Timeout):
        await proxy.tunnel.open_session("agent-1", header("late"))


async def test_header_over_the_caps_is_refused_locally(
    start_proxy: StartProxy, start_agent: Callable[..., Agent]
) -> None:
    proxy = await start_proxy()
    start_agent(proxy.port)
    await wait_until(
        lambda: bool(proxy.tunnel.agents()) and proxy.tunnel.agents()[0].idle_connections == 4
    )
    too_many = SessionHeader(("x",) * 9, {}, "", "s")
    with pytest.raises(LocalProtocolError, match="more than 8"):
        await proxy.tunnel.open_session("agent-1", too_many)
    too_big = SessionHeader(("x" * 70_000,), {}, "", "s")
    with pytest.raises(LocalProtocolError, match="exceeds the maximum"):
        await proxy.tunnel.open_session("agent-1", too_big)
    assert proxy.tunnel.agents()[0].idle_connections == 4


async def test_oversized_frame_from_an_agent_is_refused(start_proxy: StartProxy, pki: Pki) -> None:
    proxy = await start_proxy()
    context = client_context(pki.ca, pki.agent)
    context.set_alpn_protocols(["wicket-tunnel"])
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", proxy.port, ssl=context, server_hostname="localhost"
        )
        writer.write(struct.pack(">I", 1 << 20) + b"{")
        reply = decode_message(await read_frame(reader))
        assert "exceeds the maximum" in getattr(reply, "message", "")
        assert await reader.read() == b""
        writer.close()


async def test_a_stalled_session_never_stalls_another(
    start_proxy: StartProxy, start_agent: Callable[..., Agent]
) -> None:
    proxy = await start_proxy()
    agent = start_agent(proxy.port)
    await wait_until(lambda: bool(proxy.tunnel.agents()))
    _stalled_reader, stalled_writer = await proxy.tunnel.open_session(
        "agent-1", header("stalled", mode="flood")
    )
    await wait_until(lambda: agent.flood_sent > 0)
    async with asyncio.timeout(30):
        for index in range(4):
            await echo_through(proxy, f"busy{index}", 8 * 1024 * 1024)
    # The flood stopped at the socket buffers: nobody read it, and nothing waited for it.
    assert 0 < agent.flood_sent < FLOOD_BYTES
    stalled_writer.close()
