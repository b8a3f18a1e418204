"""Revocation and rotation without restart, with one connection open throughout."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import trio

from mtls_ref.client.session import Exit, run_client
from mtls_ref.server.app import Server
from mtls_ref.server.log import EventLog
from mtls_ref.server.reload import FileWatch
from mtls_ref.shared.core.config import ClientConfig, PKIConfig, ServerConfig
from mtls_ref.shared.core.errors import CertificateError, ConfigError
from mtls_ref.shared.pki.authority import CertificateAuthority, IssuedFiles
from mtls_ref.shared.pki.cli import main as certs_main
from mtls_ref.shared.pki.keys import atomic_write, load_certificates
from mtls_ref.shared.pki.revocation import load_crls, revoke, write_crl
from mtls_ref.shared.tls.connection import TLSConnection
from mtls_ref.shared.tls.context import ALPN_LINE, client_context, read_crls

from .support.pki import LOOPBACK_SANS, issue_client, issue_server
from .support.tls import log_events


@dataclasses.dataclass
class Authority:
    pki: PKIConfig
    ca: CertificateAuthority
    server: IssuedFiles
    clients: dict[str, IssuedFiles]

    @property
    def root(self) -> bytes:
        return self.pki.path(self.pki.ca_cert).read_bytes()

    @property
    def crl(self) -> bytes:
        return self.pki.path(self.pki.crl).read_bytes()


def authority(base: Path, name: str, clients: tuple[str, ...]) -> Authority:
    pki = PKIConfig(dir=base / name, ca_common_name=f"{name} Root CA")
    ca = CertificateAuthority.create(pki, intermediate=True)
    server = issue_server(ca, pki, sans=LOOPBACK_SANS)
    issued = {c: issue_client(ca, pki, c, f"URI:spiffe://{name}/{c}") for c in clients}
    write_crl(pki, ca)
    return Authority(pki=pki, ca=ca, server=server, clients=issued)


class Files:
    """The server's credential files, rewritten atomically as an operator would."""

    def __init__(self, folder: Path) -> None:
        self.cert, self.key, self.ca, self.crl = (
            folder / n for n in ("cert.pem", "key.pem", "ca.pem", "crl.pem")
        )

    def server_config(self, *, crl: bool) -> ServerConfig:
        return ServerConfig(
            host="127.0.0.1",
            port=0,
            cert=self.cert,
            key=self.key,
            ca=self.ca,
            crl=self.crl if crl else None,
            reload_interval=0,
            handshake_timeout=5.0,
            idle_timeout=10.0,
            shutdown_grace=1.0,
        )

    def write(
        self, *, server: IssuedFiles | None = None, ca: bytes | None = None, crl: bytes | None = None
    ) -> None:
        if server is not None:
            atomic_write(self.cert, server.chain.read_bytes(), force=True)
            atomic_write(self.key, server.key.read_bytes(), mode=0o600, force=True)
        if ca is not None:
            atomic_write(self.ca, ca, force=True)
        if crl is not None:
            atomic_write(self.crl, crl, force=True)


def loopback_client(port: int, creds: IssuedFiles, trust: Path) -> ClientConfig:
    return ClientConfig(
        host="127.0.0.1",
        port=port,
        server_name="localhost",
        cert=creds.chain,
        key=creds.key,
        ca=trust,
        timeout=5.0,
    )


async def attempt(port: int, creds: IssuedFiles, trust: Path) -> tuple[Exit, str | None]:
    config = loopback_client(port, creds, trust)
    with trio.fail_after(15):
        report = await run_client(config, client_context(config, alpn=[ALPN_LINE]), messages=["QUIT"])
    return report.result, report.alert


