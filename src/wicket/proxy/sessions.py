"""The proxy's side of a user's database session: check the certificate, pick an agent, splice.

The proxy does not speak the database protocol on the normal path: it verifies the
user certificate and its database route, takes a tunnel connection to an agent that
serves that database, sends the session header and relays bytes. Only when no
session can start (no route, no agent) does it answer the client's first message
with a MongoDB error, so mongosh shows the reason instead of a bare disconnect.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Sequence

from cryptography import x509

from wicket.errors import AccessDenied, WicketError
from wicket.identity import Identity, IdentityKind
from wicket.pki.authority import verify_certificate
from wicket.pki.pem import certificate_pem
from wicket.proxy.router import RELAY_CHUNK_SIZE, relay
from wicket.tunnel.protocol import SessionHeader
from wicket.tunnel.server import AgentTunnel, TunnelServer
from wicket.wire.mongo import MessageFramer, decode_message, error_reply_for

log = logging.getLogger("wicket.proxy")

FIRST_MESSAGE_TIMEOUT = 30.0
SESSION_IDLE_TIMEOUT = 24 * 3600.0
FIRST_MESSAGE_LIMIT = 1024 * 1024


def agents_serving(agents: Sequence[AgentTunnel], service: str) -> list[AgentTunnel]:
    """Connected agents that announced the database `service`."""
    found = []
    for agent in agents:
        for database in agent.databases:
            metadata = database.get("metadata")
            if isinstance(metadata, dict) and metadata.get("name") == service:
                found.append(agent)
                break
    return found


async def refuse_first_message(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    message: str,
    *,
    initial: bytes = b"",
    seconds: float = FIRST_MESSAGE_TIMEOUT,
) -> None:
    """Answer the client's first message with a MongoDB error saying why, then close.

    `initial` is what was already read of that message.
    """
    framer = MessageFramer(FIRST_MESSAGE_LIMIT)
    if initial:
        framer.receive_data(initial)
    try:
        async with asyncio.timeout(seconds):
            while (frame := framer.next_frame()) is None:
                data = await reader.read(65536)
                if not data:
                    return
                framer.receive_data(data)
        request = decode_message(frame.data)
        writer.write(
            error_reply_for(
                request, request_id=1, errmsg=message, code=13, code_name="Unauthorized"
            )
        )
        async with asyncio.timeout(5):
            await writer.drain()
    except (WicketError, TimeoutError, OSError) as error:
        log.debug("could not send the refusal: %s", error)
    finally:
        writer.close()


class DatabaseSessions:
    """Starts users' database sessions on agents' tunnels."""

    def __init__(
        self,
        *,
        cluster_name: str,
        user_ca: x509.Certificate,
        tunnels: TunnelServer,
        first_message_timeout: float = FIRST_MESSAGE_TIMEOUT,
    ):
        self.cluster_name = cluster_name
        self.user_ca = user_ca
        self.tunnels = tunnels
        self.first_message_timeout = first_message_timeout

    async def _first_bytes(self, reader: asyncio.StreamReader, client_addr: str) -> bytes | None:
        """The client's first bytes (MongoDB clients speak first), or None if none in time.

        Waiting for them before taking a tunnel connection means a client that connects
        and says nothing holds only its own descriptor, and only for seconds.
        """
        try:
            async with asyncio.timeout(self.first_message_timeout):
                data = await reader.read(RELAY_CHUNK_SIZE)
        except TimeoutError:
            log.info(
                "database connection from %s sent nothing within %g s; closed",
                client_addr,
                self.first_message_timeout,
            )
            return None
        except OSError as error:
            log.info("database connection from %s failed: %s", client_addr, error)
            return None
        return data or None

    def verify(self, cert: x509.Certificate | None) -> Identity:
        """The user's identity, if the certificate is this cluster's and names a database."""
        if cert is None:
            raise AccessDenied(
                "database connections need a Wicket user certificate: "
                "run `wsh db login` or connect through `wsh proxy db`"
            )
        identity = verify_certificate(
            cert, self.user_ca, cluster=self.cluster_name, kinds={IdentityKind.USER}
        )
        if identity.route is None:
            raise AccessDenied(
                f'the certificate of user "{identity.name}" is not for a database: '
                "run `wsh db login <database>` first"
            )
        return identity

    async def serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        cert: x509.Certificate | None,
        client_addr: str,
    ) -> None:
        """Run one user's session to its end."""
        first = await self._first_bytes(reader, client_addr)
        if first is None:
            writer.close()
            return
        try:
            identity = self.verify(cert)
            assert identity.route is not None and cert is not None
            service = identity.route.service
            candidates = agents_serving(self.tunnels.agents(), service)
            if not candidates:
                raise AccessDenied(
                    f'no database service serving "{service}" is connected to this proxy; '
                    "check `wctl db ls` and the agent's logs"
                )
            agent = random.choice(candidates)
            header = SessionHeader(
                user_cert_chain_pem=(certificate_pem(cert).decode(),),
                route=identity.route.to_dict(),
                client_addr=client_addr,
                session_id=str(uuid.uuid4()),
            )
            tunnel_reader, tunnel_writer = await self.tunnels.open_session(agent.agent_id, header)
        except WicketError as error:
            log.info("database session from %s refused: %s", client_addr, error)
            await refuse_first_message(
                reader, writer, str(error), initial=first, seconds=self.first_message_timeout
            )
            return
        log.info(
            "session %s: %s -> %s on agent %s",
            header.session_id,
            identity.name,
            service,
            agent.agent_id,
        )
        tunnel_writer.write(first)  # relay's backpressure applies from its first read on
        await relay(reader, writer, tunnel_reader, tunnel_writer, idle_timeout=SESSION_IDLE_TIMEOUT)
