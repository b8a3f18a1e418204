"""The bad-server judge and its reports, without a network: each expectation's pass, fail and can't-tell."""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

import pytest

from mtls_ref.shared.badservers import (
    ROWS,
    Activity,
    Expect,
    Observation,
    Stage,
    Status,
    judge,
    render_json,
    render_junit,
    render_table,
    row_named,
)


def seen(stage: Stage, **facts: object) -> Activity:
    return Activity(connections=(Observation(peer="127.0.0.1:1", stage=stage, **facts),))  # type: ignore[arg-type]


NOTHING = Activity()
REFUSED_BY_CLIENT = seen(Stage.HANDSHAKE_REFUSED, alert_from_client="unknown_ca")
REFUSED_BY_SERVER = seen(Stage.HANDSHAKE_REFUSED, alert_from_server="unknown_ca", cert_presented=True)
COMPLETED = seen(Stage.HANDSHAKE_COMPLETED, tls="TLSv1.3")
SERVED = seen(Stage.APPLICATION_DATA, tls="TLSv1.3", requests=1, cert_presented=True)


def test_every_row_says_what_a_correct_client_does() -> None:
    """Seventeen rows, unique names, each with the server's behaviour and the client's duty spelled out."""
    assert len({row.name for row in ROWS}) == len(ROWS) == 17
    assert all(row.server and row.must for row in ROWS)
    assert {row.expect for row in ROWS} == set(Expect)


@pytest.mark.parametrize(
    ("activity", "client_ok", "status"),
    [
        (SERVED, True, Status.PASS),
        (SERVED, None, Status.PASS),
        (SERVED, False, Status.FAIL),  # served, yet the client says it failed
        (COMPLETED, True, Status.FAIL),  # says success without a request reaching the server
        (REFUSED_BY_SERVER, False, Status.FAIL),
        (NOTHING, False, Status.FAIL),  # the control must connect
    ],
)
def test_a_control_passes_only_when_a_request_was_served(
    activity: Activity, client_ok: bool | None, status: Status
) -> None:
    """The good row: served and reported as such, nothing less."""
    assert judge(row_named("good"), activity, client_ok=client_ok).status is status


@pytest.mark.parametrize(
    ("activity", "client_ok", "status"),
    [
        (REFUSED_BY_CLIENT, False, Status.PASS),
        (REFUSED_BY_CLIENT, None, Status.PASS),
        (REFUSED_BY_CLIENT, True, Status.FAIL),  # refused on the wire, "success" on the terminal
        (COMPLETED, False, Status.PASS),  # refused after the handshake (hostname checked late)
        (COMPLETED, True, Status.FAIL),
        (COMPLETED, None, Status.INFORMATIONAL),
        (SERVED, False, Status.FAIL),  # a request went to a server it must refuse
        (NOTHING, False, Status.INFORMATIONAL),  # never connected: nothing shows it would refuse
        (NOTHING, True, Status.FAIL),
    ],
)
def test_a_bad_certificate_must_be_refused(
    activity: Activity, client_ok: bool | None, status: Status
) -> None:
    """wrong-name: a request sent is a failure whatever the client says; no connection is informational."""
    verdict = judge(row_named("wrong-name"), activity, client_ok=client_ok, client="exit ?")
    assert verdict.status is status, verdict


def test_a_client_refused_by_the_server_had_accepted_its_certificate() -> None:
    """Only a client past the server's certificate can be refused for its own: that is no refusal of it."""
    refused_for_no_cert = seen(Stage.HANDSHAKE_REFUSED, alert_from_server="certificate_required")
    verdict = judge(row_named("expired"), refused_for_no_cert, client_ok=False)
    assert verdict.status is Status.FAIL
    assert "accepted this server's certificate" in verdict.detail
    legacy = seen(Stage.HANDSHAKE_REFUSED, alert_from_server="protocol_version")
    assert judge(row_named("tls-1.0-1.1"), legacy, client_ok=False).status is Status.PASS


def test_not_checking_revocation_is_informational_not_broken() -> None:
    """revoked: a client that went through is told it does not check revocation, and is not failed."""
    verdict = judge(row_named("revoked"), SERVED, client_ok=True)
    assert verdict.status is Status.INFORMATIONAL
    assert "does not check revocation" in verdict.detail


