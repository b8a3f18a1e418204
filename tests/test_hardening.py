"""Regression tests for the hardening review: trust, identity matching, the certs tool, secrets, logs."""

from __future__ import annotations

import contextlib
import dataclasses
import http
import http.server
import os
import shutil
import ssl
import stat
import subprocess
import threading
from pathlib import Path

import pytest
import trio
import trio.testing
from cryptography import x509
from cryptography.x509.oid import NameOID

from mtls_ref.client.session import Exit, run_client
from mtls_ref.server.app import Server
from mtls_ref.server.log import EventLog
from mtls_ref.shared.core.cli_support import module_command
from mtls_ref.shared.core.config import PKIConfig, ServerConfig
from mtls_ref.shared.core.errors import CertificateError, ConfigError
from mtls_ref.shared.pki.authority import (
    CertificateAuthority,
    IssuedFiles,
    Profile,
    build_certificate,
)
from mtls_ref.shared.pki.badset import Manifest
from mtls_ref.shared.pki.keys import generate_key, load_certificates, pem, utcnow, write_private_key
from mtls_ref.shared.tls.context import ALPN_LINE, client_context
from mtls_ref.shared.tls.identity import AllowList, AllowRule, PeerIdentity
from mtls_ref.shared.tls.keylog import set_stdlib_keylog

from .support.pki import Pki
from .support.tls import client_config, log_events, start_server, start_server_with

# -- 1. the CRL file can add no trust anchor ----------------------------------------


def crl_with_foreign_root(badset: Manifest, pki: Pki, folder: Path) -> Path:
    """The set's real CRL file with a foreign root appended: what an attacker with write access adds."""
    path = folder / "crl-plus-root.pem"
    path.write_bytes(badset.path(badset.crl).read_bytes() + pki.foreign_ca_cert.read_bytes())
    return path


@pytest.mark.usefixtures("tls_engine")
def test_certificate_in_crl_file_refuses_start(badset: Manifest, pki: Pki, tmp_path: Path) -> None:
    """A certificate in the CRL file stops the server at start, naming the file and the fix."""
    from .support import tls

    settings = {**badset.server_settings(), "crl": crl_with_foreign_root(badset, pki, tmp_path)}
    config = ServerConfig(tls_engine=tls.SERVER_ENGINE, host="127.0.0.1", port=0, **settings)
    with pytest.raises(CertificateError, match=r"holds CERTIFICATE besides CRLs.*put CA certificates in"):
        Server(config, log=EventLog("json", list[str]().append))


@pytest.mark.usefixtures("tls_engine")
async def test_certificate_in_crl_file_refuses_reload(badset: Manifest, pki: Pki, tmp_path: Path) -> None:
    """Swapping a foreign root into the CRL file is a failed reload; a client of that root stays out, and
    a good reload names every trust anchor with its fingerprint."""
    crl = tmp_path / "crl.pem"
    shutil.copy(badset.path(badset.crl), crl)
    settings = {**badset.server_settings(), "crl": crl, "allow": ()}
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server_with(nursery, **settings)
        assert server.reload("test: unchanged")
        crl.write_bytes(crl_with_foreign_root(badset, pki, tmp_path).read_bytes())
        assert not server.reload("test: root in the CRL file")
        config = client_config(pki, pki.foreign_client, port=port)
        config = dataclasses.replace(config, ca=badset.path(badset.ca))
        with trio.fail_after(15):
            report = await run_client(config, client_context(config, alpn=[ALPN_LINE]))
        server.shutdown()
    assert report.result is not Exit.OK
    (reloaded,) = log_events(log, "reloaded")
    root = load_certificates(badset.path(badset.ca))[0]
    assert reloaded["trust_anchors"] == [
        f"{root.subject.rfc4514_string()} sha256={log_events(log, 'listening')[0]['client_ca_sha256']}"
    ]
    (failed,) = log_events(log, "reload-failed")
    assert "holds CERTIFICATE besides CRLs" in failed["error"]


# -- 2 and 3. identities match exactly, and one CN is one CN -------------------------