@pytest.mark.usefixtures("tls_engine")
async def test_rotate_ca_and_server_cert_and_revoke_with_a_live_connection(tmp_path: Path) -> None:
    """old -> old+new -> new CA bundle, new server cert, a revoked client; the live connection survives."""
    old = authority(tmp_path, "old", ("alice",))
    new = authority(tmp_path, "new", ("bob", "carol"))
    files = Files(tmp_path)
    files.write(server=old.server, ca=old.root, crl=old.crl)
    trust = tmp_path / "client-trust.pem"
    trust.write_bytes(old.root + new.root)  # clients trust both server CAs throughout
    log: list[str] = []
    config = files.server_config(crl=True)
    server = Server(config, log=EventLog("json", log.append))
    async with trio.open_nursery() as nursery:
        port = (await nursery.start(server.serve))[0][1]
        live = await _open_live(port, old.clients["alice"], trust)

        assert await attempt(port, new.clients["bob"], trust) == (Exit.CERT_REJECTED, "unknown_ca")

        files.write(ca=old.root + new.root, crl=old.crl + new.crl)
        assert server.reload("test: bundle old+new")
        assert (await attempt(port, new.clients["bob"], trust))[0] is Exit.OK
        assert (await attempt(port, old.clients["alice"], trust))[0] is Exit.OK

        files.write(server=new.server)
        assert server.reload("test: new server certificate")
        new_only = tmp_path / "new-root.pem"
        new_only.write_bytes(new.root)
        assert (await attempt(port, new.clients["bob"], new_only))[
            0
        ] is Exit.OK  # server cert now from new CA
        assert await live.ping()

        files.write(ca=new.root, crl=new.crl)
        assert server.reload("test: bundle new only")
        assert await attempt(port, old.clients["alice"], trust) == (Exit.CERT_REJECTED, "unknown_ca")
        assert await live.ping()

        revoke(new.pki, new.ca, load_certificates(new.clients["carol"].cert)[0])
        files.write(crl=new.crl)
        assert server.reload("test: carol revoked")
        assert await attempt(port, new.clients["carol"], trust) == (Exit.CERT_REJECTED, "certificate_revoked")
        assert (await attempt(port, new.clients["bob"], trust))[0] is Exit.OK
        assert await live.ping()

        assert await live.quit()
        server.shutdown()
    assert [e["why"] for e in log_events(log, "reloaded")][-1] == "test: carol revoked"
    live_entry = [e for e in log_events(log, "connection") if e.get("requests", 0) >= 4]
    assert [e["subject"] for e in live_entry] == ["CN=alice"]  # one connection, open across every reload
    assert live_entry[0]["outcome"] == "accepted"


@pytest.mark.usefixtures("tls_engine")
async def test_broken_files_keep_the_old_context(tmp_path: Path) -> None:
    """A garbage certificate or a mismatched key is refused at reload; the old context keeps serving."""
    auth = authority(tmp_path, "only", ("alice",))
    other = authority(tmp_path, "other", ())
    files = Files(tmp_path)
    files.write(server=auth.server, ca=auth.root)
    log: list[str] = []
    config = files.server_config(crl=False)
    server = Server(config, log=EventLog("json", log.append))
    trust = auth.pki.path(auth.pki.ca_cert)
    async with trio.open_nursery() as nursery:
        port = (await nursery.start(server.serve))[0][1]
        atomic_write(
            files.cert, b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n", force=True
        )
        assert not server.reload("test: garbage")
        assert (await attempt(port, auth.clients["alice"], trust))[0] is Exit.OK
        files.write(server=auth.server)
        atomic_write(files.key, other.server.key.read_bytes(), mode=0o600, force=True)
        assert not server.reload("test: mismatched key")
        assert (await attempt(port, auth.clients["alice"], trust))[0] is Exit.OK
        server.shutdown()
    failures = log_events(log, "reload-failed")
    assert len(failures) == 2
    assert "does not belong to certificate" in failures[1]["error"]
    assert failures[0]["action"] == "still serving the previous context"


def test_file_watch_notices_changes(tmp_path: Path) -> None:
    """Rewriting or removing a watched file counts as a change, once."""
    path = tmp_path / "cert.pem"
    path.write_text("one")
    watch = FileWatch([path, None])
    assert not watch.changed()
    atomic_write(path, b"two", force=True)
    assert watch.changed()
    assert not watch.changed()
    path.unlink()
    assert watch.changed()


class _Live:
    def __init__(self, tls: TLSConnection) -> None:
        self.tls = tls
        self.buffer = b""

    async def _line(self) -> bytes:
        with trio.fail_after(5):
            while b"\n" not in self.buffer:
                chunk = await self.tls.receive_some(4096)
                if not chunk:
                    return b""
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line

    async def ping(self) -> bool:
        await self.tls.send_all(b"PING\n")
        return await self._line() == b"OK pong"

    async def quit(self) -> bool:
        await self.tls.send_all(b"QUIT\n")
        ok = await self._line() == b"OK bye"
        await self.tls.abort()
        return ok


