"""Config: defaults < file < environment < flags, and one clear line for every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtls_ref.shared.core.addresses import HostPort
from mtls_ref.shared.core.config import load_config
from mtls_ref.shared.core.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mtls.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_any_file(tmp_path: Path) -> None:
    """With no file, env or flag, the built-in defaults apply and paths anchor at cwd."""
    config = load_config(environ={}, cwd=tmp_path)
    assert config.source is None
    assert config.server.port == 8443
    assert config.server.tls_min == "1.2"
    assert config.server.ca == tmp_path / "certs/ca.pem"
    assert config.client.expected_name == "localhost"


def test_repo_config_file_parses_to_defaults() -> None:
    """The shipped mtls.toml is valid and its values are the documented defaults."""
    config = load_config(REPO / "mtls.toml", environ={})
    defaults = load_config(environ={}, cwd=REPO)
    assert config.server == defaults.server
    assert config.client == defaults.client


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    """Each layer overrides the one below it, key by key."""
    path = write(tmp_path, "[server]\nport = 9000\nhost = '::1'\nidle_timeout = 5\n")
    from_file = load_config(path, environ={})
    assert (from_file.server.port, from_file.server.host) == (9000, "::1")
    env = {"MTLS_SERVER_PORT": "9001", "MTLS_SERVER_ALLOW": "CN:alice, URI:spiffe://x/*"}
    from_env = load_config(path, environ=env)
    assert from_env.server.port == 9001
    assert from_env.server.host == "::1"
    assert from_env.server.allow == ("CN:alice", "URI:spiffe://x/*")
    from_flags = load_config(path, environ=env, overrides={"server": {"port": 9002, "host": None}})
    assert from_flags.server.port == 9002
    assert from_flags.server.host == "::1"
    assert from_flags.server.idle_timeout == 5.0


def test_config_selected_by_env_variable(tmp_path: Path) -> None:
    """MTLS_CONFIG picks the file when --config is absent."""
    path = write(tmp_path, "[client]\nport = 7000\n")
    assert load_config(environ={"MTLS_CONFIG": str(path)}).client.port == 7000


def test_relative_paths_anchor_at_the_file(tmp_path: Path) -> None:
    """Paths in the file are relative to the file's folder, flags to the cwd."""
    sub = tmp_path / "conf"
    sub.mkdir()
    path = write(sub, "[server]\ncert = 'x/server.pem'\n")
    config = load_config(path, environ={}, cwd=tmp_path, overrides={"client": {"cert": "c.pem"}})
    assert config.server.cert == sub / "x/server.pem"
    assert config.server.key == sub / "certs/server.key"  # default, anchored at the file too
    assert config.client.cert == tmp_path / "c.pem"


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("[server]\nprot = 1\n", {}, r"\[server\] prot: unknown key; known keys: .*port"),
        ("[sever]\n", {}, r"unknown section \[sever\]; allowed: \[pki\], \[server\], \[client\]"),
        ("[server]\nport = 'abc'\n", {}, r"\[server\] port: expected a whole number, got 'abc'"),
        (
            "[server]\nport = 70000\n",
            {},
            r"\[server\] port: 70000 is out of range; use a number from 0 to 65535",
        ),
        ("[server]\ntls_min = '1.1'\n", {}, r"tls_min: '1.1' is not allowed; use one of '1.2', '1.3'"),
        ("[server]\ntls_min = '1.3'\ntls_max = '1.2'\n", {}, r"tls_min '1.3' is above tls_max '1.2'"),
        ("[server]\ntrace = 'maybe'\n", {}, r"trace: expected true or false, got 'maybe'"),
        ("[server]\nallow = 'CN:alice'\n", {}, r"allow: expected a list of strings"),
        ("[server]\nallow = [1]\n", {}, r"allow: expected a list of strings"),
        ("[server]\nidle_timeout = 0\n", {}, r"idle_timeout: 0 is out of range"),
        ("[pki]\nkey_type = 'dsa'\n", {}, r"key_type: 'dsa' is not allowed"),
        ("server = 1\n", {}, r"\[server\] must be a table"),
        ("[server\n", {}, r"not valid TOML"),
        ("", {"MTLS_SERVER_PORT": "x"}, r"environment MTLS_SERVER_PORT: expected a whole number"),
        ("", {"MTLS_SERVER_PROT": "1"}, r"environment MTLS_SERVER_PROT: unknown key 'prot' in \[server\]"),
    ],
)
def test_every_mistake_is_one_clear_line(
    tmp_path: Path, text: str, env: dict[str, str], expected: str
) -> None:
    """Unknown keys, wrong types, bad values name the source, the key and what is allowed."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as info:
        load_config(path, environ=env)
    assert "\n" not in str(info.value)
    if not env:
        assert str(path) in str(info.value)


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    """An explicitly named file that does not exist is refused, not silently skipped."""
    with pytest.raises(ConfigError, match=r"config file 'nope.toml' not found"):
        load_config("nope.toml", environ={}, cwd=tmp_path)


def test_config_objects_are_frozen(tmp_path: Path) -> None:
    """Config values cannot be changed after loading."""
    config = load_config(environ={}, cwd=tmp_path)
    with pytest.raises(AttributeError):
        config.server.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8443", ("127.0.0.1", 8443)),
        ("localhost:1", ("localhost", 1)),
        ("[::1]:9100", ("::1", 9100)),
        (" api.example:443 ", ("api.example", 443)),
    ],
)
def test_host_port_parses_and_prints_one_way(text: str, expected: tuple[str, int]) -> None:
    """HOST:PORT and [V6]:PORT parse to the same host and port, and print back in canonical form."""
    address = HostPort.parse(text)
    assert (address.host, address.port) == expected
    assert HostPort.parse(str(address)) == address


@pytest.mark.parametrize("text", ["8443", "host:", ":8443", "::1:8443", "host:65536", "host:http"])
def test_host_port_refuses_what_is_not_one(text: str) -> None:
    """Missing parts, a bare IPv6 address, a port out of range: a ValueError that shows an example."""
    with pytest.raises(ValueError, match=r"e\.g\."):
        HostPort.parse(text)


def test_host_port_default_host_fills_a_bare_port() -> None:
    """':9100' takes the default host where the setting allows one (the status port)."""
    assert HostPort.parse(":9100", default_host="127.0.0.1") == HostPort("127.0.0.1", 9100)
