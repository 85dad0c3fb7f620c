"""LocalStack gateway servers that listen exactly where ``GATEWAY_LISTEN`` says.

LocalStack 4.14's twisted server ignores the host of IPv4 entries in
``GATEWAY_LISTEN`` and binds ``0.0.0.0``. These servers bind the interfaces given, and refuse
non-loopback addresses (see :mod:`lambdamesh_localstack.listen_addresses`). Served on loopback
only, they also refuse requests for a host that is not this machine's
(:mod:`lambdamesh_localstack.host_check`).

``GATEWAY_SERVER=loopback`` (the launcher's choice) serves with one thread per connection
(:mod:`lambdamesh_localstack.connection_threads`: half the CPU per request of twisted's).
``GATEWAY_SERVER=loopback-twisted`` is LocalStack's twisted server, bound the same way, for
what that one serves and the other does not (HTTP/2, WebSocket upgrades), and changed twice:

It writes no access log: twisted's ``HTTPFactory.log`` formats a combined-log line for
every request and hands it to twisted's log, where LocalStack shows it nowhere (2.2 % of a
request's CPU, profiled on a no-op request). LocalStack's own line per request is
:mod:`lambdamesh_localstack.request_overhead`'s business.

And a response's body is handed to the reactor without waiting for it
(:class:`QueuedWritesWSGIResponse`). twisted's WSGI response writes each body chunk with
``blockingCallFromThread``: the request's worker thread makes a ``Queue`` and a ``Deferred``,
wakes the reactor, and sleeps until the reactor has called ``request.write`` (which only
buffers the bytes in the transport: twisted's own comment says it gives no back-pressure), so
that an exception in that call reaches the worker. Sampled on a no-op request with py-spy
(``--gil``), that hand-off was the largest single cost of the request (a fifth of the samples
holding the interpreter lock). The writes now go through ``callFromThread``, in order, before
the finish twisted queues the same way; an exception in one is logged by the reactor. CPU per
no-op request, three runs each: 0.92-1.01 ms before, 0.75-0.88 ms after.
"""

from __future__ import annotations

import logging
import os
import threading

from localstack import config
from localstack.aws.serving.twisted import TLSMultiplexerFactory
from localstack.runtime.server.core import RuntimeServer, RuntimeServerPlugin
from localstack.runtime.server.twisted import TwistedRuntimeServer
from rolo.gateway import Gateway
from rolo.gateway.wsgi import WsgiGateway
from rolo.serving.twisted import (
    GatewayResource,
    HeaderPreservingWSGIResource,
    HeaderPreservingWSGIResponse,
    TwistedGateway,
    WebsocketResourceDecorator,
)
from rolo.websocket.request import WebSocketRequest
from twisted.internet import reactor, ssl
from twisted.web.server import NOT_DONE_YET

from lambdamesh_localstack.connection_threads import ConnectionThreadsServer, tls_context
from lambdamesh_localstack.host_check import refuse_foreign_host
from lambdamesh_localstack.listen_addresses import (
    BindAddress,
    non_loopback_allowed,
    refuse_non_loopback,
    resolve_bind_addresses,
)

LOG = logging.getLogger(__name__)


class QueuedWritesWSGIResponse(HeaderPreservingWSGIResponse):
    """rolo's WSGI response (twisted's, with header case kept) whose body writes are queued to
    the reactor instead of waited for (see the module's text)."""

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the reactor to write, the status and headers first if need be.

        Called in the request's worker thread; the reactor runs the queued calls in order.
        """
        started = self.started

        def write_in_reactor() -> None:
            if not started:
                self._sendResponseHeaders()
            self.request.write(data)

        self.started = True
        self.reactor.callFromThread(write_in_reactor)


class QueuedWritesWSGIResource(HeaderPreservingWSGIResource):
    """rolo's WSGI resource, its responses :class:`QueuedWritesWSGIResponse`."""

    def render(self, request: object) -> object:
        """As rolo's, with the response class of this module."""
        response = QueuedWritesWSGIResponse(
            self._reactor, self._threadpool, self._application, request
        )
        response.start()
        return NOT_DONE_YET


class QueuedWritesGatewayResource(GatewayResource):
    """rolo's gateway resource (WebSocket upgrades, else WSGI), its WSGI resource
    :class:`QueuedWritesWSGIResource`: the same construction as rolo 0.8.9's, which offers no
    way to choose the resource class."""

    def __init__(self, gateway: Gateway, reactor: object, threadpool: object) -> None:
        self.gateway = gateway
        super(GatewayResource, self).__init__(
            WebsocketResourceDecorator(
                original=QueuedWritesWSGIResource(reactor, threadpool, WsgiGateway(gateway)),
                websocketListener=WebSocketRequest.listener(gateway.accept),
            )
        )


class UnloggedTwistedGateway(TwistedGateway):
    """LocalStack's twisted site without twisted's access log (shown nowhere), its body writes
    queued to the reactor (:class:`QueuedWritesGatewayResource`)."""

    def __init__(self, gateway: Gateway) -> None:
        super().__init__(gateway)
        self.resource = QueuedWritesGatewayResource(gateway, reactor, reactor.getThreadPool())

    def log(self, request: object) -> None:
        """Write nothing: the line would go to twisted's log, which LocalStack does not show."""


