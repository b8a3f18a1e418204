"""The engine boundary holds: one place picks the engine, and a client never loads pyOpenSSL."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from mtls_ref.shared.tls.engines import ENGINES
from mtls_ref.shared.tls.stream import EngineTraits

PACKAGE = [Path(__file__).resolve().parent.parent / part for part in ("server", "client", "shared")]
ENGINE_NAME_TEST = re.compile(r"""(tls_engine|engine)\s*[!=]=\s*["'](openssl|stdlib)["']""")


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
