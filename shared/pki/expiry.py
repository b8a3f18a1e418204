"""How close credentials are to the end of their validity, said in words.

``mtls-certs`` warns with these as it makes a CA or signs under one, and the
server puts them in its start-up banner, so an expired or nearly expired CA,
certificate or CRL is named where someone is looking, not only by ``/healthz``.
Pure functions: each takes ``now``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Final

from cryptography import x509

__all__ = ["EXPIRY_WARNING", "crl_warning", "expiry_warning", "left", "outlives_issuer"]

# Thirty days: the margin certbot renews at (renew_before_expiry), time enough to reissue and
# redeploy by hand before peers start refusing.
EXPIRY_WARNING: Final = dt.timedelta(days=30)


def left(delta: dt.timedelta) -> str:
    """A positive duration the way a person says it, to the nearest unit: "10 days", "5 hours"."""
    for unit, seconds in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if delta.total_seconds() >= seconds:
            count = round(delta.total_seconds() / seconds)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return "less than a minute"


def _when(moment: dt.datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def expiry_warning(
    what: str, cert: x509.Certificate, now: dt.datetime, *, soon: dt.timedelta = EXPIRY_WARNING
) -> str | None:
    """ "the root CA CN=x expired on ..." or "... expires in 3 days, on ...", or None when it has longer."""
    end = cert.not_valid_after_utc
    name = f"{what} {cert.subject.rfc4514_string()}"
    if end <= now:
        return f"{name} expired on {_when(end)}"
    if end - now <= soon:
        return f"{name} expires in {left(end - now)}, on {_when(end)}"
    return None


def crl_warning(
    crl: x509.CertificateRevocationList, now: dt.datetime, *, soon: dt.timedelta = EXPIRY_WARNING
) -> str | None:
    """The CRL is past its next update, or will be within ``soon``; None otherwise (or without one)."""
    due = crl.next_update_utc
    name = f"the CRL of {crl.issuer.rfc4514_string()}"
    if due is None:
        return None
    if due <= now:
        return f"{name} is out of date since {_when(due)} (its next update)"
    if due - now <= soon:
        return f"{name} is out of date in {left(due - now)}, on {_when(due)} (its next update)"
    return None


def outlives_issuer(leaf: x509.Certificate, issuers: Sequence[x509.Certificate]) -> str | None:
    """When ``leaf`` runs past the first of ``issuers`` (its CA chain) to expire: from then on no
    peer can verify it, whatever its own dates say. None when it ends in time."""
    if not issuers:
        return None
    first = min(issuers, key=lambda ca: ca.not_valid_after_utc)
    if leaf.not_valid_after_utc <= first.not_valid_after_utc:
        return None
    return (
        f"{leaf.subject.rfc4514_string()} runs until {_when(leaf.not_valid_after_utc)}, past the end of "
        f"its CA {first.subject.rfc4514_string()} on {_when(first.not_valid_after_utc)}: "
        "peers refuse it from then on"
    )