async def _open_live(port: int, creds: IssuedFiles, trust: Path) -> _Live:
    config = loopback_client(port, creds, trust)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    tls = TLSConnection(
        stream, client_context(config, alpn=[ALPN_LINE]), server_side=False, server_hostname="localhost"
    )
    await tls.handshake()
    live = _Live(tls)
    assert (await live._line()).startswith(b"OK hello")
    return live


@pytest.mark.usefixtures("tls_engine")
async def test_changed_files_are_picked_up_without_a_signal(tmp_path: Path) -> None:
    """With reload_interval set, rewriting the CA file is noticed and reloaded by itself."""
    old = authority(tmp_path, "old", ("alice",))
    new = authority(tmp_path, "new", ("bob",))
    files = Files(tmp_path)
    files.write(server=old.server, ca=old.root)
    reloaded = trio.Event()
    log: list[str] = []

    def sink(line: str) -> None:
        log.append(line)
        if '"event": "reloaded"' in line:
            reloaded.set()

    config = dataclasses.replace(files.server_config(crl=False), reload_interval=0.05)
    server = Server(config, log=EventLog("json", sink))
    trust = tmp_path / "trust.pem"
    trust.write_bytes(old.root)
    async with trio.open_nursery() as nursery:
        port = (await nursery.start(server.serve))[0][1]
        assert (await attempt(port, new.clients["bob"], trust))[0] is Exit.CERT_REJECTED
        files.write(ca=new.root)
        with trio.fail_after(10):
            await reloaded.wait()
        assert (await attempt(port, new.clients["bob"], trust))[0] is Exit.OK
        server.shutdown()
    assert log_events(log, "reloaded")[0]["why"] == "files changed"


def test_every_crl_reader_refuses_a_certificate_in_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One strict loader: `mtls-certs verify --crl` and the server both refuse a CA certificate
    appended to a CRL file, naming the file and where CA certificates belong."""
    issuer = authority(tmp_path, "a", ("alice",))
    crl_path = issuer.pki.path(issuer.pki.crl)
    assert len(load_crls(crl_path)) == 2  # the control: intermediate's and root's CRL
    tainted = tmp_path / "tainted-crl.pem"
    tainted.write_bytes(issuer.crl + issuer.root)
    chain = issuer.clients["alice"].chain
    assert certs_main(["--pki-dir", str(issuer.pki.dir), "verify", str(chain), "--crl", str(tainted)]) == 3
    assert "holds CERTIFICATE besides CRLs" in capsys.readouterr().err
    with pytest.raises(CertificateError, match=r"^server CRL file .* besides CRLs.*in \[server\] ca$"):
        read_crls(tainted)


def test_a_missing_crl_file_is_named_with_the_fix(tmp_path: Path) -> None:
    """Missing: the server's configured file is a config error; a command-line path an unreadable file."""
    missing = tmp_path / "crl.pem"
    with pytest.raises(ConfigError, match=r"not found; write one with 'mtls-certs crl', or unset \[server\]"):
        read_crls(missing)
    with pytest.raises(CertificateError, match=r"cannot read CRL file .*; check the path"):
        load_crls(missing)
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"not a PEM file\n")
    with pytest.raises(CertificateError, match="holds no PEM CRL"):
        load_crls(empty)


def test_the_clients_crl_errors_name_the_client_section(tmp_path: Path) -> None:
    """[client] crl: the errors name the client's section and its fix, never [server]."""
    issuer = authority(tmp_path, "a", ("alice",))
    trust = issuer.pki.path(issuer.pki.ca_cert)
    with pytest.raises(ConfigError, match=r"^client CRL file .* or unset \[client\] crl$"):
        client_context(ClientConfig(ca=trust, crl=tmp_path / "missing.pem"))
    tainted = tmp_path / "tainted-crl.pem"
    tainted.write_bytes(issuer.crl + issuer.root)
    with pytest.raises(CertificateError, match=r"^client CRL file .* besides CRLs.*in \[client\] ca$"):
        client_context(ClientConfig(ca=trust, crl=tainted))
