"""A pytest plugin for integration-testing mutual TLS (loaded through the ``pytest11`` entry point).

Fixtures:

``mtls_ca``
    A throwaway CA (root + intermediate) in a temporary folder, with
    role-correct leaves: ``mtls_ca.issue_client("alice", sans=[...])``,
    ``mtls_ca.issue_server()``; each leaf has ``cert_path``, ``chain_path``,
    ``key_path``; ready contexts from ``mtls_ca.client_context(leaf)`` and
    ``mtls_ca.server_context(leaf)``; ``configure_trust(ctx)`` /
    ``leaf.configure_cert(ctx)`` in trustme's style; ``mtls_ca.ca_cert_path``,
    the root's PEM file, for tools that take a CA file (requests' ``verify=``,
    curl's ``--cacert``).

``mtls_server``
    Our server, started as a separate process on a free loopback port with the
    CA's server certificate, requiring client certificates from ``mtls_ca``.
    ``mtls_server.assert_accepted(ctx)`` / ``assert_refused(ctx, reason=...)``
    check what the server does with a client ``ssl.SSLContext``;
    ``mtls_server.url`` for HTTP clients; ``mtls_server.connections()`` the
    server's per-connection log entries, ``connections(wait_for=n)`` once there
    are n of them. ``mtls_server_factory(allow=[...])`` starts one with other
    ``[server]`` settings.

``mtls_bad_servers``
    Every bad *server* (``mtls-server badservers``) in one process, for testing
    your client: ``mtls_bad_servers.rows`` (each with ``url``, ``must``,
    ``expect``), ``ca`` / ``crl`` / ``cert`` / ``key`` to configure the client
    with; after your client ran against ``row.url``, ``row.observed()`` says what
    it did and ``row.judge(client_ok=...)`` gives the verdict (``pass``,
    ``FAIL``, ``informational``, ``skip``). One per test session.

The helpers are synchronous (stdlib ``ssl`` and ``socket``), so they work in
any test suite, trio or not.

The fixtures' machinery lives beside this module: ``ca`` (``MtlsCA``,
``MtlsLeaf``), ``server`` (``MtlsServer``, ``Verdict``), ``badset``
(``MtlsBadSet``) and ``bad_servers`` (``MtlsBadServers``); their classes are
importable from here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mtls_ref.shared.testing.bad_servers import (
    BadServerRow,
    MtlsBadServers,
    start_bad_servers,
    stop_bad_servers,
)
from mtls_ref.shared.testing.badset import MtlsBadSet
from mtls_ref.shared.testing.ca import MtlsCA, MtlsLeaf
from mtls_ref.shared.testing.server import MtlsServer, Verdict, start_server, stop_server

__all__ = ["BadServerRow", "MtlsBadServers", "MtlsBadSet", "MtlsCA", "MtlsLeaf", "MtlsServer", "Verdict"]


@pytest.fixture
def mtls_badset(tmp_path_factory: pytest.TempPathFactory) -> MtlsBadSet:
    """Every bad client credential from a throwaway CA; start a server on it with
    ``mtls_server_factory(**mtls_badset.server_settings())``."""
    return MtlsBadSet(tmp_path_factory.mktemp("mtls-badset"))


@pytest.fixture
def mtls_ca(tmp_path_factory: pytest.TempPathFactory) -> MtlsCA:
    """A throwaway CA with intermediate; issue leaves with ``issue_client`` / ``issue_server``."""
    return MtlsCA(tmp_path_factory.mktemp("mtls-ca"))


@pytest.fixture
def mtls_server_factory(
    mtls_ca: MtlsCA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., MtlsServer]]:
    """Start mtls-ref servers with extra ``[server]`` settings, e.g. ``allow=["CN:alice"]``."""
    started: list[MtlsServer] = []

    def start(**options: Any) -> MtlsServer:
        server = start_server(mtls_ca, tmp_path_factory.mktemp("mtls-server"), options)
        started.append(server)
        return server

    yield start
    for server in started:
        stop_server(server)


@pytest.fixture
def mtls_server(mtls_server_factory: Callable[..., MtlsServer]) -> MtlsServer:
    """Our mTLS server on a free loopback port, trusting ``mtls_ca``."""
    return mtls_server_factory()


@pytest.fixture(scope="session")
def mtls_bad_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MtlsBadServers]:
    """Every bad server on its own loopback port, to test your mTLS client against; see the module doc."""
    servers = start_bad_servers(tmp_path_factory.mktemp("mtls-bad-servers"))
    yield servers
    stop_bad_servers(servers)
