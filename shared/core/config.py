"""One typed, frozen configuration for the certs tool, the server and the client.

Precedence, lowest first: built-in defaults < config file (``mtls.toml``) <
environment (``MTLS_<SECTION>_<KEY>``) < command-line flags. The file is chosen
by ``--config PATH``, else ``MTLS_CONFIG``, else ``./mtls.toml`` when it exists;
with none, the defaults stand alone. :mod:`~mtls_ref.shared.core.config_sources`
reads the file and the environment; this module holds the schema and the order.

Relative paths in the file are resolved against the file's own folder, so the
same ``mtls.toml`` works from any working directory; relative paths from the
environment or flags are resolved against the working directory, as a shell
user expects.

Every problem is one :class:`ConfigError` line naming the source, the key and
what is allowed.

The fields' metadata (:mod:`~mtls_ref.shared.core.fields`) is the schema the
tools read too: ``choices`` and ``bounds`` are checked for every source; a
field with ``flag(help)`` is a command-line flag of its tool, generated with
that help text by :class:`mtls_ref.shared.core.cli_support.ConfigFlags`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from mtls_ref.shared.core.config_sources import Values, choose_file, read_env, read_file, section_class
from mtls_ref.shared.core.errors import ConfigError
from mtls_ref.shared.core.fields import bounds, choices, coerce, flag

__all__ = [
    "FORWARD_IDENTITIES",
    "KEY_TYPES",
    "TLS_ENGINES",
    "TLS_VERSIONS",
    "ClientConfig",
    "Config",
    "PKIConfig",
    "ServerConfig",
    "load_config",
]

TLS_VERSIONS: Final = ("1.2", "1.3")
# The server's TLS engine: "openssl" is pyOpenSSL driving the OpenSSL that the
# cryptography wheel ships; "stdlib" is Python's ssl module (the system OpenSSL).
TLS_ENGINES: Final = ("openssl", "stdlib")
KEY_TYPES: Final = ("rsa2048", "rsa3072", "rsa4096", "p256", "p384", "ed25519")
LOG_FORMATS: Final = ("text", "json")
# How a forwarded connection's backend learns who the client is.
FORWARD_IDENTITIES: Final = ("none", "proxy-v2", "http-header", "client-cert")


_KEYLOG_HELP: Final = (
    "append NSS key-log lines (for Wireshark) to FILE: created 0600; a link, another user's "
    "file or one others can read is refused"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PKIConfig:
    """Where the certificate authority lives and how new certificates are made."""

    dir: Path = Path("certs")
    ca_cert: str = "ca.pem"
    ca_key: str = "ca.key"
    intermediate_cert: str = "intermediate.pem"
    intermediate_key: str = "intermediate.key"
    crl: str = "crl.pem"  # written by `mtls-certs revoke` / `mtls-certs crl`, signed by the leaf-signing CA
    crl_days: int = field(default=30, metadata=bounds(1, 3650))
    # "{key_id}" becomes 8 hex digits of the new root's key identifier, so two CAs
    # made with the defaults never share a name.
    ca_common_name: str = "mtls-ref Demo Root CA {key_id}"
    key_type: str = field(default="p256", metadata=choices(*KEY_TYPES))
    ca_days: int = field(default=3650, metadata=bounds(1, 36500))
    leaf_days: int = field(default=365, metadata=bounds(1, 36500))
    passphrase_file: Path | None = None

    def path(self, name: str) -> Path:
        """A file inside the PKI folder."""
        return self.dir / name


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """The mTLS server: address, credentials, limits."""

    host: str = field(default="127.0.0.1", metadata=flag("address to bind (default 127.0.0.1)"))
    port: int = field(
        default=8443,
        metadata=bounds(0, 65535) | flag("port (default 8443; 0 picks a free one)", metavar="PORT"),
    )
    cert: Path = field(
        default=Path("certs/server-chain.pem"), metadata=flag("server certificate chain (PEM, leaf first)")
    )
    key: Path = field(default=Path("certs/server.key"), metadata=flag("server private key (PEM)"))
    ca: Path | None = field(
        default=Path("certs/ca.pem"), metadata=flag("CA that client certificates must chain to")
    )
    # Optional CRL (PEM): when set, client leaves are checked against it (revoked -> refused).
    crl: Path | None = field(default=None, metadata=flag("CRL (PEM) to check client certificates against"))
    key_passphrase_file: Path | None = None
    tls_min: str = field(default="1.2", metadata=choices(*TLS_VERSIONS) | flag("lowest TLS version accepted"))
    tls_max: str = field(
        default="1.3", metadata=choices(*TLS_VERSIONS) | flag("highest TLS version accepted")
    )
    tls_engine: str = field(
        default="openssl",
        metadata=choices(*TLS_ENGINES)
        | flag(
            "openssl: pyOpenSSL on the OpenSSL in the cryptography wheel (default, faster, sends the "
            "acceptable CA names); stdlib: Python's ssl module on the system OpenSSL"
        ),
    )
    # Seconds between checks of cert/key/ca/crl for changes (0: only on SIGHUP).
    reload_interval: float = field(default=5.0, metadata=bounds(0))
    # Authorization after authentication: empty means every verified client.
    allow: tuple[str, ...] = field(
        default=(),
        metadata=flag(
            "admit only clients matching a rule such as CN:alice or "
            "URI:spiffe://example.org/* (repeatable; replaces the config's list)",
            metavar="RULE",
        ),
    )
    handshake_timeout: float = field(
        default=10.0, metadata=bounds(0.001) | flag("seconds a peer has to finish the TLS handshake")
    )
    idle_timeout: float = field(
        default=60.0,
        metadata=bounds(0.001)
        | flag("seconds without a request, or with a peer not reading our reply, before hanging up"),
    )
    shutdown_grace: float = field(default=5.0, metadata=bounds(0))
    # Seconds a client whose ALPN offer holds none of h2, http/1.1 and mtls-ref/1 (which pick
    # at once) gets to speak first (an HTTP request line switches to HTTP/1.1); after that the
    # line protocol greets.
    protocol_sniff: float = field(default=0.3, metadata=bounds(0, 10))
    max_line: int = field(default=4096, metadata=bounds(64, 1 << 20))
    # Authenticated connections at once (per worker); a client past it is told the server is busy.
    max_connections: int = field(
        default=1000,
        metadata=bounds(1, 1_000_000)
        | flag("authenticated connections per worker; more are told the server is busy"),
    )
    # Connections still in their handshake (not yet anybody): a budget of their own, so idle or
    # dribbling sockets never lock authenticated clients out. Full: the longest-waiting is dropped.
    max_handshakes: int = field(default=128, metadata=bounds(1, 1_000_000))
    # ... of which one source address may hold at most this many.
    max_handshakes_per_source: int = field(default=32, metadata=bounds(1, 1_000_000))
    # Seconds a client has to send a whole request line or HTTP request head once it started
    # (HTTP/2: a frame or header block, once its first bytes came).
    request_timeout: float = field(default=10.0, metadata=bounds(0.001))
    # Processes sharing the port (SO_REUSEPORT): one per core to use them all.
    workers: int = field(
        default=1,
        metadata=bounds(1, 256)
        | flag("processes sharing the port with SO_REUSEPORT (one per core uses them all)"),
    )
    log_format: str = field(
        default="text", metadata=choices(*LOG_FORMATS) | flag("text (key=value) or json lines")
    )
    trace: bool = field(
        default=False, metadata=flag("log each connection's TLS messages as a sequence diagram")
    )
    # Keep each connection's handshake messages (without logging them) so the browser page,
    # GET / with Accept: text/html, can draw them. Off by default: on the openssl engine it
    # costs a callback per TLS message (see docs/performance.md). trace = true records too.
    record_handshakes: bool = field(
        default=False,
        metadata=flag(
            "keep each connection's TLS messages for the browser page (GET / as HTML) "
            "without logging them; costs CPU per handshake on the openssl engine"
        ),
    )
    keylog: Path | None = field(default=None, metadata=flag(_KEYLOG_HELP, metavar="FILE"))
    # HOST:PORT of the plain-HTTP status port (/healthz, /metrics); empty: off.
    status: str = field(
        default="",
        metadata=flag(
            "serve plain-HTTP /healthz and /metrics (Prometheus) there, e.g. 127.0.0.1:9100 "
            "(with --workers, the first process's figures only)",
            metavar="HOST:PORT",
        ),
    )
    # The status port has no authentication: an address off loopback is refused without this.
    # Its flag is a plain switch (no --no- form), as it always was.
    status_allow_remote: bool = field(
        default=False,
        metadata=flag(
            "let --status listen off loopback (anyone reaching it reads /metrics: no authentication)",
            negatable=False,
        ),
    )
    # HOST:PORT of a plain TCP backend: after the handshake and the allow-list, bytes are
    # copied both ways (mTLS in front of any service); empty: the server answers itself.
    forward: str = field(
        default="",
        metadata=flag(
            "forward mode: after the handshake and the allow-list, relay bytes to this plain TCP backend",
            metavar="HOST:PORT",
        ),
    )
    forward_identity: str = field(
        default="none",
        metadata=choices(*FORWARD_IDENTITIES)
        | flag(
            "how the backend learns the client: none; proxy-v2 (a PROXY protocol v2 header with the "
            "TLS facts); http-header (HTTP backends: X-Forwarded-Client-Cert on every request); "
            "client-cert (HTTP backends: RFC 9440 Client-Cert and Client-Cert-Chain). In the HTTP modes "
            "any identity header the client sent is removed"
        ),
    )
    # HTTP forward modes: pass on request headers whose names hold '_'. Off (the default), they
    # are dropped, as nginx does: WSGI and CGI read X_Forwarded_Client_Cert as X-Forwarded-Client-Cert.
    forward_underscore_headers: bool = field(
        default=False,
        metadata=flag(
            "HTTP forward modes: pass on request headers whose names hold '_' (default: dropped, "
            "as nginx does, since WSGI/CGI backends read '_' as '-')"
        ),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    """The mTLS client: where to connect and with which credentials."""

    host: str = field(default="localhost", metadata=flag("server host (default localhost)"))
    port: int = field(
        default=8443, metadata=bounds(1, 65535) | flag("server port (default 8443)", metavar="PORT")
    )
    # Name checked against the server certificate; empty means "same as host".
    server_name: str = field(
        default="", metadata=flag("name the server certificate must carry (default: --host)")
    )
    cert: Path | None = field(
        default=Path("certs/client-chain.pem"), metadata=flag("our certificate chain (PEM, leaf first)")
    )
    key: Path | None = field(default=Path("certs/client.key"), metadata=flag("our private key (PEM)"))
    ca: Path = field(default=Path("certs/ca.pem"), metadata=flag("CA the server certificate must chain to"))
    # Optional CRL (PEM): when set, the server's leaf is checked against it (revoked -> refused).
    crl: Path | None = field(default=None, metadata=flag("CRL (PEM) to check the server certificate against"))
    key_passphrase_file: Path | None = None
    # No flags of their own: mtls-client's --tls sets both (cli_support.add_exact_tls_flag).
    tls_min: str = field(default="1.2", metadata=choices(*TLS_VERSIONS))
    tls_max: str = field(default="1.3", metadata=choices(*TLS_VERSIONS))
    timeout: float = field(
        default=10.0,
        metadata=bounds(0.001)
        | flag("deadline for connect, handshake, each read, and each whole request and its answer"),
    )
    keylog: Path | None = field(default=None, metadata=flag(_KEYLOG_HELP, metavar="FILE"))

    @property
    def expected_name(self) -> str:
        """The name the server certificate must carry."""
        return self.server_name or self.host


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole file: one section per tool, plus where it came from."""

    pki: PKIConfig = PKIConfig()
    server: ServerConfig = ServerConfig()
    client: ClientConfig = ClientConfig()
    source: Path | None = None


