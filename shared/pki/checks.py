"""``mtls-certs verify``: check a certificate offline, as a peer would, each failure with its fix.

``check_certificate`` runs every check (chain to a trust anchor, the chain the
file would send, validity, purpose, revocation, key match, SANs) and never
stops at the first failure: a person fixing a certificate wants the whole
list. The facts behind the checks come from :mod:`.facts`, which the runtime
diagnosis reads too, so this tool and a refusing server name the same cause.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509

from mtls_ref.shared.pki.facts import (
    SentIssuer,
    Timing,
    chain_to_anchor,
    key_matches,
    purpose_fit,
    revocation,
    sent_issuer,
    validity,
)
from mtls_ref.shared.pki.inspect import san_names
from mtls_ref.shared.pki.keys import PrivateKey, utcnow

__all__ = ["Check", "check_certificate"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """One verification step: what was checked, whether it passed, and the fix if not."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        return f"{mark} {self.name}: {self.detail}" + (f" -> {self.fix}" if self.fix else "")


def check_certificate(
    chain: Sequence[x509.Certificate],
    *,
    trust: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate] = (),
    key: PrivateKey | None = None,
    purpose: str | None = None,
    crls: Sequence[x509.CertificateRevocationList] = (),
    now: dt.datetime | None = None,
) -> list[Check]:
    """Check a leaf (``chain[0]``) against trust anchors; never stops at the first failure."""
    now = now or utcnow()
    leaf = chain[0]
    checks = [_check_chain(leaf, [*chain[1:], *intermediates], trust, now)]
    checks.append(_check_sent_chain(chain, trust))
    checks.append(_check_validity(leaf, now))
    if purpose is not None:
        checks.append(_check_purpose(leaf, purpose))
    if crls:
        checks.append(_check_revocation(leaf, crls))
    if key is not None:
        checks.append(
            Check(name="key", ok=True, detail="private key matches the certificate")
            if key_matches(leaf, key)
            else Check(
                name="key",
                ok=False,
                detail="private key does not match the certificate's public key",
                fix="pass the key that was generated with this certificate's CSR",
            )
        )
    sans = san_names(leaf.extensions)
    checks.append(
        Check(name="subjectAltName", ok=True, detail=", ".join(sans))
        if sans
        else Check(
            name="subjectAltName",
            ok=False,
            detail="absent; modern clients ignore the CN",
            fix="reissue with --san DNS:<host> (server) or --san URI:/email: (client)",
        )
    )
    return checks


def _check_chain(
    leaf: x509.Certificate,
    pool: Sequence[x509.Certificate],
    trust: Sequence[x509.Certificate],
    now: dt.datetime,
) -> Check:
    """The path OpenSSL would build: from the leaf through the sent and known CAs to a valid anchor."""
    path = chain_to_anchor(leaf, pool=pool, trust=trust)
    if path.anchor is not None:
        anchor = validity(path.anchor, now=now)
        if anchor.timing is Timing.EXPIRED:
            return Check(
                name="chain",
                ok=False,
                detail=f"trust anchor expired on {anchor.not_after:%Y-%m-%d}",
                fix="create a new CA with 'mtls-certs init' and reissue",
            )
        names = [c.subject.rfc4514_string() for c in (*path.walked, path.anchor)]
        return Check(name="chain", ok=True, detail=" <- ".join(names))
    trusted = "; ".join(a.subject.rfc4514_string() for a in trust)
    issuer = path.stuck_at.issuer.rfc4514_string()
    return Check(
        name="chain",
        ok=False,
        detail=f"issued by {issuer!r}, which does not chain to the trusted CA ({trusted})",
        fix="issue the certificate from the configured CA, or include the missing intermediate in the file",
    )


def _check_sent_chain(chain: Sequence[x509.Certificate], trust: Sequence[x509.Certificate]) -> Check:
    """What a peer receives is this file: it must carry the intermediate the trust anchor needs."""
    sent = sent_issuer(chain, trust)
    if sent is SentIssuer.NOT_NEEDED:
        return Check(
            name="sent chain", ok=True, detail="issued directly by the trust anchor; nothing else to send"
        )
    if sent is SentIssuer.SENT:
        return Check(
            name="sent chain", ok=True, detail=f"the file carries the issuer ({len(chain) - 1} CA cert)"
        )
    return Check(
        name="sent chain",
        ok=False,
        detail=f"the file holds the leaf but not its issuer {chain[0].issuer.rfc4514_string()!r}",
        fix="present the NAME-chain.pem file (leaf + intermediate), or peers cannot build the path",
    )


def _check_revocation(leaf: x509.Certificate, crls: Sequence[x509.CertificateRevocationList]) -> Check:
    status = revocation(leaf, crls)
    if not status.issuer_has_crl:
        return Check(
            name="revocation",
            ok=False,
            detail=f"no CRL from {leaf.issuer.rfc4514_string()!r}",
            fix="servers that check CRLs will refuse it: write one with 'mtls-certs crl'",
        )
    if status.revoked_at is not None:
        return Check(
            name="revocation",
            ok=False,
            detail=f"revoked on {status.revoked_at:%Y-%m-%d %H:%M} UTC",
            fix="issue a new certificate: a revoked one cannot be reinstated",
        )
    return Check(name="revocation", ok=True, detail="not on the issuer's CRL")


def _check_validity(leaf: x509.Certificate, now: dt.datetime) -> Check:
    period = validity(leaf, now=now)
    if period.timing is Timing.VALID:
        left = f"until {period.not_after:%Y-%m-%d} ({period.days_left} days left)"
        return Check(name="validity", ok=True, detail=left)
    if period.timing is Timing.NOT_YET_VALID:
        detail = f"not valid before {period.not_before:%Y-%m-%d %H:%M:%S} UTC"
        fix = "check the clocks, or reissue with a start time in the past"
    else:
        detail = f"expired on {period.not_after:%Y-%m-%d %H:%M:%S} UTC"
        fix = "reissue it ('mtls-certs issue ... --days N')"
    return Check(name="validity", ok=False, detail=detail, fix=fix)


def _check_purpose(leaf: x509.Certificate, purpose: str) -> Check:
    fit = purpose_fit(leaf, purpose)
    if fit.is_ca:
        return Check(
            name="purpose",
            ok=False,
            detail=f"a CA certificate ({fit.basic_constraints}), not a leaf",
            fix=f"issue a {purpose} leaf with 'mtls-certs issue {purpose} NAME'",
        )
    if fit.ekus is None:
        return Check(name="purpose", ok=True, detail=f"no EKU extension: any purpose, including {fit.wanted}")
    if not fit.lacks_eku:
        return Check(name="purpose", ok=True, detail=f"EKU has {fit.wanted}")
    return Check(
        name="purpose",
        ok=False,
        detail=f"EKU is {', '.join(fit.ekus)}, lacks {fit.wanted}",
        fix=f"reissue with 'mtls-certs issue {purpose} ...' or sign with --profile {purpose}",
    )
