"""One typed, frozen configuration for the certs tool, the server and the client.

Precedence, lowest first: built-in defaults < config file (``mtls.toml``) <
environment (``MTLS_<SECTION>_<KEY>``) < command-line flags. The file is chosen
by ``--config PATH``, else ``MTLS_CONFIG``, else ``./mtls.toml`` when it exists;
with none, the defaults stand alone.

Relative paths in the file are resolved against the file's own folder, so the
same ``mtls.toml`` works from any working directory; relative paths from the
environment or flags are resolved against the working directory, as a shell
user expects.

Every problem is one :class:`ConfigError` line naming the source, the key and
what is allowed.

The fields' metadata is the schema the tools read too: ``choices`` and
``range`` are checked here for every source; a field with ``help`` is a
command-line flag of its tool, generated with that help text by
:class:`mtls_ref.shared.core.cli_support.ConfigFlags` (``metavar`` and
``negatable`` refine it).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Union

from mtls_ref.shared.core.errors import ConfigError

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

CONFIG_ENV: Final = "MTLS_CONFIG"
DEFAULT_CONFIG_NAME: Final = "mtls.toml"
TLS_VERSIONS: Final = ("1.2", "1.3")
# The server's TLS engine: "openssl" is pyOpenSSL driving the OpenSSL that the
# cryptography wheel ships; "stdlib" is Python's ssl module (the system OpenSSL).
TLS_ENGINES: Final = ("openssl", "stdlib")
KEY_TYPES: Final = ("rsa2048", "rsa3072", "rsa4096", "p256", "p384", "ed25519")
LOG_FORMATS: Final = ("text", "json")
# How a forwarded connection's backend learns who the client is.
FORWARD_IDENTITIES: Final = ("none", "proxy-v2", "http-header", "client-cert")


def _choice(*allowed: str) -> dict[str, Any]:
    return {"choices": allowed}


def _range(low: float, high: float | None = None) -> dict[str, Any]:
    return {"range": (low, high)}


def _flag(help_text: str, *, metavar: str | None = None, negatable: bool = True) -> dict[str, Any]:
    """The field is a command-line flag: its help, and (when argparse's default will not do)
    its metavar; a boolean flag has a ``--no-`` form unless ``negatable`` is false."""
    return {"help": help_text, "metavar": metavar, "negatable": negatable}


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
    crl_days: int = field(default=30, metadata=_range(1, 3650))
    # "{key_id}" becomes 8 hex digits of the new root's key identifier, so two CAs
    # made with the defaults never share a name.
    ca_common_name: str = "mtls-ref Demo Root CA {key_id}"
    key_type: str = field(default="p256", metadata=_choice(*KEY_TYPES))
    ca_days: int = field(default=3650, metadata=_range(1, 36500))
    leaf_days: int = field(default=365, metadata=_range(1, 36500))
    passphrase_file: Path | None = None

    def path(self, name: str) -> Path:
        """A file inside the PKI folder."""
        return self.dir / name


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """The mTLS server: address, credentials, limits."""

    host: str = field(default="127.0.0.1", metadata=_flag("address to bind (default 127.0.0.1)"))
    port: int = field(
        default=8443,
        metadata=_range(0, 65535) | _flag("port (default 8443; 0 picks a free one)", metavar="PORT"),
    )
    cert: Path = field(
        default=Path("certs/server-chain.pem"), metadata=_flag("server certificate chain (PEM, leaf first)")
    )
    key: Path = field(default=Path("certs/server.key"), metadata=_flag("server private key (PEM)"))
    ca: Path | None = field(
        default=Path("certs/ca.pem"), metadata=_flag("CA that client certificates must chain to")
    )
    # Optional CRL (PEM): when set, client leaves are checked against it (revoked -> refused).
    crl: Path | None = field(default=None, metadata=_flag("CRL (PEM) to check client certificates against"))
    key_passphrase_file: Path | None = None
    tls_min: str = field(
        default="1.2", metadata=_choice(*TLS_VERSIONS) | _flag("lowest TLS version accepted")
    )
    tls_max: str = field(
        default="1.3", metadata=_choice(*TLS_VERSIONS) | _flag("highest TLS version accepted")
    )
    tls_engine: str = field(
        default="openssl",
        metadata=_choice(*TLS_ENGINES)
        | _flag(
            "openssl: pyOpenSSL on the OpenSSL in the cryptography wheel (default, faster, sends the "
            "acceptable CA names); stdlib: Python's ssl module on the system OpenSSL"
        ),
    )
    # Seconds between checks of cert/key/ca/crl for changes (0: only on SIGHUP).
    reload_interval: float = field(default=5.0, metadata=_range(0))
    # Authorization after authentication: empty means every verified client.
    allow: tuple[str, ...] = field(
        default=(),
        metadata=_flag(
            "admit only clients matching a rule such as CN:alice or "
            "URI:spiffe://example.org/* (repeatable; replaces the config's list)",
            metavar="RULE",
        ),
    )
    handshake_timeout: float = field(
        default=10.0, metadata=_range(0.001) | _flag("seconds a peer has to finish the TLS handshake")
    )
    idle_timeout: float = field(
        default=60.0,
        metadata=_range(0.001)
        | _flag("seconds without a request, or with a peer not reading our reply, before hanging up"),
    )
    shutdown_grace: float = field(default=5.0, metadata=_range(0))
    # Seconds a client without ALPN gets to speak first (an HTTP request line
    # switches to HTTP/1.1); after that the line protocol greets.
    protocol_sniff: float = field(default=0.3, metadata=_range(0, 10))
    max_line: int = field(default=4096, metadata=_range(64, 1 << 20))
    # Authenticated connections at once (per worker); a client past it is told the server is busy.
    max_connections: int = field(
        default=1000,
        metadata=_range(1, 1_000_000)
        | _flag("authenticated connections per worker; more are told the server is busy"),
    )
    # Connections still in their handshake (not yet anybody): a budget of their own, so idle or
    # dribbling sockets never lock authenticated clients out. Full: the longest-waiting is dropped.
    max_handshakes: int = field(default=128, metadata=_range(1, 1_000_000))
    # ... of which one source address may hold at most this many.
    max_handshakes_per_source: int = field(default=32, metadata=_range(1, 1_000_000))
    # Seconds a client has to send a whole request line or HTTP request head once it started.
    request_timeout: float = field(default=10.0, metadata=_range(0.001))
    # Processes sharing the port (SO_REUSEPORT): one per core to use them all.
    workers: int = field(
        default=1,
        metadata=_range(1, 256)
        | _flag("processes sharing the port with SO_REUSEPORT (one per core uses them all)"),
    )
    log_format: str = field(
        default="text", metadata=_choice(*LOG_FORMATS) | _flag("text (key=value) or json lines")
    )
    trace: bool = field(
        default=False, metadata=_flag("log each connection's TLS messages as a sequence diagram")
    )
    # Keep each connection's handshake messages (without logging them) so the browser page,
    # GET / with Accept: text/html, can draw them. Off by default: on the openssl engine it
    # costs a callback per TLS message (see README "Performance"). trace = true records too.
    record_handshakes: bool = field(
        default=False,
        metadata=_flag(
            "keep each connection's TLS messages for the browser page (GET / as HTML) "
            "without logging them; costs CPU per handshake on the openssl engine"
        ),
    )
    keylog: Path | None = field(default=None, metadata=_flag(_KEYLOG_HELP, metavar="FILE"))
    # HOST:PORT of the plain-HTTP status port (/healthz, /metrics); empty: off.
    status: str = field(
        default="",
        metadata=_flag(
            "serve plain-HTTP /healthz and /metrics (Prometheus) there, e.g. 127.0.0.1:9100 "
            "(with --workers, the first process's figures only)",
            metavar="HOST:PORT",
        ),
    )
    # The status port has no authentication: an address off loopback is refused without this.
    # Its flag is a plain switch (no --no- form), as it always was.
    status_allow_remote: bool = field(
        default=False,
        metadata=_flag(
            "let --status listen off loopback (anyone reaching it reads /metrics: no authentication)",
            negatable=False,
        ),
    )
    # HOST:PORT of a plain TCP backend: after the handshake and the allow-list, bytes are
    # copied both ways (mTLS in front of any service); empty: the server answers itself.
    forward: str = field(
        default="",
        metadata=_flag(
            "forward mode: after the handshake and the allow-list, relay bytes to this plain TCP backend",
            metavar="HOST:PORT",
        ),
    )
    forward_identity: str = field(
        default="none",
        metadata=_choice(*FORWARD_IDENTITIES)
        | _flag(
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
        metadata=_flag(
            "HTTP forward modes: pass on request headers whose names hold '_' (default: dropped, "
            "as nginx does, since WSGI/CGI backends read '_' as '-')"
        ),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    """The mTLS client: where to connect and with which credentials."""

    host: str = field(default="localhost", metadata=_flag("server host (default localhost)"))
    port: int = field(
        default=8443, metadata=_range(1, 65535) | _flag("server port (default 8443)", metavar="PORT")
    )
    # Name checked against the server certificate; empty means "same as host".
    server_name: str = field(
        default="", metadata=_flag("name the server certificate must carry (default: --host)")
    )
    cert: Path | None = field(
        default=Path("certs/client-chain.pem"), metadata=_flag("our certificate chain (PEM, leaf first)")
    )
    key: Path | None = field(default=Path("certs/client.key"), metadata=_flag("our private key (PEM)"))
    ca: Path = field(default=Path("certs/ca.pem"), metadata=_flag("CA the server certificate must chain to"))
    # Optional CRL (PEM): when set, the server's leaf is checked against it (revoked -> refused).
    crl: Path | None = field(
        default=None, metadata=_flag("CRL (PEM) to check the server certificate against")
    )
    key_passphrase_file: Path | None = None
    # No flags of their own: mtls-client's --tls sets both (cli_support.add_exact_tls_flag).
    tls_min: str = field(default="1.2", metadata=_choice(*TLS_VERSIONS))
    tls_max: str = field(default="1.3", metadata=_choice(*TLS_VERSIONS))
    timeout: float = field(
        default=10.0, metadata=_range(0.001) | _flag("deadline for connect, handshake and each read")
    )
    keylog: Path | None = field(default=None, metadata=_flag(_KEYLOG_HELP, metavar="FILE"))

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
    source = _choose_file(path, env, cwd)
    values: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    if source is not None:
        _merge_file(values, source)
    _merge_env(values, env, cwd)
    for section, keys in (overrides or {}).items():
        cls = _section_class(section, "flags")
        for key, raw in keys.items():
            if raw is None:
                continue
            values[section][key] = _coerce(cls, key, raw, f"flag for [{section}] {key}", cwd)
    base = source.parent if source is not None else cwd
    sections = {
        name: _SECTIONS[name](**_anchor_defaults(_SECTIONS[name], vals, base))
        for name, vals in values.items()
    }
    config = Config(source=source, **sections)
    _check_cross_field(config)
    return config


def _choose_file(path: str | os.PathLike[str] | None, env: Mapping[str, str], cwd: Path) -> Path | None:
    if path is None and env.get(CONFIG_ENV):
        path = env[CONFIG_ENV]
    if path is not None:
        chosen = cwd / Path(path)
        if not chosen.is_file():
            raise ConfigError(
                f"config file {str(path)!r} not found: pass an existing file with --config "
                f"or {CONFIG_ENV}, or leave both unset to use ./{DEFAULT_CONFIG_NAME} or the defaults"
            )
        return chosen
    default = cwd / DEFAULT_CONFIG_NAME
    return default if default.is_file() else None


def _merge_file(values: dict[str, dict[str, Any]], source: Path) -> None:
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read the config file: {exc}") from exc
    for section, table in data.items():
        cls = _section_class(section, str(source))
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{section}] must be a table of keys, got {table!r}")
        for key, raw in table.items():
            where = f"{source}: [{section}] {key}"
            values[section][key] = _coerce(cls, key, raw, where, source.parent, text=False)


def _merge_env(values: dict[str, dict[str, Any]], env: Mapping[str, str], cwd: Path) -> None:
    for name, raw in env.items():
        if not name.startswith("MTLS_") or name == CONFIG_ENV:
            continue
        rest = name[len("MTLS_") :].lower()
        section, _, key = rest.partition("_")
        if section not in _SECTIONS:
            continue  # MTLS_KEY_PASSPHRASE and friends belong to other readers
        cls = _SECTIONS[section]
        if key not in _field_names(cls):
            raise ConfigError(
                f"environment {name}: unknown key {key!r} in [{section}]; "
                f"known keys: {', '.join(sorted(_field_names(cls)))}"
            )
        values[section][key] = _coerce(cls, key, raw, f"environment {name}", cwd)


def _anchor_defaults(cls: type[Any], vals: dict[str, Any], base: Path) -> dict[str, Any]:
    """Resolve relative default paths against the config file's folder (or cwd)."""
    anchored = dict(vals)
    for spec in dataclasses.fields(cls):
        default = spec.default
        if spec.name not in vals and isinstance(default, Path) and not default.is_absolute():
            anchored[spec.name] = base / default
    return anchored


def _section_class(section: str, where: str) -> type[Any]:
    try:
        return _SECTIONS[section]
    except KeyError:
        raise ConfigError(
            f"{where}: unknown section [{section}]; allowed: {', '.join(f'[{s}]' for s in _SECTIONS)}"
        ) from None


def _field_names(cls: type[Any]) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _coerce(cls: type[Any], key: str, raw: Any, where: str, base: Path, *, text: bool = True) -> Any:
    """Turn a TOML/env/flag value into the field's type, or explain why not.

    ``text`` allows strings to stand for numbers, booleans and comma-separated
    lists (environment and flags); TOML values must already have the right type.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if key not in fields:
        raise ConfigError(f"{where}: unknown key; known keys: {', '.join(sorted(fields))}")
    spec = fields[key]
    hint = typing.get_type_hints(cls)[key]
    value = _convert(hint, raw, where, base, text)
    if "choices" in spec.metadata and value not in spec.metadata["choices"]:
        allowed = ", ".join(repr(c) for c in spec.metadata["choices"])
        raise ConfigError(f"{where}: {raw!r} is not allowed; use one of {allowed}")
    if "range" in spec.metadata:
        low, high = spec.metadata["range"]
        if value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise ConfigError(f"{where}: {raw!r} is out of range; use a number {span}")
    return value


def _convert(hint: Any, raw: Any, where: str, base: Path, text: bool) -> Any:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if raw in ("", None):
            return None  # an empty string clears an optional path
        return _convert(options[0], raw, where, base, text)
    from_text = text and isinstance(raw, str)
    if hint is bool:
        if isinstance(raw, bool):
            return raw
        if from_text and raw.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return raw.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{where}: expected true or false, got {raw!r}")
    if hint is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if from_text and raw.strip().lstrip("-").isdigit():
            return int(raw)
        raise ConfigError(f"{where}: expected a whole number, got {raw!r}")
    if hint is float:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return float(raw)
        if from_text:
            try:
                return float(raw)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number of seconds, got {raw!r}")
    if hint is Path:
        if not isinstance(raw, str | os.PathLike):
            raise ConfigError(f"{where}: expected a path as a string, got {raw!r}")
        path = Path(raw).expanduser()
        return path if path.is_absolute() else base / path
    if origin is tuple:
        if from_text:  # environment: comma-separated
            items: list[Any] = [part.strip() for part in raw.split(",") if part.strip()]
        elif isinstance(raw, list | tuple):
            items = list(raw)
        else:
            raise ConfigError(f"{where}: expected a list of strings, got {raw!r}")
        if not all(isinstance(item, str) for item in items):
            raise ConfigError(f"{where}: expected a list of strings, got {raw!r}")
        return tuple(items)
    if hint is str:
        if not isinstance(raw, str):
            raise ConfigError(f"{where}: expected a string, got {raw!r}")
        return raw
    raise AssertionError(f"unsupported config type {hint!r}")  # a bug in this module


def _check_cross_field(config: Config) -> None:
    where = str(config.source) if config.source else "config"
    for name in ("server", "client"):
        section = getattr(config, name)
        if float(section.tls_min) > float(section.tls_max):
            raise ConfigError(
                f"{where}: [{name}] tls_min {section.tls_min!r} is above tls_max "
                f"{section.tls_max!r}; set tls_min <= tls_max"
            )
