"""The ``mtls-certs`` commands on files: show, verify, export, badset, and demo (the whole demo PKI)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Final

from cryptography import x509

from mtls_ref.shared.core.config import PKIConfig
from mtls_ref.shared.core.errors import CertificateError
from mtls_ref.shared.pki.authority import CertificateAuthority
from mtls_ref.shared.pki.badset import write_badset
from mtls_ref.shared.pki.bundle import generate_passphrase, write_bundle
from mtls_ref.shared.pki.checks import check_certificate
from mtls_ref.shared.pki.cli_context import config_of, load_ca, shown, warn_about_leaf
from mtls_ref.shared.pki.inspect import describe_file, format_san, render_report
from mtls_ref.shared.pki.keys import (
    atomic_write,
    load_certificates,
    load_private_key,
    read_passphrase,
    utcnow,
)
from mtls_ref.shared.pki.leaf_files import check_file_name
from mtls_ref.shared.pki.names import parse_san
from mtls_ref.shared.pki.profiles import Profile
from mtls_ref.shared.pki.revocation import load_crls

__all__ = ["cmd_badset", "cmd_demo", "cmd_export", "cmd_show", "cmd_verify"]

DEMO_SERVER_SANS: Final = ("DNS:localhost", "IP:127.0.0.1", "IP:::1")
DEMO_CLIENT_SANS: Final = ("URI:spiffe://mtls-ref.test/demo-client", "email:demo-client@mtls-ref.test")


def cmd_show(args: argparse.Namespace) -> int:
    passphrase = read_passphrase(args.passphrase_file, env_var=None) if args.passphrase_file else None
    report = describe_file(args.file, passphrase=passphrase)
    print(report.to_json() if args.json else render_report(report))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    config = config_of(args)
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
    print(f"{args.cert}: {chain[0].subject.rfc4514_string()} against {shown(trust_path)}")
    for check in checks:
        print(f"  {check.line()}")
    failed = [c for c in checks if not c.ok]
    print(f"{'FAILED' if failed else 'OK'}: {len(checks) - len(failed)} of {len(checks)} checks passed")
    return 1 if failed else 0


def cmd_badset(args: argparse.Namespace) -> int:
    if args.dir.exists() and any(args.dir.iterdir()):
        raise CertificateError(f"{shown(args.dir)!r} is not empty; give a new folder for the bad set")
    manifest = write_badset(args.dir)
    print(f"wrote the bad-credential set under {shown(args.dir)} (manifest.json):")
    for case in (*manifest.cases, *manifest.server_cases):
        print(f"  {case.name:<29} {case.expect:<10} {case.description}")
    print(
        f"point a server at it: ca={manifest.ca} crl={manifest.crl} cert={manifest.server_cert} "
        f"key={manifest.server_key} allow=[{manifest.allow!r}]"
    )
    print(f"then: mtls-client conformance HOST:PORT --badset {shown(args.dir)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    config = config_of(args)
    pki = config.pki
    if not pki.path(pki.ca_cert).exists():
        CertificateAuthority.create(pki, intermediate=True)
        print(f"created root CA and intermediate under {shown(pki.dir)}")
    ca = load_ca(config, argparse.Namespace(ca_passphrase_file=None))
    for role, sans in (("server", DEMO_SERVER_SANS), ("client", DEMO_CLIENT_SANS)):
        if (pki.dir / f"{role}-chain.pem").exists():
            print(f"kept existing {role} certificate {shown(pki.dir / f'{role}.pem')}")
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
        print(f"issued {role} certificate {shown(files.chain)} ({names})")
        warn_about_leaf(load_certificates(files.cert)[0], ca, utcnow())
    bundle, secret = pki.dir / "client.p12", pki.dir / "client.p12.passphrase"
    if bundle.exists():
        print(f"kept existing browser bundle {shown(bundle)}")
    else:
        passphrase = generate_passphrase()
        atomic_write(secret, passphrase.encode() + b"\n", mode=0o600, force=True)
        _export([*ca.chain, ca.root], pki.dir, "client", bundle, passphrase)
        print(f"wrote browser bundle {shown(bundle)} (passphrase in {shown(secret)}, both mode 0600)")
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


def cmd_export(args: argparse.Namespace) -> int:
    check_file_name(args.name)  # NAME.pem, NAME.key and NAME.p12 are files in the PKI folder
    config = config_of(args)
    folder = config.pki.dir
    out = args.out or folder / f"{args.name}.p12"
    chain = _ca_chain(config.pki)
    if args.passphrase_file is not None:
        secret = read_passphrase(args.passphrase_file, env_var=None) or b""
        _export(chain, folder, args.name, out, secret.decode(), force=args.force)
        where = shown(args.passphrase_file)
        print(f"wrote {shown(out)} (mode 0600), encrypted with the passphrase from {where}")
    else:
        passphrase = generate_passphrase()
        _export(chain, folder, args.name, out, passphrase, force=args.force)
        print(f"wrote {shown(out)} (mode 0600); its passphrase, shown once: {passphrase}")
    print(f"next: openssl pkcs12 -info -noout -in {shown(out)}   or import it in a browser")
    return 0