def ident(**names: tuple[str, ...]) -> PeerIdentity:
    return PeerIdentity(subject="CN=x", serial="1", sha256="", **names)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rule", "identity", "allowed"),
    [
        # whole values only: a trailing newline is not the name
        ("CN:alice", ident(common_names=("alice\n",)), False),
        ("DNS:api.example.com", ident(dns=("api.example.com\n",)), False),
        ("URI:spiffe://td/payments", ident(uris=("spiffe://td/payments\n",)), False),
        ("email:a@example.com", ident(emails=("a@example.com\n",)), False),
        ("URI:spiffe://td/payments", ident(uris=("spiffe://td/payments",)), True),
        # no Unicode case folding: KELVIN SIGN is not K, LATIN SMALL LETTER LONG S is not s
        ("CN:kate", ident(common_names=("\u212aate",)), False),
        ("CN:sam", ident(common_names=("\u017fam",)), False),
        ("DNS:k.example.com", ident(dns=("\u212a.example.com",)), False),
        ("email:sam@example.com", ident(emails=("\u017fam@example.com",)), False),
        # ASCII folding where the kind is case-insensitive, exact where it is not
        ("DNS:api.example.com", ident(dns=("API.Example.COM",)), True),
        ("email:sam@example.com", ident(emails=("sam@EXAMPLE.com",)), True),
        ("email:sam@example.com", ident(emails=("SAM@example.com",)), False),
        ("CN:alice", ident(common_names=("Alice",)), False),
        ("URI:spiffe://td/a", ident(uris=("SPIFFE://td/a",)), False),
        # control characters and NUL never match, even a bare '*'
        ("CN:*", ident(common_names=("alice\x00",)), False),
        ("URI:*", ident(uris=("spiffe://td/a\tb",)), False),
        ("DNS:*.example.com", ident(dns=("a\x85.example.com",)), False),
        # '*' stays within a label, a path segment, an email part
        ("DNS:*.example.com", ident(dns=("api.example.com",)), True),
        ("DNS:*.example.com", ident(dns=("a.b.example.com",)), False),
        ("URI:spiffe://td/*", ident(uris=("spiffe://td/web",)), True),
        ("URI:spiffe://td/*", ident(uris=("spiffe://td/web/admin",)), False),
        ("email:*@example.com", ident(emails=("x@evil.test@example.com",)), False),
        ("email:*@example.com", ident(emails=("x@sub.example.com",)), False),
        ("IP:10.0.0.*", ident(ips=("10.0.0.7",)), True),
        ("IP:10.0.0.*", ident(ips=("10.0.0.7.8",)), False),
        ("CN:a*", ident(common_names=("a.b/c@d",)), True),
        # several CNs: no CN rule matches, whichever CN it names
        ("CN:admin", ident(common_names=("bob", "admin")), False),
        ("CN:*", ident(common_names=("bob", "admin")), False),
    ],
)
def test_allow_rules_match_exactly(rule: str, identity: PeerIdentity, allowed: bool) -> None:
    """Each kind's documented rule, against the tricks the review used."""
    assert AllowList.parse([rule]).decide(identity).allowed is allowed


@pytest.mark.parametrize("bad", ["CN:ali\nce", "URI:spiffe://td/\x00", "email:nobody"])
def test_rules_with_control_characters_or_no_at_are_config_errors(bad: str) -> None:
    """A rule that could never be meant (control characters, an email without '@') stops the start."""
    with pytest.raises(ConfigError):
        AllowRule.parse(bad)


def issue_with_subject(
    pki: Pki, folder: Path, subject: x509.Name, sans: list[x509.GeneralName]
) -> IssuedFiles:
    """A client leaf from the test CA with a subject (and SANs, built directly) the tools would not make."""
    ca = CertificateAuthority.load(PKIConfig(dir=pki.dir))
    key = generate_key("p256")
    cert = build_certificate(
        subject=subject,
        public_key=key.public_key(),
        issuer=ca.signer_cert.subject,
        issuer_key=ca.signer_key,
        profile=Profile.CLIENT,
        sans=sans,
        now=utcnow(),
        days=2,
    )
    files = IssuedFiles.named("odd", folder)
    write_private_key(files.key, key)
    files.cert.write_bytes(pem(cert))
    files.chain.write_bytes(pem(cert, *ca.chain))
    return files