def bind_addresses(gateway: Gateway, listen: list[config.HostAndPort]) -> list[BindAddress]:
    """Every address of ``listen`` to serve ``gateway`` on; with loopback addresses only, the
    gateway refuses foreign hosts first.

    Raises
    ------
    lambdamesh_localstack.listen_addresses.NonLoopbackListenError
        If an address is not loopback and ``LAMBDAMESH_ALLOW_NON_LOOPBACK`` is not ``1``.
    """
    addresses = resolve_bind_addresses((entry.host, entry.port) for entry in listen)
    exposed = refuse_non_loopback(addresses, allowed=non_loopback_allowed(os.environ))
    for address in exposed:
        LOG.warning(
            "listening on non-loopback address %s: anyone who can reach it can run code "
            "on this machine",
            address,
        )
    if not exposed and refuse_foreign_host not in gateway.request_handlers:
        # First, before any handler reads the request (see host_check: DNS rebinding).
        gateway.request_handlers.insert(0, refuse_foreign_host)
    return addresses


class LoopbackRuntimeServer(RuntimeServer):
    """The gateway served by one thread per connection
    (:class:`~lambdamesh_localstack.connection_threads.ConnectionThreadsServer`), bound to the
    listed interfaces only."""

    def __init__(self) -> None:
        self._servers: list[ConnectionThreadsServer] = []
        self._stopped = threading.Event()

    def register(
        self,
        gateway: Gateway,
        listen: list[config.HostAndPort],
        ssl_creds: tuple[str, str] | None = None,
    ) -> None:
        """Serve ``gateway`` on every address of ``listen``, and nowhere else: bound here and
        now (``OSError`` if a port is taken), served once :meth:`run` is called.

        Parameters
        ----------
        gateway
            The LocalStack gateway to serve.
        listen
            Parsed ``GATEWAY_LISTEN``; host names are resolved to all their addresses.
        ssl_creds
            Certificate and key file, for serving HTTP and HTTPS on one port.
        """
        server = ConnectionThreadsServer(WsgiGateway(gateway), tls_context(ssl_creds))
        for address in bind_addresses(gateway, listen):
            server.listen(address.host, address.port)
            LOG.debug("gateway listening on %s", address)
        self._servers.append(server)

    def run(self) -> None:
        """Serve until :meth:`shutdown`."""
        for server in self._servers:
            threading.Thread(target=server.serve, name="gateway-server", daemon=True).start()
        self._stopped.wait()

    def shutdown(self) -> None:
        """Stop accepting, close every connection, and let :meth:`run` return."""
        for server in self._servers:
            server.stop()
        self._stopped.set()


class LoopbackTwistedRuntimeServer(TwistedRuntimeServer):
    """LocalStack's twisted gateway server, bound to the listed interfaces only."""

    def register(
        self,
        gateway: Gateway,
        listen: list[config.HostAndPort],
        ssl_creds: tuple[str, str] | None = None,
    ) -> None:
        """Serve ``gateway`` on every address of ``listen``, and nowhere else, as
        :meth:`LoopbackRuntimeServer.register` does, with twisted."""
        addresses = bind_addresses(gateway, listen)
        factory = self._protocol_factory(gateway, ssl_creds)
        for address in addresses:
            # The parent class binds IPv4 without ``interface`` (so on 0.0.0.0); passing the
            # address is the point of this class. ``listenTCP`` rather than the parent's
            # server endpoints: it raises CannotListenError here and now (e.g. the port is
            # taken), where an endpoint would only log it from a Deferred and the runtime
            # would go on to report "Ready" on a port something else holds.
            # zope interface methods have no ``self``: without the mypy-zope plugin mypy
            # shifts listenTCP's parameters and cannot see that the factories implement
            # IProtocolFactory (the same applies to TLSMultiplexerFactory below).
            reactor.listenTCP(address.port, factory, interface=address.host)  # type: ignore[arg-type]
            LOG.debug("gateway listening on %s", address)

    @staticmethod
    def _protocol_factory(
        gateway: Gateway, ssl_creds: tuple[str, str] | None
    ) -> UnloggedTwistedGateway | TLSMultiplexerFactory:
        # Same construction as TwistedRuntimeServer.register, which does not expose it
        # separately: plain HTTP and TLS are multiplexed on the one port.
        site = UnloggedTwistedGateway(gateway)
        if not ssl_creds:
            return site
        cert_file_name, key_file_name = ssl_creds
        context_factory = ssl.DefaultOpenSSLContextFactory(key_file_name, cert_file_name)
        context_factory.getContext().use_certificate_chain_file(cert_file_name)
        return TLSMultiplexerFactory(context_factory, False, site)  # type: ignore[arg-type]


class LoopbackRuntimeServerPlugin(RuntimeServerPlugin):
    """Plugin ``localstack.runtime.server:loopback``: a :class:`LoopbackRuntimeServer`."""

    name = "loopback"

    def load(self, *args: object, **kwargs: object) -> RuntimeServer:
        """Create the server; LocalStack calls ``register`` and ``run`` on it."""
        return LoopbackRuntimeServer()


class LoopbackTwistedRuntimeServerPlugin(RuntimeServerPlugin):
    """Plugin ``localstack.runtime.server:loopback-twisted``: a
    :class:`LoopbackTwistedRuntimeServer`."""

    name = "loopback-twisted"

    def load(self, *args: object, **kwargs: object) -> RuntimeServer:
        """Create the server; LocalStack calls ``register`` and ``run`` on it."""
        return LoopbackTwistedRuntimeServer()
