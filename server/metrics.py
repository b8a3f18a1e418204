"""What the status port reports: Prometheus metrics (through ``prometheus_client``) and readiness.

Each server has its own registry (tests and embedders run several in one
process). Labels stay bounded: a connection's ``reason`` label is the code its
record was decided with (:class:`~mtls_ref.server.record.Code`; the alert for
a TLS refusal), never a search of the human wording.
Expiry figures are computed when scraped, from what the server has loaded, so a
reload shows at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .record import ConnectionRecord

__all__ = ["Credentials", "ServerMetrics"]

# A full mTLS handshake on loopback takes about a millisecond; a slow client or a
# stalled one up to handshake_timeout (10 s by default).
HANDSHAKE_BUCKETS: Final = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """What readiness and the expiry gauges look at: the credentials the server has loaded now."""

    server_cert: x509.Certificate
    trust_anchors: tuple[x509.Certificate, ...]
    crls: tuple[x509.CertificateRevocationList, ...]

    def problems(self, now: dt.datetime) -> list[str]:
        """Why the server should not be called ready (empty: it is)."""
        found = []
        if self.server_cert.not_valid_after_utc <= now:
            ended = self.server_cert.not_valid_after_utc
            found.append(f"the server certificate expired on {ended:%Y-%m-%d}")
        if not self.trust_anchors:
            found.append("no client CA is loaded")
        found += [
            f"the CA {ca.subject.rfc4514_string()} expired on {ca.not_valid_after_utc:%Y-%m-%d}"
            for ca in self.trust_anchors
            if ca.not_valid_after_utc <= now
        ]
        found += [
            f"the CRL of {crl.issuer.rfc4514_string()} is out of date since {crl.next_update_utc:%Y-%m-%d}"
            for crl in self.crls
            if crl.next_update_utc is not None and crl.next_update_utc <= now
        ]
        return found


def _seconds_left(when: dt.datetime | None, now: dt.datetime) -> float:
    return float("nan") if when is None else (when - now).total_seconds()


class ServerMetrics:
    """The server's counters, histogram and gauges, in a registry of its own."""

    def __init__(self, *, active: Callable[[], int], credentials: Callable[[], Credentials]) -> None:
        self.registry = CollectorRegistry()
        self._credentials = credentials
        self.connections = Counter(
            "mtls_connections",
            "Connections by how they ended: outcome, and a short reason code",
            ["outcome", "reason"],
            registry=self.registry,
        )
        self.alerts = Counter(
            "mtls_alerts_sent", "TLS alerts the server sent, by name", ["alert"], registry=self.registry
        )
        self.forwarded = Counter(
            "mtls_forwarded_bytes",
            "Bytes relayed in forward mode, by direction",
            ["direction"],
            registry=self.registry,
        )
        self.requests = Counter(
            "mtls_http_requests",
            "HTTP requests served, by protocol (http: HTTP/1.1, h2: HTTP/2)",
            ["protocol"],
            registry=self.registry,
        )
        self.handshake = Histogram(
            "mtls_handshake_seconds",
            "Time from accept to the end of the TLS handshake, completed or failed",
            buckets=HANDSHAKE_BUCKETS,
            registry=self.registry,
        )
        Gauge("mtls_active_connections", "Connections open now", registry=self.registry).set_function(
            lambda: float(active())
        )
        # Seconds, not days: Prometheus wants base units (promtool check metrics rejects a _days
        # suffix), and alert rules divide by 86400 where a person reads them.
        expiry = Gauge(
            "mtls_expiry_seconds",
            "Seconds until the server certificate, each CA, and each CRL's next update expire"
            " (negative once past)",
            ["what", "subject"],
            registry=self.registry,
        )
        self._expiry = expiry
        # The children of the labelled counters, per label tuple: ``.labels()`` validates and
        # locks on every call, and this runs once per connection. The label sets are bounded
        # (outcomes x codes, alert names), so these stay small.
        self._connection_children: dict[tuple[str, str], Counter] = {}
        self._alert_children: dict[str, Counter] = {}

    def record(self, record: ConnectionRecord) -> None:
        """Count one finished connection (called once per connection: keep it cheap)."""
        key = (record.outcome.value, record.label)
        child = self._connection_children.get(key)
        if child is None:
            child = self._connection_children[key] = self.connections.labels(*key)
        child.inc()
        alert = record.alert
        if alert and alert != "none":
            alert_child = self._alert_children.get(alert)
            if alert_child is None:
                alert_child = self._alert_children[alert] = self.alerts.labels(alert)
            alert_child.inc()
        if record.handshake_seconds is not None:
            self.handshake.observe(record.handshake_seconds)
        if record.requests and record.protocol in ("http", "h2"):
            self.requests.labels(record.protocol).inc(record.requests)
        if record.forwarded is not None:
            self.forwarded.labels("to_backend").inc(record.forwarded[0])
            self.forwarded.labels("to_client").inc(record.forwarded[1])

    def exposition(self) -> bytes:
        """The Prometheus text format, expiry gauges brought up to date first."""
        now = dt.datetime.now(dt.UTC)
        creds = self._credentials()
        self._expiry.clear()
        subject = creds.server_cert.subject.rfc4514_string()
        self._expiry.labels("server_certificate", subject).set(
            _seconds_left(creds.server_cert.not_valid_after_utc, now)
        )
        for ca in creds.trust_anchors:
            self._expiry.labels("ca", ca.subject.rfc4514_string()).set(
                _seconds_left(ca.not_valid_after_utc, now)
            )
        for crl in creds.crls:
            self._expiry.labels("crl_next_update", crl.issuer.rfc4514_string()).set(
                _seconds_left(crl.next_update_utc, now)
            )
        return generate_latest(self.registry)

    def readiness(self) -> list[str]:
        return self._credentials().problems(dt.datetime.now(dt.UTC))
