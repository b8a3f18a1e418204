"""Certificate tooling, the ``openssl genrsa / req / x509`` flow done with ``cryptography``.

``keys`` (keys and PEM files, atomic 0600 writes), ``names`` (subjects, SANs,
CSRs), ``profiles`` (what a role's certificate carries), ``leaf_files`` (a
leaf's files, written all or none), ``authority`` (the CA, and self-signed
leaves), ``revocation`` (CRLs), ``expiry`` (how near their end credentials are,
in words), ``facts`` (what is true of a certificate, for both ``checks`` and
the runtime diagnosis), ``inspect`` and ``checks`` (``mtls-certs show`` and
``verify``), ``badset`` and ``badset_servers`` (the deliberately broken
credentials, client and server; ``legacy`` signs the SHA-1 one) and ``cli``
(``mtls-certs``).
"""

from mtls_ref.shared.pki.authority import CertificateAuthority, IssuedFiles, LeafOptions, Profile, parse_san

__all__ = ["CertificateAuthority", "IssuedFiles", "LeafOptions", "Profile", "parse_san"]
