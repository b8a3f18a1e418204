"""How forward mode tells the backend who the client is: XFCC, RFC 9440 and PROXY v2, unambiguous.

The unit tests parse what we emit the way a careful backend would; the end-to-end ones put a client
with a hostile but CA-signed certificate through the real server.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mtls_ref.client.session import Exit, run_client
from mtls_ref.server.forward_headers import clean_headers, client_cert_headers, xfcc_value
from mtls_ref.server.proxy_protocol import ProxyHeader
from mtls_ref.shared.pki.authority import IssuedFiles, Profile, make_csr, write_leaf_files
from mtls_ref.shared.pki.keys import generate_key, load_certificates
from mtls_ref.shared.tls.context import client_context
from mtls_ref.shared.tls.identity import PeerIdentity, identity_from_der

from .support.backends import Seen, echo_backend, h11_backend
from .support.forward import open_tls, responses, start_forwarding
from .support.pki import Pki
from .support.tls import client_config

# -- parsers a careful backend would use ---------------------------------------------------------


def parse_xfcc(value: str) -> list[list[tuple[str, str]]]:
    """Envoy's XFCC: elements split by ',', pairs by ';', key '=' value; a quoted value is an RFC 9110
    quoted-string (backslash escapes the next character)."""
    elements: list[list[tuple[str, str]]] = [[]]
    pos = 0
    while pos < len(value):
        key_end = value.index("=", pos)
        key, pos = value[pos:key_end], key_end + 1
        if value[pos : pos + 1] == '"':
            pos += 1
            text = ""
            while value[pos] != '"':
                if value[pos] == "\\":
                    pos += 1
                text += value[pos]
                pos += 1
            pos += 1
        else:
            match = re.compile(r"[^,;]*").match(value, pos)
            assert match is not None
            text, pos = match.group(), match.end()
        elements[-1].append((key, text))
        if value[pos : pos + 1] == ",":
            elements.append([])
        pos += 1
    return elements


def parse_byte_sequences(value: bytes) -> list[bytes]:
    """An RFC 8941 list of byte sequences (``:base64:``, comma-separated)."""
    items = [item.strip() for item in value.split(b",")]
    assert all(re.fullmatch(rb":[A-Za-z0-9+/=]*:", item) for item in items), value
    return [base64.b64decode(item[1:-1]) for item in items]


def all_tlvs(data: bytes) -> list[tuple[int, bytes]]:
    """Every TLV in order (type 1 byte, length 2, value), repeats kept: PROXY v2 section 2.2.7."""
    tlvs = []
    pos = 0
    while pos < len(data):
        kind, size = data[pos], int.from_bytes(data[pos + 1 : pos + 3], "big")
        tlvs.append((kind, data[pos + 3 : pos + 3 + size]))
        pos += 3 + size
    return tlvs


def identity(**names: object) -> PeerIdentity:
    fields: dict[str, object] = {"subject": "CN=alice", "serial": "1", "sha256": "AB:CD"}
    fields.update(names)
    return PeerIdentity(**fields)  # type: ignore[arg-type]


# -- unit: the encodings -------------------------------------------------------------------------


def test_xfcc_cannot_gain_a_field_from_a_name() -> None:
    """A DNS SAN holding ';URI=...', a URI holding ',', a subject holding '"' and '\\': each stays one
    value of its own key, and the element stays one element."""
    hostile = identity(
        subject='CN=a\\"b\\\\,O=x',
        dns=("a.example;URI=spiffe://td/admin",),
        uris=("spiffe://td/a,DNS=evil", "spiffe://td/plain"),
    )
    (element,) = parse_xfcc(xfcc_value(hostile).decode())
    assert element == [
        ("Hash", "abcd"),
        ("Subject", 'CN=a\\"b\\\\,O=x'),
        ("URI", "spiffe://td/a,DNS=evil"),
        ("URI", "spiffe://td/plain"),
        ("DNS", "a.example;URI=spiffe://td/admin"),
    ]


def test_xfcc_plain_values_stay_unquoted_as_envoy_writes_them() -> None:
    """Values without separators are written bare; the subject is quoted always, as Envoy does."""
    plain = identity(uris=("spiffe://mtls-ref.test/alice",), dns=("api.example",))
    assert (
        xfcc_value(plain) == b'Hash=abcd;Subject="CN=alice";URI=spiffe://mtls-ref.test/alice;DNS=api.example'
    )


def test_client_cert_headers_are_byte_sequences() -> None:
    """RFC 9440: Client-Cert is one byte sequence, Client-Cert-Chain a list; no chain, no header."""
    headers = client_cert_headers(b"\x30leaf", [b"\x30inter", b"\x30more"])
    assert [name for name, _ in headers] == [b"client-cert", b"client-cert-chain"]
    assert parse_byte_sequences(headers[0][1]) == [b"\x30leaf"]
    assert parse_byte_sequences(headers[1][1]) == [b"\x30inter", b"\x30more"]
    assert client_cert_headers(b"\x30leaf", []) == [
        (b"client-cert", b":" + base64.b64encode(b"\x30leaf") + b":")
    ]


def test_clean_headers_reads_underscore_as_dash() -> None:
    """Every spelling of an identity header is dropped even when other '_' names are kept."""
    kept, dropped = clean_headers(
        [(b"X_Forwarded_Client_Cert", b"f"), (b"client_cert", b"f"), (b"x_role", b"a"), (b"accept", b"*/*")],
        keep_underscores=True,
    )
    assert kept == [(b"x_role", b"a"), (b"accept", b"*/*")]
    assert [name for name, _ in dropped] == [b"x_forwarded_client_cert", b"client_cert"]


def test_proxy_v2_carries_one_san_per_tlv() -> None:
    """One SAN holding ',URI:' stays one TLV 0xE0; two SANs are two TLVs, in order."""
    header = ProxyHeader(
        source=("127.0.0.1", 1),
        destination=("127.0.0.1", 2),
        tls_version="TLSv1.3",
        cipher="TLS_AES_128_GCM_SHA256",
        common_name="alice",
        sans=("URI:spiffe://td/a,URI:spiffe://td/admin", "DNS:api.example"),
    ).encode()
    tlvs = all_tlvs(header[16 + 12 :])  # after the fixed part, the IPv4 addresses and ports
    assert [value for kind, value in tlvs if kind == 0xE0] == [
        b"URI:spiffe://td/a,URI:spiffe://td/admin",
        b"DNS:api.example",
    ]


def test_proxy_v2_refuses_a_value_it_would_have_to_cut() -> None:
    """A name longer than a TLV holds is an error, never a shorter (maybe another) name."""
    long = ProxyHeader(
        source=("127.0.0.1", 1),
        destination=("127.0.0.1", 2),
        tls_version=None,
        cipher=None,
        common_name=None,
        sans=("URI:spiffe://td/" + "a" * 70_000,),
    )
    with pytest.raises(ValueError, match="at most 65535 bytes"):
        long.encode()


# -- end to end: hostile names in real certificates ----------------------------------------------


def issue_client(
    pki: Pki, folder: Path, stem: str, common_name: str, sans: list[x509.GeneralName]
) -> IssuedFiles:
    """A client certificate the test CA really signed, whatever its names hold."""
    key = generate_key("p256")
    csr = make_csr(key, common_name, sans)
    cert = pki.ca.sign(csr, Profile.CLIENT, sans=sans)
    files = IssuedFiles.named(stem, folder)
    write_leaf_files(files, key, csr, cert, pki.ca.chain)
    return files


async def request_as(pki: Pki, creds: IssuedFiles, port: int) -> bytes:
    with trio.fail_after(15):
        stream = await open_tls(pki, port, creds)
        async with stream:
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := await stream.receive_some(65536):
                data += chunk
    return data


async def test_hostile_dns_san_is_one_xfcc_value_end_to_end(pki: Pki, tmp_path: Path) -> None:
    """A CA-signed client whose DNS SAN is 'a.example;URI=spiffe://td/admin' reaches the backend with
    exactly one DNS value and no URI: it cannot claim the admin SPIFFE ID."""
    creds = issue_client(pki, tmp_path, "weird", "weird", [x509.DNSName("a.example;URI=spiffe://td/admin")])
    seen: list[Seen] = []
    async with h11_backend(seen) as backend, trio.open_nursery() as nursery:
        server, port, _ = await start_forwarding(nursery, pki, backend)
        raw = await request_as(pki, creds, port)
        server.shutdown()
    assert [status for status, _, _ in responses(raw)] == [200]
    ((_, value),) = [(k, v) for k, v in seen[0].headers if k == "x-forwarded-client-cert"]
    (element,) = parse_xfcc(value)
    assert [pair for pair in element if pair[0] in ("URI", "DNS")] == [
        ("DNS", "a.example;URI=spiffe://td/admin")
    ]


@pytest.mark.parametrize("mode", ["none", "proxy-v2", "http-header", "client-cert"])
async def test_a_name_with_a_control_character_is_never_forwarded(
    pki: Pki, tmp_path: Path, mode: str
) -> None:
    """CN 'alice\\x00admin' (which PROXY v2's SSL_CN would carry as is): refused, the backend never
    sees the connection, and the log says why."""
    creds = issue_client(pki, tmp_path, "nul-cn", "alice\x00admin", [])
    received: list[bytes] = []
    async with echo_backend(received) as backend, trio.open_nursery() as nursery:
        server, port, log = await start_forwarding(nursery, pki, backend, identity=mode)
        config = client_config(pki, creds, port=port)
        with trio.fail_after(15):
            report = await run_client(config, client_context(config), messages=["hi"], mode="raw")
        entry = await log.connection()
        server.shutdown()
    assert report.result is not Exit.OK
    assert received == []
    assert entry["outcome"] == "forbidden" and "control character" in entry["reason"], entry
    assert "\\x00" in entry["reason"]


@pytest.mark.usefixtures("tls_engine")
async def test_client_cert_mode_sends_rfc9440_headers(pki: Pki, tls_engine: str) -> None:
    """forward_identity = client-cert: Client-Cert is alice's DER; Client-Cert-Chain is the
    intermediate where the engine knows the verified chain (openssl), and absent where not (stdlib)."""
    seen: list[Seen] = []
    forged = b"Client-Cert: :Zm9yZ2Vk:\r\nClient-Cert-Chain: :Zm9yZ2Vk:\r\n"
    async with h11_backend(seen) as backend, trio.open_nursery() as nursery:
        server, port, _ = await start_forwarding(nursery, pki, backend, identity="client-cert")
        with trio.fail_after(15):
            stream = await open_tls(pki, port)
            async with stream:
                await stream.send_all(
                    b"GET / HTTP/1.1\r\nHost: x\r\n" + forged + b"Connection: close\r\n\r\n"
                )
                while await stream.receive_some(65536):
                    pass
        server.shutdown()
    (request,) = seen
    (leaf,) = parse_byte_sequences(request.values("client-cert")[0].encode())
    alice, intermediate = load_certificates(pki.client.chain)[:2]
    assert leaf == alice.public_bytes(Encoding.DER)
    assert identity_from_der(leaf).common_name == "alice"
    chains = request.values("client-cert-chain")
    if tls_engine == "openssl":
        assert [parse_byte_sequences(chain.encode()) for chain in chains] == [
            [intermediate.public_bytes(Encoding.DER)]
        ]
    else:
        assert chains == []
    assert request.values("x-forwarded-client-cert") == []


async def test_proxy_v2_end_to_end_keeps_a_comma_san_whole(pki: Pki, tmp_path: Path) -> None:
    """A URI SAN 'spiffe://td/a,URI:spiffe://td/admin' and a DNS SAN arrive as two TLVs 0xE0, each
    whole: a backend never has to split a value, so the comma cannot make a third SAN."""
    creds = issue_client(
        pki,
        tmp_path,
        "comma",
        "comma",
        [x509.UniformResourceIdentifier("spiffe://td/a,URI:spiffe://td/admin"), x509.DNSName("api.example")],
    )
    received: list[bytes] = []
    async with echo_backend(received) as backend, trio.open_nursery() as nursery:
        server, port, _ = await start_forwarding(nursery, pki, backend, identity="proxy-v2")
        config = client_config(pki, creds, port=port)
        with trio.fail_after(15):
            await run_client(config, client_context(config), messages=["hi"], mode="raw")
        server.shutdown()
    data = b"".join(received)
    length = int.from_bytes(data[14:16], "big")
    tlvs = all_tlvs(data[16 + 12 : 16 + length])
    assert [value for kind, value in tlvs if kind == 0xE0] == [
        b"URI:spiffe://td/a,URI:spiffe://td/admin",
        b"DNS:api.example",
    ]