@pytest.mark.usefixtures("tls_engine")
async def test_two_common_names_are_refused_by_cn_rules(pki: Pki, tmp_path: Path) -> None:
    """Subject CN=bob,CN=admin against CN:admin: refused, the log shows both CNs and says why."""
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "bob"), x509.NameAttribute(NameOID.COMMON_NAME, "admin")]
    )
    odd = issue_with_subject(pki, tmp_path, subject, [])
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki, allow=("CN:admin",))
        config = client_config(pki, odd, port=port)
        with trio.fail_after(15):
            report = await run_client(config, client_context(config, alpn=[ALPN_LINE]))
        server.shutdown()
    assert report.result is Exit.FORBIDDEN
    (entry,) = log_events(log, "connection")
    assert entry["outcome"] == "forbidden"
    assert entry["subject"] == "CN=admin,CN=bob"
    assert "its subject has 2 CNs; CN rules need exactly one" in entry["reason"]


# -- 4. the profile, not the CSR, decides the names ------------------------------------


@pytest.mark.interop
def test_sign_takes_sans_only_from_the_flags(tmp_path: Path, openssl: str) -> None:
    """A CSR asking for a SPIFFE admin ID, a wildcard and an organisation gets none of them unless
    --san-from-csr is given (and then they are printed for review)."""
    ca_dir = tmp_path / "ca"
    subprocess.run(
        module_command("mtls_ref.shared.pki.cli", "--pki-dir", str(ca_dir), "init"),
        check=True,
        capture_output=True,
        timeout=60,
    )
    key, csr = tmp_path / "k.pem", tmp_path / "req.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(csr),
            "-subj",
            "/O=Evil Corp/CN=bob",
            "-addext",
            "subjectAltName=URI:spiffe://td/admin,DNS:*.example.com",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )

    def sign(*flags: str) -> tuple[x509.Certificate, str]:
        out = tmp_path / f"bob{len(flags)}.pem"
        done = subprocess.run(
            module_command(
                "mtls_ref.shared.pki.cli",
                "--pki-dir",
                str(ca_dir),
                "sign",
                str(csr),
                "--profile",
                "client",
                "--out",
                str(out),
                *flags,
            ),
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return load_certificates(out)[0], done.stderr

    plain, said = sign()
    assert plain.subject.rfc4514_string() == "CN=bob"
    with pytest.raises(x509.ExtensionNotFound):
        plain.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert "ignoring the CSR's requested SANs (URI:spiffe://td/admin, DNS:*.example.com)" in said
    assert "subject reduced to its CN (dropped O=Evil Corp)" in said
    chosen, _ = sign("--san", "URI:spiffe://td/bob")
    assert chosen.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier
    ) == ["spiffe://td/bob"]
    reviewed, said = sign("--san-from-csr")
    san = reviewed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://td/admin"]
    assert "taking the CSR's requested SANs (review them): URI:spiffe://td/admin, DNS:*.example.com" in said


# -- 5. the key log is a secret ---------------------------------------------------------


@pytest.mark.usefixtures("tls_engine")
async def test_keylog_is_0600_and_announced(pki: Pki, tmp_path: Path) -> None:
    """The key log is created 0600 and the banner and listening event warn that it is on."""
    keys = tmp_path / "server.keylog"
    lines: list[str] = []
    from .support import tls

    config = tls.server_config(pki, keylog=keys)
    server = Server(config, log=EventLog("text", lines.append))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        server.shutdown()
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert f"WARNING          writing TLS session secrets to {keys} (0600)" in lines[0]
    assert "keylog_warning=" in lines[1]


@pytest.mark.usefixtures("tls_engine")
def test_keylog_readable_by_others_is_refused(pki: Pki, tmp_path: Path) -> None:
    """An existing key log that others can read is not appended to: the error says how to fix it."""
    from .support import tls

    keys = tmp_path / "open.keylog"
    keys.write_text("")
    keys.chmod(0o644)
    with pytest.raises(ConfigError, match=r"readable by others \(mode 644\).*chmod 600"):
        Server(tls.server_config(pki, keylog=keys), log=EventLog("json", list[str]().append))


def keylog_refusal(pki: Pki, keys: Path) -> str:
    """The ConfigError a server with key log ``keys`` stops with (the engine the fixture chose)."""
    from .support import tls

    with pytest.raises(ConfigError) as refused:
        Server(tls.server_config(pki, keylog=keys), log=EventLog("json", list[str]().append))
    return str(refused.value)


