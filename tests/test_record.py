"""A connection's end as data: the metric label comes from the decision's code, never from its words."""

from __future__ import annotations

import json
import re

from mtls_ref.server.log import EventLog
from mtls_ref.server.metrics import Credentials, ServerMetrics
from mtls_ref.server.record import Code, ConnectionRecord, ConnectionReport, Outcome


def not_scraped() -> Credentials:
    raise AssertionError("the expiry gauges are not read in this test")


def test_the_label_is_the_code_or_the_alert_of_a_tls_refusal() -> None:
    """A TLS refusal is labelled by the alert that went out (not-tls when none did); the rest by code."""
    assert Code.TLS_REFUSAL.label("unknown_ca") == "unknown_ca"
    assert Code.TLS_REFUSAL.label("none") == "not-tls"
    assert Code.PER_SOURCE_LIMIT.label("unknown_ca") == "per-source-limit"


def test_one_report_writes_the_line_and_counts_it_whatever_the_words() -> None:
    """ConnectionReport logs the record and counts it once; rewording the reason changes no label."""
    lines: list[str] = []
    metrics = ServerMetrics(active=lambda: 0, credentials=not_scraped)
    report = ConnectionReport(EventLog("json", lines.append), metrics.record)
    for words in ("the handshake budget was full", "reworded entirely"):
        record = ConnectionRecord(peer="127.0.0.1:1")
        record.decide(Outcome.DROPPED, Code.HANDSHAKE_BUDGET, words)
        report(record)
    (entry, _) = (json.loads(line) for line in lines)
    assert entry["outcome"] == "dropped" and entry["code"] == "handshake-budget"
    value = metrics.registry.get_sample_value(
        "mtls_connections_total", {"outcome": "dropped", "reason": "handshake-budget"}
    )
    assert value == 2.0


def test_a_list_in_the_text_log_splits_back_into_its_items() -> None:
    """presented= and sans= in the text format: subjects and SANs may hold ',' themselves, so such a
    list is written as its JSON array (quoted as a whole), and reading it back gives the same items;
    a list whose items hold no ',' stays readable, joined with ','."""
    lines: list[str] = []
    subjects = ["CN=alice,O=Acme\\, Inc.", "CN=Intermediate CA,O=Acme\\, Inc."]
    log = EventLog("text", lines.append)
    log.event(
        "connection", presented=subjects, sans=["URI:spiffe://a,b"], addresses=["127.0.0.1:1", "[::1]:1"]
    )
    (line,) = lines
    fields = dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line))
    assert json.loads(json.loads(fields["presented"])) == subjects
    assert json.loads(json.loads(fields["sans"])) == ["URI:spiffe://a,b"]
    assert fields["addresses"] == "127.0.0.1:1,[::1]:1"