def test_a_completed_legacy_handshake_fails_even_if_the_client_then_hangs_up() -> None:
    """tls-1.0-1.1: speaking TLS 1.0 at all is the failure."""
    activity = seen(Stage.HANDSHAKE_COMPLETED, tls="TLSv1")
    verdict = judge(row_named("tls-1.0-1.1"), activity, client_ok=False)
    assert verdict.status is Status.FAIL
    assert "TLSv1" in verdict.detail


@pytest.mark.parametrize(
    ("client_ok", "status"), [(False, Status.PASS), (True, Status.FAIL), (None, Status.INFORMATIONAL)]
)
def test_late_rejection_catches_a_client_that_calls_a_handshake_success(
    client_ok: bool | None, status: Status
) -> None:
    """The server refused after the client's Finished: only the client's own report can be wrong."""
    verdict = judge(row_named("late-rejection"), REFUSED_BY_SERVER, client_ok=client_ok)
    assert verdict.status is status
    if status is Status.FAIL:
        assert "reported success, but the server refused it (alert unknown_ca)" in verdict.detail


def test_no_alpn_overlap_needs_an_alpn_offer() -> None:
    """A client that offers no ALPN cannot lack an overlap: informational, whatever it did."""
    offered = seen(Stage.HANDSHAKE_REFUSED, alert_from_server="no_application_protocol", alpn_offered=("h2",))
    assert judge(row_named("no-alpn-overlap"), offered, client_ok=False).status is Status.PASS
    verdict = judge(row_named("no-alpn-overlap"), SERVED, client_ok=True)
    assert verdict.status is Status.INFORMATIONAL
    assert "offered no ALPN" in verdict.detail


def test_unavailable_rows_are_skipped_and_hung_clients_fail() -> None:
    """A row this OpenSSL cannot serve says why; a client past its deadline fails."""
    skipped = judge(row_named("rsa-1024"), NOTHING, client_ok=None, unavailable="OpenSSL 9 refuses")
    assert (skipped.status, skipped.detail) == (Status.SKIP, "OpenSSL 9 refuses")
    hung = judge(row_named("late-rejection"), REFUSED_BY_SERVER, client_ok=False, hung=True)
    assert hung.status is Status.FAIL
    assert "deadline" in hung.detail


def test_observations_round_trip_through_json() -> None:
    """What the server process writes is what the pytest plugin reads back."""
    observation = Observation(
        peer="127.0.0.1:5",
        stage=Stage.HANDSHAKE_REFUSED,
        alert_from_client="bad_certificate",
        alpn_offered=("http/1.1",),
    )
    assert Observation.from_json(json.loads(json.dumps(observation.to_json()))) == observation
    assert observation.describe() == "client refused: alert bad_certificate; no cert"


def test_reports_show_every_verdict() -> None:
    """Table, JSON and JUnit XML: informational is never counted as passed in any of them."""
    verdicts = [
        judge(row_named("good"), SERVED, client_ok=True, client="exit 0"),
        judge(row_named("revoked"), SERVED, client_ok=True, client="exit 0"),
        judge(row_named("wrong-name"), SERVED, client_ok=True, client="exit 0"),
        judge(row_named("rsa-1024"), NOTHING, client_ok=None, unavailable="cannot serve it here"),
    ]
    table = render_table(verdicts, command="curl {url}")
    assert table.splitlines()[0] == "$ curl {url}"
    assert table.splitlines()[-1] == "1 of 4 rows pass, 1 informational, 1 skipped; FAILING on 1: wrong-name"
    document = json.loads(render_json(verdicts))
    assert [row["verdict"] for row in document["rows"]] == ["pass", "informational", "FAIL", "skip"]
    suite = ET.fromstring(render_junit(verdicts, command="curl {url}"))
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "1", "2")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert cases["wrong-name"].find("failure") is not None
    skipped = cases["revoked"].find("skipped")
    assert skipped is not None
    assert str(skipped.get("message")).startswith("informational: the client does not check revocation")
