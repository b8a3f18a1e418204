"""``mtls-certs``: the certificate walkthrough as a command (init, issue, sign, show, verify, demo)."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mtls_ref.shared.core.cli_support import add_config_argument, run_cli
from mtls_ref.shared.core.config import KEY_TYPES, Config, PKIConfig, load_config
from mtls_ref.shared.core.errors import CertificateError
from mtls_ref.shared.pki.authority import (
    CertificateAuthority,
    IssuedFiles,
    LeafOptions,
    Profile,
    check_file_name,
    issue_self_signed,
    parse_san,
    requested_sans,
)
from mtls_ref.shared.pki.badset import write_badset
from mtls_ref.shared.pki.bundle import generate_passphrase, write_bundle
from mtls_ref.shared.pki.checks import check_certificate
from mtls_ref.shared.pki.expiry import expiry_warning, outlives_issuer
from mtls_ref.shared.pki.inspect import (
    describe_certificate,
    describe_file,
    format_san,
    render_report,
)
from mtls_ref.shared.pki.keys import (
    atomic_write,
    load_certificates,
    load_csr,
    load_private_key,
    pem,
    read_passphrase,
    utcnow,
)
from mtls_ref.shared.pki.revocation import load_crls, revoke, write_crl
from mtls_ref.shared.pki.san_rules import general_name_problem

__all__ = ["main"]

CA_PASSPHRASE_ENV = "MTLS_CA_PASSPHRASE"  # noqa: S105 - a variable name, not a secret
DEMO_SERVER_SANS = ("DNS:localhost", "IP:127.0.0.1", "IP:::1")
DEMO_CLIENT_SANS = ("URI:spiffe://mtls-ref.test/demo-client", "email:demo-client@mtls-ref.test")


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
    init.set_defaults(func=_cmd_init)

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
    issue.set_defaults(func=_cmd_issue)

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
    sign.set_defaults(func=_cmd_sign)

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
    export.set_defaults(func=_cmd_export)

    demo = sub.add_parser(
        "demo",
        help="the demo PKI from the config: CA + intermediate, 'server' and "
        "'client' leaves, and client.p12 for browsers; keeps whatever already exists",
    )
    demo.set_defaults(func=_cmd_demo)
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
    show.set_defaults(func=_cmd_show)

    verify = sub.add_parser("verify", help="check a certificate offline: chain, validity, purpose, key, SAN")
    verify.add_argument("cert", type=Path, help="certificate or chain file (leaf first)")
    verify.add_argument("--key", type=Path, help="check that this private key belongs to the certificate")
    verify.add_argument("--purpose", choices=["client", "server"], help="check the EKU fits this role")
    verify.add_argument("--ca", type=Path, help="trust anchor (default: the PKI's root CA)")
    verify.add_argument(
        "--crl", type=Path, help="check revocation against this CRL (default: the PKI's, if any)"
    )
    verify.add_argument("--passphrase-file", type=Path, help="passphrase of an encrypted --key")
    verify.set_defaults(func=_cmd_verify)


def _add_revocation_parsers(sub: Any) -> None:
    revoke = sub.add_parser(
        "revoke", help="put a certificate on the CA's revocation list and rewrite the CRL"
    )
    revoke.add_argument("cert", type=Path, help="certificate (or chain: the first one is revoked)")
    _ca_passphrase_option(revoke)
    revoke.set_defaults(func=_cmd_revoke)

    crl = sub.add_parser(
        "crl", help="(re)write the CRL from the revocation list (CRLs expire: [pki] crl_days)"
    )
    _ca_passphrase_option(crl)
    crl.set_defaults(func=_cmd_crl)

    badset = sub.add_parser(
        "badset", help="write every bad client credential (and a good control) from a throwaway CA"
    )
    badset.add_argument("dir", type=Path, help="a new folder for the set (with manifest.json)")
    badset.set_defaults(func=_cmd_badset)


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


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _config(args: argparse.Namespace) -> Config:
    overrides = {"pki": {"dir": args.pki_dir, "key_type": getattr(args, "key_type", None)}}
    return load_config(args.config, overrides=overrides)


def _load_ca(config: Config, args: argparse.Namespace) -> CertificateAuthority:
    file = args.ca_passphrase_file or config.pki.passphrase_file
    passphrase = read_passphrase(file, env_var=CA_PASSPHRASE_ENV)
    return CertificateAuthority.load(config.pki, passphrase=passphrase)


def _warn_about_ca(ca: CertificateAuthority, now: dt.datetime) -> bool:
    """Warn on stderr for each CA certificate of ``ca`` that has expired or expires soon; True when
    one has already expired (then every leaf under it is refused, so nothing more needs saying)."""
    expired = False
    for what, cert in (("the root CA", ca.root), *(("the intermediate CA", c) for c in ca.chain)):
        warning = expiry_warning(what, cert, now)
        if warning is None:
            continue
        ended = cert.not_valid_after_utc <= now
        expired = expired or ended
        consequence = "no peer verifies what it signs" if ended else "what it signs stops verifying then"
        print(
            f"warning: {warning}: {consequence}; make a new CA ('mtls-certs init --force --days N') "
            "and reissue its leaves",
            file=sys.stderr,
        )
    return expired


def _warn_about_leaf(cert: x509.Certificate, ca: CertificateAuthority, now: dt.datetime) -> None:
    """The CA's warnings, and whether ``cert`` outlives it (said only while the CA is still valid)."""
    if _warn_about_ca(ca, now):
        return
    outlives = outlives_issuer(cert, [ca.root, *ca.chain])
    if outlives is not None:
        print(f"warning: {outlives}; pass a shorter --days, or renew the CA first", file=sys.stderr)


