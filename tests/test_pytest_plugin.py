"""The pytest plugin, used the way another project would: an example suite run by pytester.

The accept / refuse / bad-set cases run from a built wheel in test_packaging; these are the rest.
"""

from __future__ import annotations

import pytest

EXAMPLE_SUITE = """
import json
import urllib.request


def test_http_whoami_with_urllib(mtls_server, mtls_ca):
    ctx = mtls_ca.client_context(mtls_ca.issue_client("bob"))
    with urllib.request.urlopen(mtls_server.url + "/whoami", context=ctx, timeout=10) as response:
        assert json.load(response)["subject"] == "CN=bob"


def test_allow_list(mtls_server_factory, mtls_ca):
    server = mtls_server_factory(allow=["CN:alice"])
    server.assert_refused(mtls_ca.client_context(mtls_ca.issue_client("mallory")), reason="forbidden")
    server.assert_accepted(mtls_ca.client_context(mtls_ca.issue_client("alice")))


def test_server_context_for_your_own_server(mtls_ca):
    ctx = mtls_ca.server_context()
    assert ctx.verify_mode.name == "CERT_REQUIRED"


def test_deliberately_wrong(mtls_server, mtls_ca):
    mtls_server.assert_accepted(mtls_ca.client_context(None))
"""


def test_plugin_example_suite(pytester: pytest.Pytester) -> None:
    """Fixtures work from an installed package: passing cases pass, the wrong one fails clearly."""
    pytester.makepyfile(test_example=EXAMPLE_SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_deliberately_wrong*",
            "*AssertionError: mtls-ref server refused the client: the server requires a client certificate*",
        ]
    )
