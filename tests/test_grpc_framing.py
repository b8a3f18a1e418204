"""gRPC's framing, in memory: length-prefixed messages, their bounds, status trailers, grpc-message."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtls_ref.shared.grpc import (
    GrpcError,
    GrpcStatus,
    decode_grpc_message,
    encode_grpc_message,
    frame_message,
    is_grpc_content_type,
    parse_messages,
    status_from_http,
    status_from_trailers,
    unary_message,
)

LIMIT = 1024


def test_the_seventeen_codes_are_grpcs() -> None:
    """0 OK to 16 UNAUTHENTICATED, as doc/statuscodes.md numbers them."""
    assert len(GrpcStatus) == 17
    assert (GrpcStatus.OK, GrpcStatus.PERMISSION_DENIED, GrpcStatus.UNAUTHENTICATED) == (0, 7, 16)


def test_a_message_is_flag_then_big_endian_length() -> None:
    """One uncompressed message: 00, then the length in four bytes, most significant first."""
    assert frame_message(b"\x08\x01") == b"\x00\x00\x00\x00\x02\x08\x01"
    assert frame_message(b"") == b"\x00\x00\x00\x00\x00"


@given(st.lists(st.binary(max_size=LIMIT), max_size=5))
def test_framed_messages_parse_back(messages: list[bytes]) -> None:
    """Any messages within the bound, framed one after another, parse back as they were."""
    assert parse_messages(b"".join(map(frame_message, messages)), max_message=LIMIT) == messages


@given(st.binary(min_size=1, max_size=64), st.data())
def test_a_cut_body_is_internal(message: bytes, data: st.DataObject) -> None:
    """A body that ends inside a prefix or a message is INTERNAL, never a shorter message."""
    framed = frame_message(message)
    cut = data.draw(st.integers(min_value=1, max_value=len(framed) - 1))
    with pytest.raises(GrpcError) as caught:
        parse_messages(framed[:cut], max_message=LIMIT)
    assert caught.value.status is GrpcStatus.INTERNAL
    assert "ends inside" in caught.value.message


def test_a_message_over_the_bound_is_refused_from_its_prefix() -> None:
    """RESOURCE_EXHAUSTED from the five-byte prefix alone: the claimed length is not waited for."""
    with pytest.raises(GrpcError) as caught:
        parse_messages(b"\x00\xff\xff\xff\xff", max_message=LIMIT)
    assert caught.value.status is GrpcStatus.RESOURCE_EXHAUSTED
    assert caught.value.message == f"a message of {0xFFFFFFFF} bytes; the limit is {LIMIT}"


def test_a_compressed_message_we_did_not_negotiate_is_an_error() -> None:
    """Flag 1 without a grpc-encoding (we accept none) is INTERNAL; flag 2 is not defined at all."""
    with pytest.raises(GrpcError, match="no compression was negotiated") as caught:
        parse_messages(b"\x01\x00\x00\x00\x00", max_message=LIMIT)
    assert caught.value.status is GrpcStatus.INTERNAL
    with pytest.raises(GrpcError, match="compressed-flag byte 2"):
        parse_messages(b"\x02\x00\x00\x00\x00", max_message=LIMIT)


@pytest.mark.parametrize("count", [0, 2])
def test_a_unary_body_holds_exactly_one_message(count: int) -> None:
    """No message, or two, in a unary call's body is INTERNAL."""
    with pytest.raises(GrpcError, match=f"this one has {count}") as caught:
        unary_message(frame_message(b"x") * count, max_message=LIMIT)
    assert caught.value.status is GrpcStatus.INTERNAL
    assert unary_message(frame_message(b"x"), max_message=LIMIT) == b"x"


def test_grpc_message_is_percent_encoded_as_the_spec_says() -> None:
    """Space and visible ASCII stay; '%', controls and UTF-8 bytes become %XX (upper-case hex)."""
    assert encode_grpc_message("CN=alice is not allowed") == b"CN=alice is not allowed"
    assert encode_grpc_message("100%\n") == b"100%25%0A"
    assert encode_grpc_message("café") == b"caf%C3%A9"


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"])))  # UTF-8 has no lone surrogates
def test_grpc_message_round_trips(text: str) -> None:
    """Any text comes back from its encoding, and the encoding is printable ASCII."""
    encoded = encode_grpc_message(text)
    assert all(0x20 <= b <= 0x7E for b in encoded)
    assert decode_grpc_message(encoded) == text


@given(st.binary())
def test_decoding_never_fails(value: bytes) -> None:
    """A receiver must not fail on a bad grpc-message: broken escapes stay, bad UTF-8 becomes U+FFFD."""
    decode_grpc_message(value)


def test_broken_escapes_stay_as_they_came() -> None:
    """'%' without two hex digits after it is kept; a valid escape beside it is decoded."""
    assert decode_grpc_message(b"50%-%zz%4") == "50%-%zz%4"
    assert decode_grpc_message(b"%41%ff") == "A\ufffd"


def test_status_comes_from_the_trailers() -> None:
    """grpc-status and grpc-message, decoded; an undefined code reads as UNKNOWN; none is None."""
    assert status_from_trailers([(b"grpc-status", b"7"), (b"grpc-message", b"no%21")]) == (
        GrpcStatus.PERMISSION_DENIED,
        "no!",
    )
    assert status_from_trailers([(b"grpc-status", b"0")]) == (GrpcStatus.OK, "")
    assert status_from_trailers([(b"grpc-status", b"42")]) == (
        GrpcStatus.UNKNOWN,
        "grpc-status b'42' is not a status code",
    )
    assert status_from_trailers([(b"content-type", b"application/grpc")]) is None


def test_http_statuses_map_as_grpc_documents() -> None:
    """doc/http-grpc-status-mapping.md: 403 PERMISSION_DENIED, 404 UNIMPLEMENTED, 503 UNAVAILABLE, else
    UNKNOWN."""
    assert status_from_http(403) is GrpcStatus.PERMISSION_DENIED
    assert status_from_http(404) is GrpcStatus.UNIMPLEMENTED
    assert status_from_http(503) is GrpcStatus.UNAVAILABLE
    assert status_from_http(200) is GrpcStatus.UNKNOWN


@pytest.mark.parametrize(
    ("value", "grpc"),
    [
        (b"application/grpc", True),
        (b"application/grpc+proto", True),
        (b"Application/gRPC; charset=x", True),
        (b"application/grpc-web", False),
        (b"application/json", False),
        (b"", False),
    ],
)
def test_grpc_content_types(value: bytes, grpc: bool) -> None:
    """application/grpc, alone or with +format or parameters, is gRPC; grpc-web and the rest are not."""
    assert is_grpc_content_type(value) is grpc