def _new_key_passphrase(args: argparse.Namespace) -> bytes | None:
    file = args.passphrase_file
    return read_passphrase(file, env_var=None) if file is not None else None


def _cmd_init(args: argparse.Namespace) -> int:
    config = _config(args)
    pki = dataclasses.replace(
        config.pki,
        ca_common_name=args.common_name or config.pki.ca_common_name,
        ca_days=args.days or config.pki.ca_days,
    )
    ca = CertificateAuthority.create(
        pki, intermediate=args.intermediate, passphrase=_new_key_passphrase(args), force=args.force
    )
    print(
        f"created root CA   {_shown(pki.path(pki.ca_cert))}  ({ca.root.subject.rfc4514_string()}, "
        f"key {_shown(pki.path(pki.ca_key))} mode 0600)"
    )
    if ca.chain:
        print(
            f"created intermediate {_shown(pki.path(pki.intermediate_cert))}  "
            f"({ca.signer_cert.subject.rfc4514_string()}, signs the leaves)"
        )
    print(
        f"next: mtls-certs issue server server --san DNS:localhost --san IP:127.0.0.1\n"
        f"      openssl x509 -in {_shown(pki.path(pki.ca_cert))} -text -noout"
    )
    _warn_about_ca(ca, utcnow())
    return 0


def _print_issued(files: IssuedFiles, cert: x509.Certificate, ca: CertificateAuthority) -> None:
    info = describe_certificate(cert)
    key_desc = info["key"]
    sans = ", ".join(info["sans"]) or "(none)"
    print(f"1. generated private key  {_shown(files.key)}  ({key_desc}, mode 0600)")
    print(f"2. wrote CSR              {_shown(files.csr)}  ({cert.subject.rfc4514_string()}; {sans})")
    print(
        f"3. CA signed it           by {ca.signer_cert.subject.rfc4514_string()}  "
        f"(serial {info['serial']}, until {cert.not_valid_after_utc:%Y-%m-%d}, "
        f"EKU {', '.join(info['extended_key_usage'] or [])})"
    )
    print(f"4. wrote certificate      {_shown(files.cert)}  and chain {_shown(files.chain)}")
    shown = _shown(files.cert)
    print(f"next: mtls-certs show {shown}   or   openssl x509 -in {shown} -text -noout")


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


def _cmd_issue(args: argparse.Namespace) -> int:
    config = _config(args)
    sans = [parse_san(s) for s in args.san]
    options = LeafOptions(
        not_before=args.not_before, not_after=args.not_after, ekus=() if args.no_eku else args.eku
    )
    common = {
        "out_dir": args.out_dir or config.pki.dir,
        "sans": sans,
        "key_type": config.pki.key_type,
        "days": args.days or config.pki.leaf_days,
        "force": args.force,
        "options": options,
    }
    if args.self_signed:
        files = issue_self_signed(Profile(args.role), args.name, **common)
        print(f"wrote self-signed {args.role} certificate {_shown(files.cert)} and key {_shown(files.key)}")
        return 0
    if args.ca is not None:
        config = dataclasses.replace(config, pki=dataclasses.replace(config.pki, dir=args.ca))
    ca = _load_ca(config, args)
    files = ca.issue(Profile(args.role), args.name, passphrase=_new_key_passphrase(args), **common)
    cert = load_certificates(files.cert)[0]
    _print_issued(files, cert, ca)
    _warn_about_leaf(cert, ca, utcnow())
    return 0