@pytest.mark.usefixtures("tls_engine")
def test_keylog_symlink_is_refused(pki: Pki, tmp_path: Path) -> None:
    """A key log that is a symbolic link (even to a 0600 file of ours) is refused: it could point anywhere."""
    target = tmp_path / "target.keylog"
    target.write_text("")
    target.chmod(0o600)
    link = tmp_path / "link.keylog"
    link.symlink_to(target)
    said = keylog_refusal(pki, link)
    assert f"key log {str(link)!r} is a symbolic link" in said
    assert target.read_text() == ""


@pytest.mark.usefixtures("tls_engine")
@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user (chown) needs root")
def test_keylog_owned_by_another_user_is_refused(pki: Pki, tmp_path: Path) -> None:
    """A 0600 key log that belongs to another user is refused: that user would read the secrets."""
    keys = tmp_path / "theirs.keylog"
    keys.write_text("")
    keys.chmod(0o600)
    os.chown(keys, 65534, 65534)
    said = keylog_refusal(pki, keys)
    assert "belongs to uid 65534" in said and "chown" in said, said
    assert keys.read_text() == ""


@pytest.mark.usefixtures("tls_engine")
def test_keylog_readable_by_the_group_is_refused(pki: Pki, tmp_path: Path) -> None:
    """Group bits are refused as others' are: mode 0640 is not 0600."""
    keys = tmp_path / "group.keylog"
    keys.write_text("")
    keys.chmod(0o640)
    assert "(mode 640)" in keylog_refusal(pki, keys)


def test_client_keylog_symlink_is_refused(pki: Pki, tmp_path: Path) -> None:
    """The client's context builder makes the same checks as the server's."""
    target = tmp_path / "target.keylog"
    target.write_text("")
    target.chmod(0o600)
    link = tmp_path / "link.keylog"
    link.symlink_to(target)
    with pytest.raises(ConfigError, match="is a symbolic link"):
        client_context(dataclasses.replace(client_config(pki), keylog=link))


class _SwappingContext(ssl.SSLContext):
    """Plays the attacker: replaces the key log with a link just before CPython opens it."""

    swap: tuple[Path, Path] | None = None

    @property  # type: ignore[override]
    def keylog_filename(self) -> str | None:
        return ssl.SSLContext.keylog_filename.__get__(self)  # type: ignore[attr-defined,no-any-return]

    @keylog_filename.setter
    def keylog_filename(self, value: str | None) -> None:
        if value is not None and self.swap is not None:
            path, elsewhere = self.swap
            path.rename(elsewhere)
            path.symlink_to(elsewhere)
        ssl.SSLContext.keylog_filename.__set__(self, value)  # type: ignore[attr-defined]


def test_stdlib_keylog_swapped_for_a_link_while_opening_is_refused(tmp_path: Path) -> None:
    """On the stdlib engine CPython opens the path itself: a link swapped in before it does is refused."""
    keys = tmp_path / "k.keylog"
    ctx = _SwappingContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.swap = (keys, tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="was replaced while it was being opened"):
        set_stdlib_keylog(ctx, keys)
    assert ctx.keylog_filename is None


async def test_openssl_engine_recreates_a_moved_keylog_0600(pki: Pki, tmp_path: Path) -> None:
    """A key log moved away while the server runs comes back as a new 0600 file (whatever the umask)
    with the next handshake's lines; the moved file keeps only the earlier ones."""
    keys, moved = tmp_path / "server.keylog", tmp_path / "moved.keylog"
    umask = os.umask(0o022)
    try:
        async with trio.open_nursery() as nursery:
            server, port, _ = await start_server(nursery, pki, tls_engine="openssl", keylog=keys)
            config = client_config(pki, port=port, tls_min="1.3", tls_max="1.3")
            with trio.fail_after(15):
                first = await run_client(config, client_context(config, alpn=[ALPN_LINE]), messages=["QUIT"])
            keys.rename(moved)
            with trio.fail_after(15):
                second = await run_client(config, client_context(config, alpn=[ALPN_LINE]), messages=["QUIT"])
            server.shutdown()
    finally:
        os.umask(umask)
    assert (first.result, second.result) == (Exit.OK, Exit.OK)
    assert stat.S_IMODE(keys.lstat().st_mode) == 0o600
    old, new = moved.read_text().splitlines(), keys.read_text().splitlines()
    assert any(line.startswith("CLIENT_HANDSHAKE_TRAFFIC_SECRET ") for line in new), new
    assert len(old) == len(new) and not set(old) & set(new)


