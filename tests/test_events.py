"""Reading the server's JSON log back: events are taken, every other line is passed over."""

from __future__ import annotations

import pytest

from mtls_ref.shared.core.events import listening_port, parse_event


@pytest.mark.parametrize(
    "line",
    ["", "   ", "mtls-server 0.1.0", "{", "{not json}", "[1, 2]", '{"ts": "x"}', '{"event": 3}', b"\xff\xfe"],
)
def test_lines_that_are_not_events_are_none(line: str | bytes) -> None:
    """Blank banner lines, prose, broken JSON, arrays and objects without an event name give None."""
    assert parse_event(line) is None
    assert listening_port(line) is None


def test_event_from_str_and_bytes() -> None:
    """A JSON object with an event name parses the same from text or bytes, trailing newline included."""
    line = '{"ts": "t", "event": "connection", "outcome": "accepted"}\n'
    expected = {"ts": "t", "event": "connection", "outcome": "accepted"}
    assert parse_event(line) == parse_event(line.encode()) == expected


def test_listening_port_from_first_address() -> None:
    """The port comes from the first address of a listening event, IPv6 included; other events give None."""
    assert listening_port('{"event": "listening", "addresses": ["[::1]:8443", "127.0.0.1:8443"]}') == 8443
    assert listening_port('{"event": "listening", "addresses": []}') is None
    assert listening_port('{"event": "listening", "addresses": ["nowhere"]}') is None
    assert listening_port('{"event": "stopped", "addresses": ["127.0.0.1:1"]}') is None