def _cmd_revoke(args: argparse.Namespace) -> int:
    config = _config(args)
    cert = load_certificates(args.cert)[0]
    ca = _load_ca(config, args)
    crl = revoke(config.pki, ca, cert)
    print(f"revoked {cert.subject.rfc4514_string()} (serial {cert.serial_number:X}); wrote CRL {_shown(crl)}")
    print(f"next: point [server] crl at {_shown(crl)} and reload the server (SIGHUP)")
    _warn_about_ca(ca, utcnow())
    return 0


def _cmd_crl(args: argparse.Namespace) -> int:
    config = _config(args)
    ca = _load_ca(config, args)
    crl = write_crl(config.pki, ca)
    print(f"wrote CRL {_shown(crl)} (valid {config.pki.crl_days} days; rewrite it before then)")
    _warn_about_ca(ca, utcnow())
    return 0


def _cmd_badset(args: argparse.Namespace) -> int:
    if args.dir.exists() and any(args.dir.iterdir()):
        raise CertificateError(f"{_shown(args.dir)!r} is not empty; give a new folder for the bad set")
    manifest = write_badset(args.dir)
    print(f"wrote the bad-credential set under {_shown(args.dir)} (manifest.json):")
    for case in (*manifest.cases, *manifest.server_cases):
        print(f"  {case.name:<29} {case.expect:<10} {case.description}")
    print(
        f"point a server at it: ca={manifest.ca} crl={manifest.crl} cert={manifest.server_cert} "
        f"key={manifest.server_key} allow=[{manifest.allow!r}]"
    )
    print(f"then: mtls-client conformance HOST:PORT --badset {_shown(args.dir)}")
    return 0


def _cmd_sign(args: argparse.Namespace) -> int:
    config = _config(args)
    csr = load_csr(args.csr)
    ca = _load_ca(config, args)
    # Quoted and escaped when they break a rule: a CSR's control characters never reach the terminal.
    judged = [general_name_problem(name) for name in requested_sans(csr)]
    requested = [shown if problem is None else repr(shown) for shown, problem in judged]
    if args.san_from_csr:
        shown = ", ".join(requested) or "none"
        print(f"taking the CSR's requested SANs (review them): {shown}", file=sys.stderr)
    elif requested:
        print(
            f"ignoring the CSR's requested SANs ({', '.join(requested)}); pass --san, or --san-from-csr",
            file=sys.stderr,
        )
    dropped = [a.rfc4514_string() for a in csr.subject if a.oid != NameOID.COMMON_NAME]
    if dropped:
        print(f"subject reduced to its CN (dropped {', '.join(dropped)})", file=sys.stderr)
    sans = [parse_san(s) for s in args.san]
    cert = ca.sign(
        csr,
        Profile(args.profile),
        sans=sans,
        sans_from_csr=args.san_from_csr,
        days=args.days or config.pki.leaf_days,
    )
    info = describe_certificate(cert)
    # What was done goes where issue and revoke put theirs, stdout, unless stdout carries the PEM
    # (no --out) and must stay a clean certificate for a pipe. Cautions and warnings: stderr.
    report = sys.stdout if args.out is not None else sys.stderr
    if args.out is None:
        sys.stdout.buffer.write(pem(cert, *ca.chain))
    else:
        atomic_write(args.out, pem(cert), force=args.force)
        if ca.chain:
            chain_path = args.out.with_name(f"{args.out.stem}-chain{args.out.suffix}")
            atomic_write(chain_path, pem(cert, *ca.chain), force=args.force)
            print(f"wrote {_shown(args.out)} and chain {_shown(chain_path)}", file=report)
        else:
            print(f"wrote {_shown(args.out)}", file=report)
    print(
        f"signed {cert.subject.rfc4514_string()} as {args.profile} (serial {info['serial']}, "
        f"EKU {', '.join(info['extended_key_usage'] or [])}, SANs {', '.join(info['sans']) or 'none'})",
        file=report,
    )
    if not info["sans"]:
        print("warning: no SAN: pass --san so clients can check the name", file=sys.stderr)
    _warn_about_leaf(cert, ca, utcnow())
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    passphrase = read_passphrase(args.passphrase_file, env_var=None) if args.passphrase_file else None
    report = describe_file(args.file, passphrase=passphrase)
    print(report.to_json() if args.json else render_report(report))
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    config = _config(args)
    chain = load_certificates(args.cert)
    trust_path = args.ca or config.pki.path(config.pki.ca_cert)
    trust = load_certificates(trust_path)
    inter_path = config.pki.path(config.pki.intermediate_cert)
    intermediates = load_certificates(inter_path) if args.ca is None and inter_path.exists() else []
    key = None
    if args.key is not None:
        passphrase = read_passphrase(args.passphrase_file)
        key = load_private_key(args.key, passphrase)
    crl_path = args.crl or config.pki.path(config.pki.crl)
    crls = load_crls(crl_path) if args.crl is not None or (args.ca is None and crl_path.exists()) else []
    checks = check_certificate(
        chain, trust=trust, intermediates=intermediates, key=key, purpose=args.purpose, crls=crls
    )
    print(f"{args.cert}: {chain[0].subject.rfc4514_string()} against {_shown(trust_path)}")
    for check in checks:
        print(f"  {check.line()}")
    failed = [c for c in checks if not c.ok]
    print(f"{'FAILED' if failed else 'OK'}: {len(checks) - len(failed)} of {len(checks)} checks passed")
    return 1 if failed else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    config = _config(args)
    pki = config.pki
    if not pki.path(pki.ca_cert).exists():
        CertificateAuthority.create(pki, intermediate=True)
        print(f"created root CA and intermediate under {_shown(pki.dir)}")
    ca = _load_ca(config, argparse.Namespace(ca_passphrase_file=None))
    for role, sans in (("server", DEMO_SERVER_SANS), ("client", DEMO_CLIENT_SANS)):
        if (pki.dir / f"{role}-chain.pem").exists():
            print(f"kept existing {role} certificate {_shown(pki.dir / f'{role}.pem')}")
            continue
        files = ca.issue(
            Profile(role),
            role,
            out_dir=pki.dir,
            sans=[parse_san(s) for s in sans],
            key_type=pki.key_type,
            days=pki.leaf_days,
        )
        names = ", ".join(format_san(parse_san(s)) for s in sans)
        print(f"issued {role} certificate {_shown(files.chain)} ({names})")
        _warn_about_leaf(load_certificates(files.cert)[0], ca, utcnow())
    bundle, secret = pki.dir / "client.p12", pki.dir / "client.p12.passphrase"
    if bundle.exists():
        print(f"kept existing browser bundle {_shown(bundle)}")
    else:
        passphrase = generate_passphrase()
        atomic_write(secret, passphrase.encode() + b"\n", mode=0o600, force=True)
        _export([*ca.chain, ca.root], pki.dir, "client", bundle, passphrase)
        print(f"wrote browser bundle {_shown(bundle)} (passphrase in {_shown(secret)}, both mode 0600)")
    return 0


