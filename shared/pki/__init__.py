"""Certificate tooling, the ``openssl genrsa / req / x509`` flow done with ``cryptography``.

``keys`` (keys and PEM files, atomic 0600 writes), ``authority`` (the CA and its
role profiles), ``revocation`` (CRLs), ``expiry`` (how near their end credentials
are, in words), ``inspect`` (describe and check for people),
``badset`` (the deliberately broken credentials) and ``cli`` (``mtls-certs``).
"""

from mtls_ref.shared.pki.authority import CertificateAuthority, IssuedFiles, LeafOptions, Profile, parse_san

__all__ = ["CertificateAuthority", "IssuedFiles", "LeafOptions", "Profile", "parse_san"]
