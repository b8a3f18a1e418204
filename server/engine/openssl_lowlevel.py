"""The OpenSSL calls pyOpenSSL does not offer, from cryptography's low-level bindings.

* ``SSL_CTX_set_msg_callback``: OpenSSL's message callback, which reports every
  handshake message, alert and record header in both directions. The handshake
  trace (``--trace``) is built on it, exactly as on the stdlib engine (CPython
  exposes the same callback as ``SSLContext._msg_callback``), so both engines
  record through :mod:`mtls_ref.shared.tls.trace` and draw the same diagram.
* ``SSL_CTX_set_verify`` with a C-level callback: on the hot path it only says
  "ok" back; when a peer's chain fails it hands the certificates OpenSSL got
  (the chain as far as it could build it from what the peer sent, leaf first)
  to the running task's recorder, which names them in the refusal. It replaces
  the message callback for that job because the message callback fires about
  45 times a handshake (every record header too) and cost ~10% of the
  server's CPU per connection; this one fires once per certificate, in C terms.
* ``SSL_CTX_set_info_callback``: without the trace, the alerts this side writes,
  for the log (pyOpenSSL's own wrapper looks the connection up on every call;
  this one only tests two bits until an alert is written).
* ``SSL_CTX_set_alpn_select_cb``: the server's ALPN choice, pointing into the
  client's own list instead of pyOpenSSL's wrapper (which looks the connection
  up, copies the list into Python objects and allocates the answer: ~10 µs of a
  handshake, measured in-process).
* ``SSL_session_reused``: whether this connection resumed a session.
* ``SSL_get_verify_result`` and ``X509_verify_cert_error_string``: why the
  peer's chain failed (the X509_V_ERR code CPython reports as ``verify_code``).

``cryptography.hazmat.bindings`` is not a stable API. Everything that touches it
is in this module; :func:`available` says whether it is all there, the server
refuses to start the openssl engine without it (naming the fix), and
``tests/test_openssl_engine.py`` fails loudly the day it disappears.

The message callback costs one C-to-Python call per message (about 10% of a
full handshake, measured), so it is installed only when the server traces.
"""

from __future__ import annotations

from typing import Any, Final

from OpenSSL import SSL

from mtls_ref.shared.tls import trace

__all__ = [
    "available",
    "install_alert_callback",
    "install_alpn_selector",
    "install_message_callback",
    "install_verify_callback",
    "missing",
    "session_reused",
    "verify_result",
]

try:
    from cryptography.hazmat.bindings.openssl.binding import Binding

    _ffi: Any = Binding.ffi
    _lib: Any = Binding.lib
    _MISSING: list[str] = [
        name
        for name in (
            "SSL_CTX_set_msg_callback",
            "SSL_CTX_set_info_callback",
            "SSL_CTX_set_verify",
            "SSL_CTX_set_alpn_select_cb",
            "X509_STORE_CTX_get1_chain",
            "i2d_X509_bio",
            "BIO_get_mem_data",
            "SSL_session_reused",
            "SSL_get_verify_result",
            "X509_verify_cert_error_string",
        )
        if not hasattr(_lib, name)
    ]
except ImportError:  # pragma: no cover - only when cryptography drops the module
    _ffi = _lib = None
    _MISSING = ["cryptography.hazmat.bindings.openssl.binding"]


def available() -> bool:
    """Whether the bindings still offer what this module needs."""
    return not _MISSING


def missing() -> list[str]:
    """The names that are gone, for the error message."""
    return list(_MISSING)


def _on_message(  # noqa: PLR0917 - the signature OpenSSL calls
    write_p: int, version: int, content_type: int, buf: Any, length: int, ssl: Any, arg: Any
) -> None:
    recorder = trace.current_recorder()
    if recorder is None:
        return
    data: bytes = _ffi.buffer(buf, length)[:]
    recorder.record("write" if write_p else "read", version, content_type, data[0] if data else -1, data)


# SSL_CB_ALERT | SSL_CB_WRITE (ssl.h): the info callback's report of an alert this side wrote.
_WRITE_ALERT: Final = 0x4000 | 0x08


def _on_info(ssl: Any, where: int, ret: int) -> None:
    """The always-on callback: the alert this side writes, so the log names the alert on the wire
    instead of one a table expects. OpenSSL's info callback reports handshake states and alerts
    (``ret``: level << 8 | description, SSL_CTX_set_info_callback(3)), TLS 1.3's encrypted alerts
    too; every call that is not an alert we write returns at the first test."""
    if where & _WRITE_ALERT != _WRITE_ALERT:
        return
    recorder = trace.current_recorder()
    if recorder is not None:
        description = ret & 0xFF
        recorder.sent_alert = trace.ALERT_NAMES.get(description, str(description))


# One C callback of each kind for the process, kept alive here for as long as any context may call it.
_MESSAGE_SIGNATURE: Final = "void(int, int, int, const void *, size_t, SSL *, void *)"
_CALLBACK: Final = _ffi.callback(_MESSAGE_SIGNATURE, _on_message) if available() else None
_INFO_CALLBACK: Final = _ffi.callback("void(SSL *, int, int)", _on_info) if available() else None


def _on_verify(ok: int, store: Any) -> int:
    if ok:
        return 1
    recorder = trace.current_recorder()
    if recorder is not None and not recorder.peer_certificates:
        recorder.peer_certificates = _chain_der(store)
    return 0


