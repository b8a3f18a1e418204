"""What a certificate names: subjects, subjectAltNames, and the CSR that asks for them.

The ``openssl req -new`` step of the docs' flow (:func:`make_csr`), and the
text forms the CLI and the config take (``DNS:localhost``, ``URI:spiffe://...``).
A CSR only *asks*: what is certified is decided by the signer's profile
(:mod:`~mtls_ref.shared.pki.profiles`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

from mtls_ref.shared.core.errors import CertificateError
from mtls_ref.shared.pki.keys import PrivateKey, signature_hash
from mtls_ref.shared.pki.san_rules import text_problem, value_problem

__all__ = ["ca_common_name", "key_identifier", "make_csr", "name_for", "parse_san", "requested_sans"]

_SAN_KINDS: Final = {"dns": "DNS", "ip": "IP", "uri": "URI", "email": "email"}


def parse_san(text: str) -> x509.GeneralName:
    """``DNS:localhost``, ``IP:127.0.0.1``, ``URI:spiffe://td/wl``, ``email:a@b`` -> GeneralName.

    The value must follow :mod:`~mtls_ref.shared.pki.san_rules`; the error names the rule it breaks.
    """
    kind, sep, value = text.partition(":")
    kind = kind.strip().lower()
    if not sep or not value:
        raise CertificateError(f"SAN {text!r} needs a type prefix: DNS:, IP:, URI: or email:")
    if kind not in _SAN_KINDS:
        raise CertificateError(f"SAN {text!r}: unknown type {kind!r}; use DNS:, IP:, URI: or email:")
    problem = text_problem(text) or value_problem(_SAN_KINDS[kind], value)
    if problem is not None:
        raise CertificateError(f"SAN {text!r} {problem}")
    if kind == "ip":
        try:
            return x509.IPAddress(ipaddress.ip_address(value))
        except ValueError:
            raise CertificateError(f"SAN {text!r}: {value!r} is not an IP address") from None
    try:
        if kind == "dns":
            return x509.DNSName(value)
        if kind == "uri":
            return x509.UniformResourceIdentifier(value)
        return x509.RFC822Name(value)
    except ValueError as exc:  # cryptography's own checks (an email it cannot parse)
        raise CertificateError(f"SAN {text!r} is refused by the X.509 library: {exc}") from exc


def key_identifier(public_key: CertificatePublicKeyTypes) -> str:
    """The first 4 bytes of the subject key identifier (RFC 5280 §4.2.1.2 method 1), as 8 hex digits."""
    return x509.SubjectKeyIdentifier.from_public_key(public_key).digest[:4].hex().upper()


def ca_common_name(template: str, public_key: CertificatePublicKeyTypes) -> str:
    """A CA's common name; ``{key_id}`` in the template becomes :func:`key_identifier`.

    The default name carries it, so two CAs made with the defaults never share a
    name: a peer that trusts one and is shown the other says "different key", not
    "same CA".
    """
    return template.replace("{key_id}", key_identifier(public_key))


def name_for(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def make_csr(
    key: PrivateKey, common_name: str, sans: Sequence[x509.GeneralName] = ()
) -> x509.CertificateSigningRequest:
    """The ``openssl req -new`` step: a request signed by the key it names."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(name_for(common_name))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(key, signature_hash(key))


def requested_sans(csr: x509.CertificateSigningRequest) -> list[x509.GeneralName]:
    """The subjectAltNames a CSR asks for (none when it has no such extension)."""
    try:
        ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(ext.value)
