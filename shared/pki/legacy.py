"""Certificates signed with SHA-1, which ``cryptography`` refuses to make: for the bad-server set only.

Theory of operation
-------------------
``CertificateBuilder.sign`` raises ``UnsupportedAlgorithm`` for SHA-1 (cryptography
dropped it for X.509 signatures, as every CA did after SHAttered, 2017). A client
test needs one anyway: does the client still accept it? So the certificate is
built and signed as usual (SHA-256), and then re-signed here: the signature
algorithm is named twice in a certificate (RFC 5280 §4.1.1.2 in Certificate,
§4.1.2.3 inside TBSCertificate, and the two must match), so the TBSCertificate's
third element is swapped for the SHA-1 AlgorithmIdentifier, the new TBS is signed
with SHA-1 by the issuer's key (a raw signature, which cryptography still makes),
and the outer SEQUENCE is put together again. Only DER's tag-length-value
framing is needed for that (X.690 §8.1), nothing else is parsed.
"""

from __future__ import annotations

from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from mtls_ref.shared.core.errors import CertificateError
from mtls_ref.shared.pki.keys import PrivateKey

__all__ = ["resign_with_sha1"]

# AlgorithmIdentifier DER: ecdsa-with-SHA1 (1.2.840.10045.4.1, no parameters, RFC 5758 §3.2)
# and sha1WithRSAEncryption (1.2.840.113549.1.1.5, NULL parameters, RFC 3279 §2.2.1).
_ECDSA_SHA1: Final = bytes.fromhex("300906072a8648ce3d0401")
_RSA_SHA1: Final = bytes.fromhex("300d06092a864886f70d0101050500")
_SEQUENCE: Final = 0x30
_BIT_STRING: Final = 0x03


def _length(size: int) -> bytes:
    """A DER length: one byte below 128, else 0x80|count and the big-endian count bytes."""
    if size < 0x80:
        return bytes([size])
    body = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _length(len(content)) + content


def _elements(content: bytes) -> list[bytes]:
    """The encoded elements (tag, length and value each) one after another in ``content``."""
    out, offset = [], 0
    while offset < len(content):
        first = content[offset + 1]
        if first < 0x80:
            header, size = 2, first
        else:
            count = first & 0x7F
            header, size = 2 + count, int.from_bytes(content[offset + 2 : offset + 2 + count], "big")
        out.append(content[offset : offset + header + size])
        offset += header + size
    return out


def _value(element: bytes) -> bytes:
    first = element[1]
    header = 2 if first < 0x80 else 2 + (first & 0x7F)
    return element[header:]


def resign_with_sha1(cert: x509.Certificate, issuer_key: PrivateKey) -> x509.Certificate:
    """``cert`` with the same content, signed by ``issuer_key`` with SHA-1 (ECDSA or RSA keys)."""
    if isinstance(issuer_key, ec.EllipticCurvePrivateKey):
        algorithm = _ECDSA_SHA1
    elif isinstance(issuer_key, rsa.RSAPrivateKey):
        algorithm = _RSA_SHA1
    else:
        raise CertificateError(
            f"SHA-1 signatures need an ECDSA or RSA issuer key, not {type(issuer_key).__name__}"
        )
    fields = _elements(_value(cert.tbs_certificate_bytes))
    fields[2] = algorithm  # version [0], serialNumber, signature AlgorithmIdentifier, issuer, ...
    tbs = _tlv(_SEQUENCE, b"".join(fields))
    if isinstance(issuer_key, ec.EllipticCurvePrivateKey):
        signature = issuer_key.sign(tbs, ec.ECDSA(hashes.SHA1()))  # noqa: S303 - the point of this module
    else:
        signature = issuer_key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 - ditto
    der = _tlv(_SEQUENCE, tbs + algorithm + _tlv(_BIT_STRING, b"\x00" + signature))
    resigned = x509.load_der_x509_certificate(der)
    if resigned.public_bytes(Encoding.DER) != der:  # pragma: no cover - a framing bug would show here
        raise CertificateError("re-signing with SHA-1 produced a certificate that does not round-trip")
    return resigned