def _chain_der(store: Any) -> list[bytes]:
    """DER of the chain in an X509_STORE_CTX, leaf first (get1: we own the references)."""
    chain = _lib.X509_STORE_CTX_get1_chain(store)
    if chain == _ffi.NULL:
        return []
    ders = []
    try:
        for index in range(_lib.sk_X509_num(chain)):
            cert = _lib.sk_X509_value(chain, index)
            bio = _lib.BIO_new(_lib.BIO_s_mem())
            try:
                if _lib.i2d_X509_bio(bio, cert) == 1:
                    data = _ffi.new("char **")
                    size = _lib.BIO_get_mem_data(bio, data)
                    ders.append(_ffi.buffer(data[0], size)[:])
            finally:
                _lib.BIO_free(bio)
            _lib.X509_free(cert)
    finally:
        _lib.sk_X509_free(chain)
    return ders


_VERIFY_CALLBACK: Final = _ffi.callback("int(int, X509_STORE_CTX *)", _on_verify) if available() else None


# The ALPN selectors made so far, one per list of ours (a server has one or two lists: with and without
# h2), kept alive for the process as OpenSSL holds their addresses.
_ALPN_SELECTORS: dict[tuple[bytes, ...], Any] = {}
_ALPN_SIGNATURE: Final = (
    "int(SSL *, unsigned char **, unsigned char *, const unsigned char *, unsigned int, void *)"
)
_ALPN_OK: Final = 0  # SSL_TLSEXT_ERR_OK
_ALPN_NOACK: Final = 3  # SSL_TLSEXT_ERR_NOACK


def _alpn_selector(ours: tuple[bytes, ...]) -> Any:
    """A C callback choosing the first of ``ours`` that the client offers (RFC 7301 §3.2: the server's
    preference), or none (``SSL_TLSEXT_ERR_NOACK``: no ALPN in ServerHello, no alert)."""

    def select(ssl: Any, out: Any, outlen: Any, offered: Any, offered_len: int, arg: Any) -> int:  # noqa: PLR0917
        # The client's list is length-prefixed entries (OpenSSL has checked its framing).
        data: bytes = _ffi.buffer(offered, offered_len)[:]
        where: dict[bytes, int] = {}
        at = 0
        while at < offered_len:
            end = at + 1 + data[at]
            where[data[at + 1 : end]] = at + 1
            at = end
        for protocol in ours:
            start = where.get(protocol)
            if start is not None:
                out[0] = offered + start  # OpenSSL allows pointing into the client's list
                outlen[0] = len(protocol)
                return _ALPN_OK
        return _ALPN_NOACK

    # An exception (which cannot come from a list OpenSSL has checked) means no ALPN, not a crash.
    return _ffi.callback(_ALPN_SIGNATURE, select, error=_ALPN_NOACK)


def install_alpn_selector(context: SSL.Context, ours: tuple[bytes, ...]) -> None:
    """Have ``context`` choose ALPN from ``ours``, in that order (a client offering none of them gets
    no ALPN, and the handler sniffs)."""
    if not available():
        raise trace.TraceUnavailable(f"cryptography's OpenSSL bindings lack {', '.join(_MISSING)}")
    selector = _ALPN_SELECTORS.get(ours)
    if selector is None:
        selector = _ALPN_SELECTORS[ours] = _alpn_selector(ours)
    _lib.SSL_CTX_set_alpn_select_cb(context._context, selector, _ffi.NULL)


def install_verify_callback(context: SSL.Context, mode: int) -> None:
    """Require and verify the peer's certificate with OpenSSL's own checks (``mode``), keeping the
    chain of a peer that fails them for the refusal's words."""
    if _VERIFY_CALLBACK is None:
        raise trace.TraceUnavailable(f"cryptography's OpenSSL bindings lack {', '.join(_MISSING)}")
    _lib.SSL_CTX_set_verify(context._context, mode, _VERIFY_CALLBACK)


def install_message_callback(context: SSL.Context) -> None:
    """Route ``context``'s message callback to the recorder of the task driving each connection."""
    if _CALLBACK is None:
        raise trace.TraceUnavailable(f"cryptography's OpenSSL bindings lack {', '.join(_MISSING)}")
    _lib.SSL_CTX_set_msg_callback(context._context, _CALLBACK)


def install_alert_callback(context: SSL.Context) -> None:
    """Report the alerts ``context``'s connections write to the recorder of the task driving each.

    OpenSSL's info callback, filtered to alerts written: it fires about 21 times in a full handshake
    where the message callback (which also sees every record header) fires about 40, and each
    firing is a C-to-Python call; measured in-process, server side, full P-256 TLS 1.3 handshakes."""
    if _INFO_CALLBACK is None:
        raise trace.TraceUnavailable(f"cryptography's OpenSSL bindings lack {', '.join(_MISSING)}")
    _lib.SSL_CTX_set_info_callback(context._context, _INFO_CALLBACK)


def session_reused(connection: SSL.Connection) -> bool:
    """True when the handshake resumed an earlier session (ticket or session id)."""
    return bool(_lib.SSL_session_reused(connection._ssl))


def verify_result(connection: SSL.Connection) -> tuple[int, str]:
    """The X509_V_ERR code of the peer's chain (0: it verified) and OpenSSL's words for it."""
    code = int(_lib.SSL_get_verify_result(connection._ssl))
    return code, _ffi.string(_lib.X509_verify_cert_error_string(code)).decode()
