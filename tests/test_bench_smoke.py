"""`make bench` machinery works (a seconds-long smoke run); performance figures live only in the bench."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


def bench(tmp_path: Path, *flags: str) -> tuple[str, dict[str, Any]]:
    """``python -m tests.bench FLAGS``: what it printed and the figures it wrote (it must succeed)."""
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench", *flags, "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    figures: dict[str, Any] = json.loads(out.read_text())
    return done.stdout, figures


@pytest.mark.usefixtures("openssl")  # s_server is a contestant: without it, a skip that says so
def test_bench_smoke_run_produces_every_figure(tmp_path: Path) -> None:
    """The smoke plan runs ours on both engines (and recording handshakes), s_server and the floors,
    and writes every kind of figure."""
    printed, figures = bench(tmp_path, "--smoke")
    row = figures["handshakes"]["p256/TLS1.3"]
    assert set(row) == {
        "ours",
        "ours-stdlib",
        "ours-recording",
        "s_server",
        "trio-floor",
        "pyopenssl-floor",
        "pyopenssl-work",
    }
    for name, (result,) in row.items():
        assert result["handshakes"] > 0 and result["failures"] == 0, (name, result)
        assert result["per_cpu_s"] > 0 and result["p99_ms"] >= result["p50_ms"] > 0
    for name in ("ours", "ours-stdlib"):
        assert figures["bulk"][name]["download_mb_s"] > 0 and figures["bulk"][name]["upload_mb_s"] > 0
        assert figures["idle"][name]["20"]["held"] == 20
        assert figures["resumed"][name]["resumed_fraction"] == 1.0
    assert figures["libraries"]["ours"].startswith("OpenSSL ")
    assert "ours-recording" not in figures["bulk"]  # it is there for the handshake figure only
    assert "ours/pyopenssl-floor" in printed and "Targets" in printed
    assert "ours-recording/ours" in printed


@pytest.mark.usefixtures("nginx")
def test_bench_h2_switch_runs_only_the_http2_rows(tmp_path: Path) -> None:
    """``--h2 --smoke`` measures ours and nginx over HTTP/2 (both figures, no failures) and nothing else."""
    printed, figures = bench(tmp_path, "--h2", "--smoke")
    assert figures["handshakes"] == {} and set(figures["h2"]) == {"streams", "connections"}
    for figure in ("streams", "connections"):
        for name in ("ours", "nginx"):
            (row,) = figures["h2"][figure][name]
            assert row["per_cpu_s"] > 0 and row.get("failures", 0) == 0, (figure, name, row)
    assert "ours/nginx=" in printed and "Targets" not in printed