_SECTIONS: Final[dict[str, type[Any]]] = {
    "pki": PKIConfig,
    "server": ServerConfig,
    "client": ClientConfig,
}

Overrides = Mapping[str, Mapping[str, Any]]


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Overrides | None = None,
    cwd: Path | None = None,
) -> Config:
    """Build the config: defaults < file < environment < ``overrides`` (from flags).

    ``overrides`` maps section -> key -> value; ``None`` values are ignored so a
    CLI can pass every flag it has.
    """
    env = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd
    source = choose_file(path, env, cwd)
    values: Values = {name: {} for name in _SECTIONS}
    if source is not None:
        read_file(values, source, _SECTIONS)
    read_env(values, env, cwd, _SECTIONS)
    for section, keys in (overrides or {}).items():
        cls = section_class(_SECTIONS, section, "flags")
        for key, raw in keys.items():
            if raw is None:
                continue
            values[section][key] = coerce(cls, key, raw, f"flag for [{section}] {key}", cwd)
    base = source.parent if source is not None else cwd
    sections = {
        name: _SECTIONS[name](**_anchor_defaults(_SECTIONS[name], vals, base))
        for name, vals in values.items()
    }
    config = Config(source=source, **sections)
    _check_cross_field(config)
    return config


def _anchor_defaults(cls: type[Any], vals: dict[str, Any], base: Path) -> dict[str, Any]:
    """Resolve relative default paths against the config file's folder (or cwd)."""
    anchored = dict(vals)
    for spec in dataclasses.fields(cls):
        default = spec.default
        if spec.name not in vals and isinstance(default, Path) and not default.is_absolute():
            anchored[spec.name] = base / default
    return anchored


def _check_cross_field(config: Config) -> None:
    where = str(config.source) if config.source else "config"
    for name in ("server", "client"):
        section = getattr(config, name)
        if float(section.tls_min) > float(section.tls_max):
            raise ConfigError(
                f"{where}: [{name}] tls_min {section.tls_min!r} is above tls_max "
                f"{section.tls_max!r}; set tls_min <= tls_max"
            )
