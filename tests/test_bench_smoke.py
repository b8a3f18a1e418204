"""`make bench` machinery works (a seconds-long smoke run); performance figures live only in the bench."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_bench_smoke_run_produces_every_figure(tmp_path: Path) -> None:
    """The smoke plan runs ours, s_server and the trio floor and writes every kind of figure."""
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench", "--smoke", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    figures = json.loads(out.read_text())
    row = figures["handshakes"]["p256/TLS1.3"]
    assert set(row) == {"ours", "s_server", "trio-floor"}
    for name, result in row.items():
        assert result["handshakes"] > 0 and result["failures"] == 0, (name, result)
        assert result["per_cpu_s"] > 0 and result["p99_ms"] >= result["p50_ms"] > 0
    assert figures["bulk"]["ours"]["download_mb_s"] > 0 and figures["bulk"]["ours"]["upload_mb_s"] > 0
    assert figures["idle"]["ours"]["20"]["held"] == 20
    assert figures["resumed"]["ours"]["resumed_fraction"] == 1.0
    assert "ours/s_server" in done.stdout
