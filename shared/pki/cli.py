"""``mtls-certs``: the certificate walkthrough as a command (init, issue, sign, show, verify, demo).

This module is the command line itself (its parser and entry point); the
commands live in :mod:`~mtls_ref.shared.pki.cli_ca` (those that use the CA) and
:mod:`~mtls_ref.shared.pki.cli_files` (those on files), and what they share in
:mod:`~mtls_ref.shared.pki.cli_context`.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from mtls_ref.shared.core.cli_support import add_config_argument, run_cli
from mtls_ref.shared.core.config import KEY_TYPES
from mtls_ref.shared.pki.cli_ca import cmd_crl, cmd_init, cmd_issue, cmd_revoke, cmd_sign
from mtls_ref.shared.pki.cli_context import CA_PASSPHRASE_ENV
from mtls_ref.shared.pki.cli_files import cmd_badset, cmd_demo, cmd_export, cmd_show, cmd_verify

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtls-certs",
        description="Make and inspect the keys, CSRs and certificates of a small mTLS PKI. "
        "Every file is standard PEM that the openssl CLI reads.",
        epilog="Typical flow: mtls-certs init --intermediate; mtls-certs issue server server "
        "--san DNS:localhost; mtls-certs issue client alice; mtls-certs show certs/alice.pem",
    )
    add_config_argument(parser)
    parser.add_argument("--pki-dir", type=Path, help="PKI folder (overrides [pki] dir)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = sub.add_parser("init", help="create a self-signed root CA (and an intermediate)")
    init.add_argument(
        "--intermediate",
        action="store_true",
        help="add an intermediate CA that signs the leaves; leaves then ship a chain file",
    )
    init.add_argument("--common-name", help="root CA common name (overrides [pki] ca_common_name)")
    _key_options(init, days_help="CA validity in days (overrides [pki] ca_days)")
    init.set_defaults(func=cmd_init)

    issue = sub.add_parser(
        "issue", help="generate key, write CSR, have the CA sign it, write the certificate"
    )
    issue.add_argument("role", choices=["server", "client"], help="profile: EKU serverAuth or clientAuth")
    issue.add_argument(
        "name",
        help="common name, and the stem of the files (NAME.key, NAME.csr, NAME.pem): letters, digits, "
        "'.', '_', '-', up to 64 (for any other CN, sign a CSR with 'sign')",
    )
    issue.add_argument(
        "--san",
        action="append",
        default=[],
        metavar="TYPE:VALUE",
        help="subject alternative name: DNS:host, IP:addr, URI:spiffe://..., email:a@b (repeatable; "
        "no spaces or control characters, DNS a host name, optionally *.)",
    )
    issue.add_argument("--out-dir", type=Path, help="where to write (default: the PKI folder)")
    _key_options(issue, days_help="validity in days (overrides [pki] leaf_days); negative: already expired")
    _ca_passphrase_option(issue)
    _add_mistake_options(issue)
    issue.set_defaults(func=cmd_issue)

    _add_revocation_parsers(sub)

    sign = sub.add_parser("sign", help="sign a CSR made elsewhere (for example by 'openssl req -new')")
    sign.add_argument("csr", type=Path, help="PEM certificate signing request")
    sign.add_argument(
        "--profile",
        required=True,
        choices=["server", "client"],
        help="decides the extensions and the subject (its CN only); the CSR's requests are ignored",
    )
    sign.add_argument(
        "--san",
        action="append",
        default=[],
        metavar="TYPE:VALUE",
        help="a name to certify (repeatable); only these, unless --san-from-csr",
    )
    sign.add_argument(
        "--san-from-csr",
        action="store_true",
        help="also certify the SANs the CSR requests (they are printed for review)",
    )
    sign.add_argument(
        "--out",
        type=Path,
        help="certificate file (default: PEM on stdout); with an "
        "intermediate CA, OUT's '-chain' sibling gets leaf + intermediate",
    )
    sign.add_argument("--days", type=int, help="validity in days (overrides [pki] leaf_days)")
    sign.add_argument("--force", action="store_true", help="replace existing output files")
    _ca_passphrase_option(sign)
    sign.set_defaults(func=cmd_sign)

    _add_inspect_parsers(sub)

    export = sub.add_parser(
        "export", help="bundle a leaf's key, certificate and chain for browsers, Java, macOS, Windows"
    )
    export.add_argument("name", help="the leaf's name in the PKI folder (NAME.pem, NAME.key)")
    export.add_argument("--p12", action="store_true", required=True, help="write PKCS#12 (NAME.p12)")
    export.add_argument(
        "--passphrase-file",
        type=Path,
        help="the bundle's passphrase (first line); default: generate one and print it once",
    )
    export.add_argument("--out", type=Path, help="bundle file (default: NAME.p12 in the PKI folder)")
    export.add_argument("--force", action="store_true", help="replace an existing bundle")
    export.set_defaults(func=cmd_export)

    demo = sub.add_parser(
        "demo",
        help="the demo PKI from the config: CA + intermediate, 'server' and "
        "'client' leaves, and client.p12 for browsers; keeps whatever already exists",
    )
    demo.set_defaults(func=cmd_demo)
    return parser


def _add_mistake_options(issue: argparse.ArgumentParser) -> None:
    bad = issue.add_argument_group(
        "deliberate mistakes", "make a bad credential on purpose, to see how peers refuse it"
    )
    bad.add_argument("--not-before", type=_timestamp, metavar="ISO", help="validity start, e.g. 2030-01-01")
    bad.add_argument("--not-after", type=_timestamp, metavar="ISO", help="validity end, e.g. 2020-01-01")
    bad.add_argument("--eku", type=_ekus, metavar="LIST", help="EKUs instead of the role's, e.g. serverAuth")
    bad.add_argument("--no-eku", action="store_true", help="omit the extended key usage extension")
    bad.add_argument("--self-signed", action="store_true", help="sign with its own key instead of the CA")
    bad.add_argument("--ca", type=Path, metavar="DIR", help="sign with the CA in another PKI folder")


def _add_inspect_parsers(sub: Any) -> None:
    show = sub.add_parser("show", help="describe a certificate, chain, CSR or private key (no key material)")
    show.add_argument("file", type=Path)
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.add_argument("--passphrase-file", type=Path, help="to describe an encrypted key")
    show.set_defaults(func=cmd_show)

    verify = sub.add_parser("verify", help="check a certificate offline: chain, validity, purpose, key, SAN")
    verify.add_argument("cert", type=Path, help="certificate or chain file (leaf first)")
    verify.add_argument("--key", type=Path, help="check that this private key belongs to the certificate")
    verify.add_argument("--purpose", choices=["client", "server"], help="check the EKU fits this role")
    verify.add_argument("--ca", type=Path, help="trust anchor (default: the PKI's root CA)")
    verify.add_argument(
        "--crl", type=Path, help="check revocation against this CRL (default: the PKI's, if any)"
    )
    verify.add_argument("--passphrase-file", type=Path, help="passphrase of an encrypted --key")
    verify.set_defaults(func=cmd_verify)


def _add_revocation_parsers(sub: Any) -> None:
    revoke = sub.add_parser(
        "revoke", help="put a certificate on the CA's revocation list and rewrite the CRL"
    )
    revoke.add_argument("cert", type=Path, help="certificate (or chain: the first one is revoked)")
    _ca_passphrase_option(revoke)
    revoke.set_defaults(func=cmd_revoke)

    crl = sub.add_parser(
        "crl", help="(re)write the CRL from the revocation list (CRLs expire: [pki] crl_days)"
    )
    _ca_passphrase_option(crl)
    crl.set_defaults(func=cmd_crl)

    badset = sub.add_parser(
        "badset", help="write every bad client credential (and a good control) from a throwaway CA"
    )
    badset.add_argument("dir", type=Path, help="a new folder for the set (with manifest.json)")
    badset.set_defaults(func=cmd_badset)


def _key_options(parser: argparse.ArgumentParser, *, days_help: str) -> None:
    parser.add_argument("--key-type", choices=KEY_TYPES, help="key algorithm (overrides [pki] key_type)")
    parser.add_argument("--days", type=int, help=days_help)
    parser.add_argument(
        "--passphrase-file",
        type=Path,
        help="encrypt the new private key(s) (PKCS#8) with the first line of this file",
    )
    parser.add_argument("--force", action="store_true", help="replace existing files (never the default)")


def _ca_passphrase_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ca-passphrase-file",
        type=Path,
        help=f"passphrase of an encrypted CA key (else [pki] passphrase_file or ${CA_PASSPHRASE_ENV})",
    )


def _timestamp(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date such as 2030-01-01 or 2030-01-01T12:00"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


_EKU_NAMES = {
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "codeSigning": ExtendedKeyUsageOID.CODE_SIGNING,
    "emailProtection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
}


def _ekus(text: str) -> tuple[x509.ObjectIdentifier, ...]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in _EKU_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown EKU {', '.join(unknown) or text!r}; use {', '.join(_EKU_NAMES)}"
        )
    return tuple(_EKU_NAMES[n] for n in names)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mtls-certs``."""
    parser = build_parser()
    return run_cli(lambda args: int(args.func(args)), parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
