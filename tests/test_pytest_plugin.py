"""The pytest plugin, used the way another project would: an example suite run by pytester.

The accept / refuse / bad-set cases run from a built wheel in test_packaging; these are the rest.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mtls_ref.shared.testing.pytest_plugin import MtlsCA, MtlsServer

REPO = Path(__file__).resolve().parent.parent

EXAMPLE_SUITE = """
import json
import ssl
import time
import urllib.request

import pytest


def test_http_whoami_with_urllib(mtls_server, mtls_ca):
    ctx = mtls_ca.client_context(mtls_ca.issue_client("bob"))
    with urllib.request.urlopen(mtls_server.url + "/whoami", context=ctx, timeout=10) as response:
        assert json.load(response)["subject"] == "CN=bob"


def test_ca_file_path_for_tools_that_take_one(mtls_server, mtls_ca):
    bob = mtls_ca.issue_client("bob")
    ctx = ssl.create_default_context(cafile=str(mtls_ca.ca_cert_path))
    ctx.load_cert_chain(bob.chain_path, bob.key_path)
    with urllib.request.urlopen(mtls_server.url + "/whoami", context=ctx, timeout=10) as response:
        assert json.load(response)["subject"] == "CN=bob"


def test_allow_list(mtls_server_factory, mtls_ca):
    server = mtls_server_factory(allow=["CN:alice"])
    server.assert_refused(mtls_ca.client_context(mtls_ca.issue_client("mallory")), reason="forbidden")
    server.assert_accepted(mtls_ca.client_context(mtls_ca.issue_client("alice")))


def test_server_context_for_your_own_server(mtls_ca):
    ctx = mtls_ca.server_context()
    assert ctx.verify_mode.name == "CERT_REQUIRED"


def test_connections_wait_for_the_log_entry(mtls_server, mtls_ca):
    mtls_server.assert_accepted(mtls_ca.client_context(mtls_ca.issue_client("carol")))
    mtls_server.assert_refused(mtls_ca.client_context(None))
    accepted, refused = mtls_server.connections(wait_for=2)
    assert (accepted["outcome"], accepted["subject"]) == ("accepted", "CN=carol")
    assert refused["outcome"] == "rejected"


def test_connections_wait_is_bounded(mtls_server, mtls_ca):
    mtls_server.assert_accepted(mtls_ca.client_context(mtls_ca.issue_client("dave")))
    started = time.monotonic()
    with pytest.raises(AssertionError, match="logged 1 connection.s., not the 2 waited for: after 0.5s"):
        mtls_server.connections(wait_for=2, timeout=0.5)
    assert time.monotonic() - started < 5


def test_deliberately_wrong(mtls_server, mtls_ca):
    mtls_server.assert_accepted(mtls_ca.client_context(None))
"""


def test_plugin_example_suite(pytester: pytest.Pytester) -> None:
    """Fixtures work from an installed package: passing cases pass (connections(wait_for=n) returns the
    entries the server logs as each connection ends, or fails within its timeout), the wrong one fails
    clearly."""
    pytester.makepyfile(test_example=EXAMPLE_SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_deliberately_wrong*",
            "*AssertionError: mtls-ref server refused the client: the server requires a client certificate*",
        ]
    )


def test_docs_name_real_fixture_attributes_and_the_ca_file() -> None:
    """Every `mtls_ca.X` and `mtls_server.X` docs/pytest-plugin.md names exists, and among them
    is the CA file path that requests (verify=) and curl (--cacert) users need."""
    section = (REPO / "docs" / "pytest-plugin.md").read_text(encoding="utf-8")
    named = {
        (owner, attribute) for owner, attribute in re.findall(r"\b(mtls_ca|mtls_server)\.(\w+)", section)
    }
    classes = {"mtls_ca": MtlsCA, "mtls_server": MtlsServer}
    assert [f"{o}.{a}" for o, a in sorted(named) if not hasattr(classes[o], a)] == []
    assert ("mtls_ca", "ca_cert_path") in named
