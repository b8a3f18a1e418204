"""Python HTTP clients nobody here wrote, as a command for ``mtls-server badservers --run``.

``python python_clients.py LIBRARY MODE URL CA CERT KEY CRL``: GET URL with
``requests`` or ``httpx``; MODE ``verify`` (trust CA only), ``verify-crl``
(also check the CRL, through an ``ssl.SSLContext``) or ``insecure``
(``verify=False``). Exit 0 on a 2xx answer, 1 on any error, printed.
"""

from __future__ import annotations

import ssl
import sys


def context(ca: str, cert: str, key: str, crl: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(cert, key)
    if crl is not None:
        ctx.load_verify_locations(cafile=crl)
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return ctx


def main(argv: list[str]) -> int:
    library, mode, url, ca, cert, key, crl = argv
    if library == "requests":
        import requests

        if mode == "verify-crl":
            raise SystemExit("requests takes no SSLContext through its public API; use verify or insecure")
        try:
            response = requests.get(
                url, verify=ca if mode == "verify" else False, cert=(cert, key), timeout=10
            )
        except requests.RequestException as exc:
            print(f"requests: {exc}")
            return 1
        return 0 if response.ok else 1
    import httpx

    if mode == "insecure":
        verify = ssl.create_default_context()
        verify.check_hostname = False
        verify.verify_mode = ssl.CERT_NONE
        verify.load_cert_chain(cert, key)
    else:
        verify = context(ca, cert, key, crl if mode == "verify-crl" else None)
    try:
        answer = httpx.get(url, verify=verify, timeout=10)
    except httpx.HTTPError as exc:
        print(f"httpx: {exc!r}")
        return 1
    return 0 if answer.is_success else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
