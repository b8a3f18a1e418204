"""The ``mtls-certs`` commands that use the CA: init, issue, sign, revoke, crl.

Each prints what it did, step by step as the docs' flow goes, and what to do
next; cautions go to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from cryptography import x509
from cryptography.x509.oid import NameOID

from mtls_ref.shared.pki.authority import CertificateAuthority, issue_self_signed
from mtls_ref.shared.pki.cli_context import (
    config_of,
    load_ca,
    new_key_passphrase,
    shown,
    warn_about_ca,
    warn_about_leaf,
)
from mtls_ref.shared.pki.inspect import describe_certificate
from mtls_ref.shared.pki.keys import atomic_write, load_certificates, load_csr, pem, utcnow
from mtls_ref.shared.pki.leaf_files import IssuedFiles
from mtls_ref.shared.pki.names import parse_san, requested_sans
from mtls_ref.shared.pki.profiles import LeafOptions, Profile
from mtls_ref.shared.pki.revocation import revoke, write_crl
from mtls_ref.shared.pki.san_rules import general_name_problem

__all__ = ["cmd_crl", "cmd_init", "cmd_issue", "cmd_revoke", "cmd_sign"]


def cmd_init(args: argparse.Namespace) -> int:
    config = config_of(args)
    pki = dataclasses.replace(
        config.pki,
        ca_common_name=args.common_name or config.pki.ca_common_name,
        ca_days=args.days or config.pki.ca_days,
    )
    ca = CertificateAuthority.create(
        pki, intermediate=args.intermediate, passphrase=new_key_passphrase(args), force=args.force
    )
    print(
        f"created root CA   {shown(pki.path(pki.ca_cert))}  ({ca.root.subject.rfc4514_string()}, "
        f"key {shown(pki.path(pki.ca_key))} mode 0600)"
    )
    if ca.chain:
        print(
            f"created intermediate {shown(pki.path(pki.intermediate_cert))}  "
            f"({ca.signer_cert.subject.rfc4514_string()}, signs the leaves)"
        )
    print(
        f"next: mtls-certs issue server server --san DNS:localhost --san IP:127.0.0.1\n"
        f"      openssl x509 -in {shown(pki.path(pki.ca_cert))} -text -noout"
    )
    warn_about_ca(ca, utcnow())
    return 0


def _print_issued(files: IssuedFiles, cert: x509.Certificate, ca: CertificateAuthority) -> None:
    info = describe_certificate(cert)
    key_desc = info["key"]
    sans = ", ".join(info["sans"]) or "(none)"
    print(f"1. generated private key  {shown(files.key)}  ({key_desc}, mode 0600)")
    print(f"2. wrote CSR              {shown(files.csr)}  ({cert.subject.rfc4514_string()}; {sans})")
    print(
        f"3. CA signed it           by {ca.signer_cert.subject.rfc4514_string()}  "
        f"(serial {info['serial']}, until {cert.not_valid_after_utc:%Y-%m-%d}, "
        f"EKU {', '.join(info['extended_key_usage'] or [])})"
    )
    print(f"4. wrote certificate      {shown(files.cert)}  and chain {shown(files.chain)}")
    cert_path = shown(files.cert)
    print(f"next: mtls-certs show {cert_path}   or   openssl x509 -in {cert_path} -text -noout")


def cmd_issue(args: argparse.Namespace) -> int:
    config = config_of(args)
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
        print(f"wrote self-signed {args.role} certificate {shown(files.cert)} and key {shown(files.key)}")
        return 0
    if args.ca is not None:
        config = dataclasses.replace(config, pki=dataclasses.replace(config.pki, dir=args.ca))
    ca = load_ca(config, args)
    files = ca.issue(Profile(args.role), args.name, passphrase=new_key_passphrase(args), **common)
    cert = load_certificates(files.cert)[0]
    _print_issued(files, cert, ca)
    warn_about_leaf(cert, ca, utcnow())
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    config = config_of(args)
    cert = load_certificates(args.cert)[0]
    ca = load_ca(config, args)
    crl = revoke(config.pki, ca, cert)
    print(f"revoked {cert.subject.rfc4514_string()} (serial {cert.serial_number:X}); wrote CRL {shown(crl)}")
    print(f"next: point [server] crl at {shown(crl)} and reload the server (SIGHUP)")
    warn_about_ca(ca, utcnow())
    return 0


def cmd_crl(args: argparse.Namespace) -> int:
    config = config_of(args)
    ca = load_ca(config, args)
    crl = write_crl(config.pki, ca)
    print(f"wrote CRL {shown(crl)} (valid {config.pki.crl_days} days; rewrite it before then)")
    warn_about_ca(ca, utcnow())
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    config = config_of(args)
    csr = load_csr(args.csr)
    ca = load_ca(config, args)
    # Quoted and escaped when they break a rule: a CSR's control characters never reach the terminal.
    judged = [general_name_problem(name) for name in requested_sans(csr)]
    requested = [name if problem is None else repr(name) for name, problem in judged]
    if args.san_from_csr:
        taken = ", ".join(requested) or "none"
        print(f"taking the CSR's requested SANs (review them): {taken}", file=sys.stderr)
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
            print(f"wrote {shown(args.out)} and chain {shown(chain_path)}", file=report)
        else:
            print(f"wrote {shown(args.out)}", file=report)
    print(
        f"signed {cert.subject.rfc4514_string()} as {args.profile} (serial {info['serial']}, "
        f"EKU {', '.join(info['extended_key_usage'] or [])}, SANs {', '.join(info['sans']) or 'none'})",
        file=report,
    )
    if not info["sans"]:
        print("warning: no SAN: pass --san so clients can check the name", file=sys.stderr)
    warn_about_leaf(cert, ca, utcnow())
    return 0
