"""The ``mtls_bad_servers`` fixture, used the way another project would: an example suite run by pytester."""

from __future__ import annotations

import pytest

EXAMPLE_SUITE = '''
import requests


def get(url, servers, verify=True):
    """The client under test: requests, configured as its users would."""
    try:
        verify = str(servers.ca) if verify else False
        answer = requests.get(url, verify=verify, cert=(str(servers.cert), str(servers.key)), timeout=10)
    except requests.RequestException:
        return False
    return answer.ok


def test_requests_against_every_bad_server(mtls_bad_servers):
    rows = mtls_bad_servers.rows
    verdicts = {row.name: row.judge(client_ok=get(row.url, mtls_bad_servers)) for row in rows}
    assert {name: v.detail for name, v in verdicts.items() if v.failed} == {}
    assert verdicts["revoked"].status.value == "informational"  # requests takes no CRL
    assert verdicts["late-rejection"].status.value == "pass"


def test_ask_a_row_what_the_client_did(mtls_bad_servers):
    row = mtls_bad_servers.row("expired")
    assert row.must == "refuse: expired"
    assert get(row.url, mtls_bad_servers) is False
    activity = row.observed()
    assert (activity.stage.name, activity.alert_from_client) == ("HANDSHAKE_REFUSED", "certificate_expired")


def test_deliberately_insecure(mtls_bad_servers):
    row = mtls_bad_servers.row("wrong-name")
    verdict = row.judge(client_ok=get(row.url, mtls_bad_servers, verify=False))
    assert not verdict.failed, verdict.detail
'''


@pytest.mark.interop
def test_bad_servers_fixture_judges_a_users_client(pytester: pytest.Pytester) -> None:
    """requests with verify= passes every row; with verify=False the wrong-name row fails, saying why."""
    pytester.makepyfile(test_example=EXAMPLE_SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=180)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: sent a request to a server it must refuse*"])
