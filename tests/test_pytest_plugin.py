"""The pytest plugin, used the way another project would: an example suite run by pytester."""

from __future__ import annotations

import pytest

EXAMPLE_SUITE = """
import json
import urllib.request


def test_good_client_is_accepted(mtls_server, mtls_ca):
    alice = mtls_ca.issue_client("alice", sans=["URI:spiffe://example.test/alice"])
    verdict = mtls_server.assert_accepted(mtls_ca.client_context(alice))
    assert "spiffe://example.test/alice" in verdict.greeting


def test_missing_certificate_is_refused(mtls_server, mtls_ca):
    mtls_server.assert_refused(mtls_ca.client_context(None), reason="requires a client certificate")


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


def test_bad_set_is_refused(mtls_server_factory, mtls_badset):
    server = mtls_server_factory(**mtls_badset.server_settings())
    for case in ("good", "expired", "untrusted-ca", "revoked", "not-allowed"):
        verdict = server.check(mtls_badset.client_context(case))
        assert verdict.accepted is (mtls_badset.expectation(case) == "accepted"), (case, verdict)


def test_deliberately_wrong(mtls_server, mtls_ca):
    mtls_server.assert_accepted(mtls_ca.client_context(None))
"""


def test_plugin_example_suite(pytester: pytest.Pytester) -> None:
    """Fixtures work from an installed package: passing cases pass, the wrong one fails clearly."""
    pytester.makepyfile(test_example=EXAMPLE_SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_deliberately_wrong*",
            "*AssertionError: mtls-ref server refused the client: the server requires a client certificate*",
        ]
    )