def test_client_warns_when_writing_a_keylog(pki: Pki, tmp_path: Path) -> None:
    """mtls-client --keylog says on stderr that it writes session secrets, and creates the file 0600."""
    keys = tmp_path / "client.keylog"
    done = subprocess.run(
        module_command(
            "mtls_ref.client",
            *("--host", "127.0.0.1", "--port", "9", "--server-name", "localhost", "--timeout", "2"),
            *("--ca", str(pki.ca_cert), "--cert", str(pki.client.chain), "--key", str(pki.client.key)),
            *("--keylog", str(keys)),
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,  # no mtls.toml there: the flags and defaults alone
        env={k: v for k, v in os.environ.items() if not k.startswith("MTLS_")},
    )
    assert f"warning: writing TLS session secrets to {keys} (0600)" in done.stderr, done.stderr
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600


# -- 8. one certificate cannot write a second log line -----------------------------------


@pytest.mark.usefixtures("tls_engine")
async def test_control_characters_in_sans_cannot_forge_log_lines(pki: Pki, tmp_path: Path) -> None:
    """A SAN holding a newline and a tab stays inside one quoted, escaped field of one text line."""
    forged = "spiffe://td/x\n2026-01-01T00:00:00+0000 connection outcome=accepted subject=CN=admin\tz"
    odd = issue_with_subject(
        pki,
        tmp_path,
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mallory")]),
        [x509.UniformResourceIdentifier(forged)],
    )
    lines: list[str] = []
    from .support import tls

    server = Server(tls.server_config(pki), log=EventLog("text", lines.append))
    async with trio.open_nursery() as nursery:
        addresses = await nursery.start(server.serve)
        config = client_config(pki, odd, port=int(addresses[0][1]))
        with trio.fail_after(15):
            await run_client(config, client_context(config, alpn=[ALPN_LINE]), messages=["QUIT"])
        server.shutdown()
    (line,) = [entry for entry in lines if " connection " in entry]
    assert "\n" not in line and "\t" not in line
    assert "\\n2026-01-01T00:00:00+0000 connection outcome=accepted" in line


# -- 6. unauthenticated peers cannot fill the server -----------------------------------


async def hold_sockets(count: int, port: int, *, dribble: bool) -> list[trio.SocketStream]:
    """``count`` connections from 127.0.0.2 that never finish a handshake (some send a byte now and then)."""
    held = []
    for _ in range(count):
        sock = trio.socket.socket()
        await sock.bind(("127.0.0.2", 0))
        await sock.connect(("127.0.0.1", port))
        stream = trio.SocketStream(sock)
        if dribble:
            await stream.send_all(b"\x16")  # the first byte of a handshake record, and nothing more
        held.append(stream)
    return held


@pytest.mark.usefixtures("tls_engine")
@pytest.mark.parametrize("cap", [None, 5], ids=["default-cap", "small-cap"])
async def test_idle_and_dribbling_sockets_do_not_starve_good_clients(pki: Pki, cap: int | None) -> None:
    """200 idle and dribbling sockets from 127.0.0.2; a good client from 127.0.0.1 is served within 1 s,
    with the default connection cap and with a small one."""
    options = {} if cap is None else {"max_connections": cap, "max_handshakes": cap}
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki, handshake_timeout=30.0, **options)
        held = await hold_sockets(100, port, dribble=False) + await hold_sockets(100, port, dribble=True)
        try:
            await trio.testing.wait_all_tasks_blocked()
            config = client_config(pki, port=port)
            with trio.fail_after(1):
                report = await run_client(config, client_context(config, alpn=[ALPN_LINE]), messages=["QUIT"])
            assert report.result is Exit.OK, report.summary
        finally:
            for stream in held:
                await trio.aclose_forcefully(stream)
            server.shutdown()
    reasons = [e["reason"] for e in log_events(log, "connection") if e["outcome"] != "accepted"]
    # One source holds at most its share (default budget); with a small one, the longest-waiting
    # make room for newcomers.
    limit = "(max_handshakes_per_source)" if cap is None else "(max_handshakes)"
    assert any(limit in r for r in reasons), reasons[:3]


