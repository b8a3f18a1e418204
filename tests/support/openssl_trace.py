"""Reading what `openssl s_client -trace` shows: which certificates a side sent, subjects spelled as it
spells them."""

from __future__ import annotations

from pathlib import Path

from mtls_ref.shared.pki.keys import load_certificates


def certificates_sent(trace: str) -> list[str]:
    """The subjects, in order, of the certificates this side sent, from `openssl s_client -trace`
    output: the "Subject:" lines of each certificate printed in a "Sent Record" (TLS 1.3 records are
    shown decrypted, so the client's Certificate message is there on both versions)."""
    subjects: list[str] = []
    sending = False
    for line in trace.splitlines():
        if line.startswith(("Sent Record", "Received Record")):
            sending = line.startswith("Sent Record")
        elif sending and line.strip().startswith("Subject:"):
            subjects.append(line.split("Subject:", 1)[1].strip())
    return subjects


def subjects_in(path: Path) -> list[str]:
    """The subjects of the certificates in a PEM file, in order, spelled as `openssl -trace` does."""
    return [
        ", ".join(f"{attr.rfc4514_attribute_name} = {attr.value!s}" for attr in cert.subject)
        for cert in load_certificates(path)
    ]