def _export(
    chain: list[x509.Certificate], folder: Path, name: str, out: Path, passphrase: str, *, force: bool = False
) -> None:
    """NAME.key + NAME.pem + the CA chain (intermediate, root) as a PKCS#12 bundle."""
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    if not cert_path.exists():
        raise CertificateError(
            f"no certificate {str(cert_path)!r}: issue it first ('mtls-certs issue client {name}')"
        )
    write_bundle(
        out,
        name=name,
        key=load_private_key(key_path, read_passphrase(None)),
        cert=load_certificates(cert_path)[0],
        chain=chain,
        passphrase=passphrase,
        force=force,
    )


def _ca_chain(pki: PKIConfig) -> list[x509.Certificate]:
    """The certificates above the leaves, intermediate first (no CA key is needed to export)."""
    intermediate = pki.path(pki.intermediate_cert)
    above = load_certificates(intermediate) if intermediate.exists() else []
    return [*above, *load_certificates(pki.path(pki.ca_cert))]


def _cmd_export(args: argparse.Namespace) -> int:
    check_file_name(args.name)  # NAME.pem, NAME.key and NAME.p12 are files in the PKI folder
    config = _config(args)
    folder = config.pki.dir
    out = args.out or folder / f"{args.name}.p12"
    chain = _ca_chain(config.pki)
    if args.passphrase_file is not None:
        secret = read_passphrase(args.passphrase_file, env_var=None) or b""
        _export(chain, folder, args.name, out, secret.decode(), force=args.force)
        where = _shown(args.passphrase_file)
        print(f"wrote {_shown(out)} (mode 0600), encrypted with the passphrase from {where}")
    else:
        passphrase = generate_passphrase()
        _export(chain, folder, args.name, out, passphrase, force=args.force)
        print(f"wrote {_shown(out)} (mode 0600); its passphrase, shown once: {passphrase}")
    print(f"next: openssl pkcs12 -info -noout -in {_shown(out)}   or import it in a browser")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mtls-certs``."""
    parser = build_parser()
    return run_cli(lambda args: int(args.func(args)), parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