# -- 7. deadlines for a whole request and for every write --------------------------------


async def dribble(stream: trio.abc.Stream, data: bytes) -> None:
    """Send ``data`` a byte every 0.1 s (the attacker's pace, not a wait) until done or cut off."""
    for byte in data:
        try:
            await stream.send_all(bytes([byte]))
        except trio.BrokenResourceError:
            return  # the server hung up: what the test wants to see
        await trio.sleep(0.1)


async def dribble_and_listen(stream: trio.abc.Stream, data: bytes) -> bytes:
    """Dribble ``data`` while reading everything the server says until it hangs up."""
    said = b""

    async def listen(cancel: trio.CancelScope) -> None:
        nonlocal said
        with contextlib.suppress(trio.BrokenResourceError):
            while chunk := await stream.receive_some(4096):
                said += chunk
        cancel.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(listen, nursery.cancel_scope)
        await dribble(stream, data)
        await trio.sleep_forever()  # until the listener has seen the server hang up
    return said


@pytest.mark.usefixtures("tls_engine")
async def test_dribbled_request_line_is_cut_off(pki: Pki) -> None:
    """A line dribbled a byte at a time does not keep the connection past request_timeout."""
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki, request_timeout=0.5, idle_timeout=30.0)
        ctx = client_context(client_config(pki, port=port), alpn=[ALPN_LINE])
        stream = trio.SSLStream(
            await trio.open_tcp_stream("127.0.0.1", port), ctx, server_hostname="localhost"
        )
        with trio.fail_after(10):
            await stream.do_handshake()
            greeting = await stream.receive_some(4096)
            assert greeting.startswith(b"OK hello")
            said = await dribble_and_listen(stream, b"ECHO slow")
        await trio.aclose_forcefully(stream)
        server.shutdown()
    assert b"ERR request-timeout" in said
    assert log_events(log, "connection")[0]["reason"] == "request line not finished within 0.5s"


@pytest.mark.usefixtures("tls_engine")
async def test_peer_that_does_not_read_is_dropped(pki: Pki) -> None:
    """An allowed client that asks for a gigabyte and never reads is dropped after idle_timeout."""
    from .support import tls

    log: list[str] = []
    logged = trio.Event()

    def sink(line: str) -> None:
        log.append(line)
        if '"event": "connection"' in line:
            logged.set()

    server = Server(tls.server_config(pki, idle_timeout=0.5), log=EventLog("json", sink))
    async with trio.open_nursery() as nursery:
        port = int((await nursery.start(server.serve))[0][1])
        ctx = client_context(client_config(pki, port=port), alpn=["http/1.1"])
        stream = trio.SSLStream(
            await trio.open_tcp_stream("127.0.0.1", port), ctx, server_hostname="localhost"
        )
        with trio.fail_after(15):
            await stream.do_handshake()
            await stream.send_all(b"GET /bytes/1000000000 HTTP/1.1\r\nHost: localhost\r\n\r\n")
            await logged.wait()  # the server's verdict on a peer that reads nothing
        await trio.aclose_forcefully(stream)
        server.shutdown()
    (entry,) = log_events(log, "connection")
    assert entry["reason"] == "the peer did not read the response within 0.5s; dropped", entry


@pytest.mark.usefixtures("tls_engine")
async def test_dribbled_http_head_gets_408(pki: Pki) -> None:
    """An HTTP head sent a byte at a time is answered 408 once request_timeout has passed."""
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki, request_timeout=0.5, idle_timeout=30.0)
        ctx = client_context(client_config(pki, port=port), alpn=["http/1.1"])
        stream = trio.SSLStream(
            await trio.open_tcp_stream("127.0.0.1", port), ctx, server_hostname="localhost"
        )
        with trio.fail_after(10):
            await stream.do_handshake()
            answer = await dribble_and_listen(stream, b"GET / HTTP/1.1\r\nHost: loc")
        await trio.aclose_forcefully(stream)
        server.shutdown()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert "request head not complete within 0.5s" in log_events(log, "connection")[0]["reason"]


# -- 9. the client's judgement -------------------------------------------------------------


