"""The flags that make a client nobody here wrote (openssl s_client, curl) present the test PKI."""

from __future__ import annotations

from mtls_ref.shared.pki.authority import IssuedFiles

from .pki import Pki


def s_client_credentials(pki: Pki, creds: IssuedFiles | None = None) -> list[str]:
    """openssl s_client flags presenting ``creds`` (default alice) with its chain, trusting the test CA."""
    creds = pki.client if creds is None else creds
    return [
        "-CAfile",
        str(pki.ca_cert),
        "-cert",
        str(creds.cert),
        "-cert_chain",
        str(creds.chain),
        "-key",
        str(creds.key),
    ]


def curl_with(curl: str, pki: Pki) -> list[str]:
    """curl trusting the test CA and presenting alice's chain and key."""
    return [
        curl,
        "--silent",
        "--show-error",
        "--cacert",
        str(pki.ca_cert),
        "--cert",
        str(pki.client.chain),
        "--key",
        str(pki.client.key),
    ]
