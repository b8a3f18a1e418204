from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class WhoAmIRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WhoAmIResponse(_message.Message):
    __slots__ = ("subject", "issuer", "sans", "spiffe_id", "serial", "sha256", "key", "not_after", "tls_version", "cipher", "verified_chain", "session_resumed")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    SANS_FIELD_NUMBER: _ClassVar[int]
    SPIFFE_ID_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    TLS_VERSION_FIELD_NUMBER: _ClassVar[int]
    CIPHER_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_CHAIN_FIELD_NUMBER: _ClassVar[int]
    SESSION_RESUMED_FIELD_NUMBER: _ClassVar[int]
    subject: str
    issuer: str
    sans: _containers.RepeatedScalarFieldContainer[str]
    spiffe_id: str
    serial: str
    sha256: str
    key: str
    not_after: str
    tls_version: str
    cipher: str
    verified_chain: _containers.RepeatedScalarFieldContainer[str]
    session_resumed: bool
    def __init__(self, subject: _Optional[str] = ..., issuer: _Optional[str] = ..., sans: _Optional[_Iterable[str]] = ..., spiffe_id: _Optional[str] = ..., serial: _Optional[str] = ..., sha256: _Optional[str] = ..., key: _Optional[str] = ..., not_after: _Optional[str] = ..., tls_version: _Optional[str] = ..., cipher: _Optional[str] = ..., verified_chain: _Optional[_Iterable[str]] = ..., session_resumed: _Optional[bool] = ...) -> None: ...
