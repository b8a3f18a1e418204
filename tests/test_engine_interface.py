"""The engine boundary holds: one place picks the engine, and a client never loads pyOpenSSL."""

from __future__ import annotations

import re
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from mtls_ref.shared.tls.connection import open_tls_stream
from mtls_ref.shared.tls.engines import ENGINES
from mtls_ref.shared.tls.stream import EngineTraits

PACKAGE = [Path(__file__).resolve().parent.parent / part for part in ("server", "client", "shared")]
ENGINE_NAME_TEST = re.compile(r"""(tls_engine|engine)\s*[!=]=\s*["'](openssl|stdlib)["']""")
SERVER_IMPORT = re.compile(r"\s*(from|import)\s+(mtls_ref\.server|\.\.\.?server)\b")


def test_no_module_but_the_engine_module_asks_which_engine_it_is() -> None:
    """Behaviour that differs by engine comes from EngineTraits or the adapters, never from the name."""
    offenders = [
        f"{path}:{number}"
        for folder in PACKAGE
        for path in folder.rglob("*.py")
        if path.name != "engines.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if ENGINE_NAME_TEST.search(line)
    ]
    assert offenders == []


def test_every_engine_states_its_traits() -> None:
    """Each configured engine has its traits, and they differ where the engines do."""
    assert set(ENGINES) == {"openssl", "stdlib"}
    assert all(isinstance(traits, EngineTraits) for traits in ENGINES.values())
    assert ENGINES["openssl"].sends_ca_names and not ENGINES["stdlib"].sends_ca_names


def test_the_client_never_loads_pyopenssl() -> None:
    """mtls-client and its tunnel use Python's ssl only; importing them leaves pyOpenSSL unloaded."""
    probe = "import sys, mtls_ref.client.cli, mtls_ref.client.tunnel; print('OpenSSL' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-P", "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False", done.stderr


def test_shared_never_imports_server() -> None:
    """The server's engine registers itself into shared/; shared/ imports nothing of server/."""
    shared = PACKAGE[2]
    offenders = [
        f"{path}:{number}"
        for path in shared.rglob("*.py")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if SERVER_IMPORT.match(line)
    ]
    assert offenders == []


async def test_a_context_without_an_adapter_is_refused_by_name() -> None:
    """A context type no engine registered gets a TypeError naming it, before any byte moves."""
    left, right = trio.socket.socketpair()
    try:
        with pytest.raises(TypeError, match=r"no TLS engine adapter is registered for bytes contexts"):
            open_tls_stream(trio.SocketStream(left), b"not a context", server_side=True)
    finally:
        left.close()
        right.close()


async def test_a_context_subclass_finds_its_engine() -> None:
    """An ssl.SSLContext subclass is served by the stdlib adapter, as an ssl.SSLContext is."""

    class OwnContext(ssl.SSLContext):
        pass

    left, right = trio.socket.socketpair()
    try:
        context = OwnContext(ssl.PROTOCOL_TLS_CLIENT)
        stream = open_tls_stream(
            trio.SocketStream(left), context, server_side=False, server_hostname="localhost"
        )
        assert type(stream).__name__ == "SocketTLSStream"
        stream.close_notify()
    finally:
        left.close()
        right.close()
