"""A silent proxy (frozen, or its host gone without closing anything) is left within
seconds: the agent expects an ack for each of its one-a-second keep-alives."""

from __future__ import annotations

import asyncio
import contextlib
import time

from tests.integration.tunnel.certs import server_context
from tests.integration.tunnel.conftest import Pki, agent_context_factory, wait_until
from wicket.tunnel.client import PROXY_SILENCE, TunnelClient
from wicket.tunnel.protocol import Ack, ConnectionKind, decode_message
from wicket.tunnel.streams import read_frame, write_message


async def test_agent_leaves_a_proxy_that_stopped_answering(pki: Pki) -> None:
    controls: list[float] = []
    held: list[asyncio.StreamWriter] = []

    async def frozen_proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Acks the hello like a proxy, then never answers again (nor closes)."""
        hello = decode_message(await read_frame(reader))
        if getattr(hello, "kind", None) is ConnectionKind.CONTROL:
            controls.append(time.monotonic())
        await write_message(writer, Ack(), 5.0)
        held.append(writer)
        with contextlib.suppress(OSError):
            while await reader.read(65536):  # keep-alives are read, never acknowledged
                pass

    context = server_context(pki.proxy, pki.ca, ["wicket-tunnel"])
    server = await asyncio.start_server(frozen_proxy, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]

    async def no_session(*_args: object) -> None:
        return

    client = TunnelClient(
        proxy_addr=("127.0.0.1", port),
        ssl_context_factory=agent_context_factory(pki, pki.agent),
        agent_id="agent-1",
        databases=list,
        handle_session=no_session,
        server_hostname="localhost",
        pool_size=1,
    )
    task = asyncio.create_task(client.run())
    try:
        await wait_until(lambda: len(controls) >= 1)
        # once, then again after PROXY_SILENCE and a capped backoff (was 45 s of silence)
        await wait_until(lambda: len(controls) >= 2, PROXY_SILENCE + 5.0)
        assert controls[1] - controls[0] >= PROXY_SILENCE - 0.5
        assert client.last_error is not None
        assert "acknowledged no keep-alive for 5 s" in client.last_error
    finally:
        await client.close()
        await asyncio.gather(task, return_exceptions=True)
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
