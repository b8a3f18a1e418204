"""What every ``mtls-certs`` command starts from: the config, the CA, and how it speaks.

Paths are shown as the user would type them; warnings about a CA's lifetime go
to stderr, after what was done, with the command that fixes them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Final

from cryptography import x509

from mtls_ref.shared.core.config import Config, load_config
from mtls_ref.shared.pki.authority import CertificateAuthority
from mtls_ref.shared.pki.expiry import expiry_warning, outlives_issuer
from mtls_ref.shared.pki.keys import read_passphrase

__all__ = [
    "CA_PASSPHRASE_ENV",
    "config_of",
    "load_ca",
    "new_key_passphrase",
    "shown",
    "warn_about_ca",
    "warn_about_leaf",
]

CA_PASSPHRASE_ENV: Final = "MTLS_CA_PASSPHRASE"  # noqa: S105 - a variable name, not a secret


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def config_of(args: argparse.Namespace) -> Config:
    """The config, with ``--pki-dir`` and (where the command has it) ``--key-type`` applied."""
    overrides = {"pki": {"dir": args.pki_dir, "key_type": getattr(args, "key_type", None)}}
    return load_config(args.config, overrides=overrides)


def load_ca(config: Config, args: argparse.Namespace) -> CertificateAuthority:
    """The config's CA; its key's passphrase from ``--ca-passphrase-file``, the config or the environment."""
    file = args.ca_passphrase_file or config.pki.passphrase_file
    passphrase = read_passphrase(file, env_var=CA_PASSPHRASE_ENV)
    return CertificateAuthority.load(config.pki, passphrase=passphrase)


def new_key_passphrase(args: argparse.Namespace) -> bytes | None:
    """The passphrase for new private keys (``--passphrase-file``), if any."""
    file = args.passphrase_file
    return read_passphrase(file, env_var=None) if file is not None else None


def warn_about_ca(ca: CertificateAuthority, now: dt.datetime) -> bool:
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


def warn_about_leaf(cert: x509.Certificate, ca: CertificateAuthority, now: dt.datetime) -> None:
    """The CA's warnings, and whether ``cert`` outlives it (said only while the CA is still valid)."""
    if warn_about_ca(ca, now):
        return
    outlives = outlives_issuer(cert, [ca.root, *ca.chain])
    if outlives is not None:
        print(f"warning: {outlives}; pass a shorter --days, or renew the CA first", file=sys.stderr)