@pytest.mark.usefixtures("tls_engine")
async def test_client_does_not_match_the_common_name(pki: Pki, tmp_path: Path) -> None:
    """A server certificate with CN=localhost and no SAN does not pass for localhost (as in browsers)."""
    ca = CertificateAuthority.load(PKIConfig(dir=pki.dir))
    cn_only = ca.issue(Profile.SERVER, "localhost", out_dir=tmp_path, sans=[])
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki, cert=cn_only.chain, key=cn_only.key)
        config = client_config(pki, port=port)
        with trio.fail_after(15):
            report = await run_client(config, client_context(config, alpn=[ALPN_LINE]))
        server.shutdown()
    assert report.result is Exit.SERVER_UNTRUSTED
    assert "localhost" in report.summary and "mismatch" in report.summary.lower(), report.summary


class _StatusHandler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        body = f"<html><head><title>{self.status} from http.server</title></head></html>\n".encode()
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.interop
@pytest.mark.parametrize(
    ("status", "exit_code"),
    [
        (200, Exit.OK),
        (400, Exit.CERT_REJECTED),
        (401, Exit.FORBIDDEN),
        (403, Exit.FORBIDDEN),
        (500, Exit.PROTOCOL),
    ],
)
async def test_http_mode_judges_by_status(pki: Pki, status: int, exit_code: Exit) -> None:
    """--http against Python's own HTTPS server (client certificates required): only 2xx/3xx is OK."""
    handler = type("Handler", (_StatusHandler,), {"status": status})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server.chain, pki.server.key)
    ctx.load_verify_locations(pki.ca_cert)
    ctx.verify_mode = ssl.CERT_REQUIRED
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        config = client_config(pki, port=httpd.server_address[1])
        with trio.fail_after(15):
            report = await run_client(config, client_context(config, alpn=["http/1.1"]), mode="http")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
    assert report.result is exit_code, report.summary
    if status != 200:
        assert report.http_status == f"{status} {http.HTTPStatus(status).phrase}: from http.server"


@pytest.mark.usefixtures("tls_engine")
async def test_raw_mode_takes_err_forbidden_as_a_refusal(pki: Pki) -> None:
    """--raw against our server with an allow-list that leaves the client out: exit 6, not success."""
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki, allow=("CN:bob",))
        config = client_config(pki, port=port)
        with trio.fail_after(15):
            report = await run_client(config, client_context(config), messages=["PING"], mode="raw")
        server.shutdown()
    assert report.result is Exit.FORBIDDEN, report.summary


# -- 10. HTTP edge cases -------------------------------------------------------------------


async def http_exchange(pki: Pki, port: int, request: bytes) -> bytes:
    """Send ``request`` over mTLS and read until the server closes (bounded)."""
    ctx = client_context(client_config(pki, port=port), alpn=["http/1.1"])
    stream = trio.SSLStream(await trio.open_tcp_stream("127.0.0.1", port), ctx, server_hostname="localhost")
    answer = b""
    try:
        with trio.fail_after(10):
            await stream.send_all(request)
            with contextlib.suppress(trio.BrokenResourceError):
                while chunk := await stream.receive_some(65536):
                    answer += chunk
    finally:
        await trio.aclose_forcefully(stream)
    return answer


@pytest.mark.usefixtures("tls_engine")
async def test_http_edge_cases(pki: Pki) -> None:
    """A 5,000-digit /bytes/N is a 400 (and the connection lives on); both Content-Length and
    Transfer-Encoding get an answer and a close; a 20 KiB head is a 431."""
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki)
        huge = await http_exchange(
            pki,
            port,
            b"GET /bytes/" + b"9" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        smuggle = await http_exchange(
            pki,
            port,
            b"POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n",
        )
        big_head = await http_exchange(
            pki, port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (20 * 1024) + b"\r\n\r\n"
        )
        server.shutdown()
    assert huge.startswith(b"HTTP/1.1 400 ") and b"use /bytes/N" in huge
    assert b"HTTP/1.1 200 " in huge.split(b"\r\n\r\n", 1)[1] and huge.endswith(b"ok\n")
    assert smuggle.startswith(b"HTTP/1.1 200 ") and b"connection: close" in smuggle.lower()
    assert smuggle.count(b"HTTP/1.1") == 1
    assert big_head.startswith(b"HTTP/1.1 431 "), big_head[:80]
