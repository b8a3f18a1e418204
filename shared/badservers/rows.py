"""The bad servers, as data: what each one does and what a correct client must do about it.

``mtls-server badservers`` serves every row at once (one real server per row,
on its own loopback port); the judge (:mod:`.judge`) compares what the row's
server recorded, and the client's own exit status, with the row's
:class:`Expect`. Nothing here does I/O: the pytest plugin and the reports read
the same table.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["ROWS", "BadServerRow", "Expect", "row_named"]


class Expect(enum.Enum):
    """What a correct client does against the row's server."""

    CONNECT = "connect"  # complete a request (the controls)
    REFUSE = "refuse"  # refuse the server: never send it a request, and report failure
    REPORT = "report-failure"  # the server refuses the client: report failure, never success


@dataclass(frozen=True, slots=True, kw_only=True)
class BadServerRow:
    name: str
    server: str  # what this row's server does, in a sentence
    must: str  # what a correct client does
    expect: Expect
    credential: str  # the bad set's server credential it presents (a manifest case, or "server")
    # A client that goes through anyway is reported with this as *informational*, not as
    # broken (revocation: a client given no way to check it cannot be blamed for not checking).
    lenient: str | None = None
    # The row's server refuses the handshake itself, so a completed one is the client's fault too.
    completed_is_failure: bool = False
    # Only a client that offers ALPN can lack an overlap: without an offer the row is informational.
    needs_alpn_offer: bool = False


ROWS: tuple[BadServerRow, ...] = (
    BadServerRow(
        name="good",
        server="a correct server: certificate for localhost from the set's CA; asks for a client "
        "certificate from that CA",
        must="connect, present its certificate, complete a request",
        expect=Expect.CONNECT,
        credential="server",
    ),
    BadServerRow(
        name="wrong-name",
        server="certificate for elsewhere.test, not localhost",
        must="refuse: the name does not match",
        expect=Expect.REFUSE,
        credential="server-wrong-name",
    ),
    BadServerRow(
        name="untrusted-root",
        server="certificate from a CA the client was not told to trust",
        must="refuse: unknown CA",
        expect=Expect.REFUSE,
        credential="server-untrusted",
    ),
    BadServerRow(
        name="expired",
        server="certificate that expired yesterday",
        must="refuse: expired",
        expect=Expect.REFUSE,
        credential="server-expired",
    ),
    BadServerRow(
        name="not-yet-valid",
        server="certificate valid from tomorrow",
        must="refuse: not yet valid",
        expect=Expect.REFUSE,
        credential="server-not-yet-valid",
    ),
    BadServerRow(
        name="missing-intermediate",
        server="sends its leaf without the intermediate",
        must="refuse: no chain to the CA (the intermediate is in no AIA and not in the CA file)",
        expect=Expect.REFUSE,
        credential="server-missing-intermediate",
    ),
    BadServerRow(
        name="self-signed",
        server="self-signed certificate for localhost",
        must="refuse: self-signed",
        expect=Expect.REFUSE,
        credential="server-self-signed",
    ),
    BadServerRow(
        name="server-auth-missing",
        server="certificate whose EKU is clientAuth only (no serverAuth)",
        must="refuse: not a server certificate (RFC 5280 §4.2.1.12)",
        expect=Expect.REFUSE,
        credential="server-client-eku",
    ),
    BadServerRow(
        name="cn-only",
        server="certificate with CN=localhost and no subjectAltName",
        must="refuse: names are matched in subjectAltName only (RFC 9525 §6.3; browsers and Go)",
        expect=Expect.REFUSE,
        credential="server-cn-only",
        lenient="the client matched the CN because there is no subjectAltName (RFC 6125 §6.4.4 allowed "
        "this fallback; RFC 9525 removed it)",
    ),
    BadServerRow(
        name="revoked",
        server="certificate on the CA's CRL (the client is given the CRL as {crl})",
        must="refuse: revoked",
        expect=Expect.REFUSE,
        credential="server-revoked",
        lenient="the client does not check revocation (give it {crl}, e.g. curl --crlfile)",
    ),
    BadServerRow(
        name="sha1-signature",
        server="certificate signed with SHA-1",
        must="refuse: SHA-1 signatures are forgeable (SHAttered, 2017)",
        expect=Expect.REFUSE,
        credential="server-sha1",
    ),
    BadServerRow(
        name="rsa-1024",
        server="certificate with an RSA-1024 key",
        must="refuse: RSA-1024 is too weak (NIST SP 800-131A)",
        expect=Expect.REFUSE,
        credential="server-rsa1024",
    ),
    BadServerRow(
        name="tls-1.0-1.1",
        server="speaks TLS 1.0 and 1.1 only",
        must="refuse: TLS 1.2 is the minimum (RFC 8996)",
        expect=Expect.REFUSE,
        credential="server",
        completed_is_failure=True,
    ),
    BadServerRow(
        name="no-alpn-overlap",
        server="speaks none of the ALPN protocols the client offers, and says so with a fatal "
        "no_application_protocol alert (RFC 7301 §3.2)",
        must="report failure (a client that offers no ALPN is not tested: informational)",
        expect=Expect.REPORT,
        credential="server",
        needs_alpn_offer=True,
    ),
    BadServerRow(
        name="late-rejection",
        server="TLS 1.3 only: names the client's CA in CertificateRequest, then refuses the client's "
        "certificate after the client's Finished",
        must="report failure on its first read, never success",
        expect=Expect.REPORT,
        credential="server",
    ),
    BadServerRow(
        name="unknown-ca-names",
        server="asks for a certificate from a CA the client has none for (its name in "
        "CertificateRequest) and refuses any other",
        must="report failure (sending its certificate anyway is allowed; it is shown)",
        expect=Expect.REPORT,
        credential="server",
    ),
    BadServerRow(
        name="no-cert-request",
        server="a correct server that does not ask for a client certificate",
        must="connect and complete a request without one (and say it was not asked)",
        expect=Expect.CONNECT,
        credential="server",
    ),
)


def row_named(name: str) -> BadServerRow:
    """The row called ``name``; a KeyError names the rows there are."""
    for row in ROWS:
        if row.name == name:
            return row
    raise KeyError(f"no bad-server row {name!r}; rows: {', '.join(r.name for r in ROWS)}")
