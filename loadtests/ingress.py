"""Ingress load: ``https://api.example.com/api/v1/...`` through the ingress gateway.

Run on its own::

    locust -f loadtests/ingress.py --headless -u 20 -r 10 -t 60s \\
        --host https://api.example.com --connect-to 127.1.0.50 --ca-file ca.pem

``--host`` names the gateway host: the Host header, the TLS SNI and the
certificate check all use it. ``--connect-to`` says where to connect instead
of resolving that name (``ADDR``, ``ADDR:PORT`` or ``URLPORT:ADDR:PORT``,
comma-separated; see ``meshproof.load.connect``), so the http -> https redirect
is followed to the same gateway. ``--ca-file`` is the CA the gateway's
certificate must chain to (default: the system's). ``--ingress-path`` is the
path requested (default ``/api/v1/``). ``--user-rps`` paces each user to that
many requests a second (default 0: back to back), so a load keeps its rate
whatever the machine's speed. Exact records with ``--record-dir``; shapes from
``_shapes``.
"""

from __future__ import annotations

from typing import Any

from _recording import record_requests
from _shapes import MeshproofShape
from geventhttpclient.client import HTTPClient, HTTPClientPool
from geventhttpclient.url import URL
from locust import FastHttpUser, constant_pacing, events, task

from meshproof.load.connect import ConnectTo, parse_connect_to

__all__ = ["IngressUser", "MeshproofShape"]


@events.init_command_line_parser.add_listener
def _ingress_options(parser: Any, **_: Any) -> None:
    parser.add_argument(
        "--connect-to",
        default="",
        env_var="MESHPROOF_LOAD_CONNECT_TO",
        help="connect here instead of the --host name: ADDR, ADDR:PORT or URLPORT:ADDR:PORT",
    )
    parser.add_argument(
        "--ca-file",
        default="",
        env_var="MESHPROOF_LOAD_CA_FILE",
        help="PEM CA bundle the gateway certificate is verified against (default: system CAs)",
    )
    parser.add_argument(
        "--ingress-path",
        default="/api/v1/",
        env_var="MESHPROOF_LOAD_INGRESS_PATH",
        help="path requested through the gateway",
    )
    parser.add_argument(
        "--user-rps",
        type=float,
        default=0.0,
        env_var="MESHPROOF_LOAD_USER_RPS",
        help="requests a second per user, paced (0: back to back)",
    )


record_requests()


class ConnectToPool(HTTPClientPool):
    """One client per URL host:port, each connected where ``connect_to`` says.

    The client's Host header and TLS server name stay the URL's host, so the
    gateway sees exactly what it would from DNS.
    """

    def __init__(self, connect_to: ConnectTo, **kw: Any) -> None:
        super().__init__(**kw)
        self.connect_to = connect_to

    def get_client(self, url: str | URL) -> HTTPClient:
        url = url if isinstance(url, URL) else URL(url)
        key = (url.host, url.port)
        if key not in self.clients:
            tls = url.scheme == "https"
            address, port = self.connect_to.address_for(url.host, url.port or (443 if tls else 80))
            default_port = 443 if tls else 80
            host_header = url.host if url.port in (None, default_port) else f"{url.host}:{url.port}"
            kw = dict(self.client_args)
            ssl_options = dict(kw.pop("ssl_options", None) or {})
            if tls:
                ssl_options["server_hostname"] = url.host
                kw["ssl_options"] = ssl_options
            self.clients[key] = HTTPClient(
                address, port=port, ssl=tls, headers={"Host": host_header}, **kw
            )
        return self.clients[key]


class IngressUser(FastHttpUser):
    """Requests the API through the ingress gateway, verifying its certificate."""

    insecure = False

    def __init__(self, environment: Any) -> None:
        options = environment.parsed_options
        ssl_options: dict[str, Any] = {}
        ca_file = getattr(options, "ca_file", "") if options else ""
        if ca_file:
            ssl_options["ca_certs"] = ca_file
        # A pool per user, as FastHttpUser makes by default, but one that connects
        # to the gateway's address rather than to what the name resolves to.
        self.client_pool = ConnectToPool(
            parse_connect_to(getattr(options, "connect_to", "") if options else ""),
            ssl_options=ssl_options,
            insecure=False,
            concurrency=self.concurrency,
            network_timeout=self.network_timeout,
            connection_timeout=self.connection_timeout,
        )
        super().__init__(environment)
        self.path = (getattr(options, "ingress_path", "") if options else "") or "/api/v1/"
        self.user_rps = float(getattr(options, "user_rps", 0.0) or 0.0) if options else 0.0

    def wait_time(self) -> float:
        """No wait, or the wait that keeps this user at ``--user-rps`` requests a second."""
        if self.user_rps <= 0:
            return 0.0
        return float(constant_pacing(1.0 / self.user_rps)(self))

    @task
    def api(self) -> None:
        self.client.get(self.path, name=self.path)
