"""`make bench`: the figures of the engine issue, every one as a ratio to baselines from the same run.

Contestants, all started once per key type with the same certificates and measured in turn, in an
order that rotates every round: ours on the openssl engine (the default) and on the stdlib engine,
nginx with `ssl_verify_client on`, `openssl s_server -Verify 1 -verify_return_error`, and two floors
with nothing of this project in them (a bare trio loop on pyOpenSSL, and one on trio's SSLStream).
Load: full mTLS handshakes without resumption, each followed by one request/reply and a close, from
several client processes. The figure is handshakes per server CPU-second (server CPU from /proc), which
holds up on a shared 2-core machine where the load generator competes for the cores; ratios are taken
per round and their median reported. Forward mode is measured against HAProxy doing the same job, to
the same plain backend, and bulk through ``mtls-client tunnel``. Every loop is bounded in time and count.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtls_ref.shared.core.config import PKIConfig
from mtls_ref.shared.pki.authority import CertificateAuthority

from ..support.peers import require_peer
from ..support.pki import LOOPBACK_SANS, issue_client, issue_server
from . import h2, load, servers
from .proc import cpu_seconds, rss_bytes

LINE_REQUEST = {
    "ours": (b"PING\n", 2, ("mtls-ref/1",)),
    "ours-stdlib": (b"PING\n", 2, ("mtls-ref/1",)),
    "ours-recording": (b"PING\n", 2, ("mtls-ref/1",)),
    "s_server": (b"ping\n", 1, ()),
    "trio-floor": (b"ping\n", 1, ()),
    "pyopenssl-floor": (b"ping\n", 1, ()),
    "pyopenssl-work": (b"PING\n", 2, ()),
    "nginx": (b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", 1, ()),
    # Forward mode: the line goes through to the plain backend, which echoes it.
    "ours-forward": (b"ping\n", 1, ()),
    "haproxy": (b"ping\n", 1, ()),
}
OURS = ("ours", "ours-stdlib")
# Measured in the handshake rounds only: what record_handshakes (the browser page's diagram) costs,
# and the floor plus the work our behaviour needs (how much of the gap to the floor is that work).
HANDSHAKES_ONLY = ("ours-recording", "pyopenssl-work")
# The structure issue's targets: (figure, numerator, denominator, at least).
TARGETS = tuple(
    (f"{key}/TLS{version}", "ours", bottom, least)
    for key in ("p256", "rsa2048")
    for version in ("1.3", "1.2")
    for bottom, least in (("nginx", 1.0), ("pyopenssl-floor", 0.8))
)
IDLE_TARGET_KIB = 30.0


@dataclass(frozen=True, slots=True)
class Plan:
    key_types: tuple[str, ...]
    versions: tuple[str, ...]
    seconds: float
    rounds: int
    processes: int
    s_time_seconds: int
    bulk_bytes: int
    idle_counts: tuple[int, ...]
    nginx: bool
    workers: bool
    forward: bool = False


PLANS = {
    "full": Plan(
        ("p256", "rsa2048"), ("1.3", "1.2"), 3.0, 3, 4, 3, 100 * 1024 * 1024, (1000, 5000), True, True, True
    ),
    "quick": Plan(("p256",), ("1.3", "1.2"), 1.5, 3, 4, 2, 20 * 1024 * 1024, (300,), True, True, True),
    "smoke": Plan(("p256",), ("1.3",), 0.5, 1, 2, 1, 1024 * 1024, (20,), False, False),
}


def credentials(work: Path, key_type: str) -> servers.Credentials:
    pki = PKIConfig(dir=work / key_type, key_type=key_type, ca_common_name=f"bench {key_type} CA")
    ca = CertificateAuthority.create(pki)
    server = issue_server(ca, pki, sans=LOOPBACK_SANS, key_type=key_type)
    client = issue_client(ca, pki, "client", "URI:spiffe://bench.test/client", key_type=key_type)
    return servers.Credentials(
        key_type=key_type,
        ca=pki.path(pki.ca_cert),
        server_cert=server.cert,
        server_key=server.key,
        client_cert=client.cert,
        client_key=client.key,
    )


def target(name: str, creds: servers.Credentials, port: int, tls: str) -> load.Target:
    request, lines, alpn = LINE_REQUEST[name]
    return load.Target(
        port=port,
        ca=str(creds.ca),
        cert=str(creds.client_cert),
        key=str(creds.client_key),
        tls=tls,
        request=request,
        reply_lines=lines,
        alpn=alpn,
    )


def handshakes(running: servers.Running, tgt: load.Target, plan: Plan) -> dict[str, Any]:
    """Full handshakes + one exchange from ``plan.processes`` client processes."""
    cpu_before, start = cpu_seconds(running.pids()), time.perf_counter()
    with multiprocessing.get_context("fork").Pool(plan.processes) as pool:
        results = pool.starmap(load.handshake_worker, [(tgt, plan.seconds, 1_000_000)] * plan.processes)
    wall = time.perf_counter() - start
    cpu = max(cpu_seconds(running.pids()) - cpu_before, 1e-9)
    latencies = sorted(x for lat, _ in results for x in lat)
    count = len(latencies)
    return {
        "handshakes": count,
        "failures": sum(f for _, f in results),
        "per_s": count / wall,
        "per_cpu_s": count / cpu,
        "server_cpu_s": cpu,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else None,
        "p99_ms": 1000 * latencies[min(count - 1, int(count * 0.99))] if latencies else None,
    }


def s_time(running: servers.Running, creds: servers.Credentials, tls: str, seconds: int) -> dict[str, Any]:
    """`openssl s_time -new` as an independent load generator."""
    cpu_before = cpu_seconds(running.pids())
    done = subprocess.run(
        [
            "openssl",
            "s_time",
            "-connect",
            f"127.0.0.1:{running.port}",
            "-new",
            "-cert",
            str(creds.client_cert),
            "-key",
            str(creds.client_key),
            "-CAfile",
            str(creds.ca),
            "-time",
            str(seconds),
            "-tls1_3" if tls == "1.3" else "-tls1_2",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    cpu = max(cpu_seconds(running.pids()) - cpu_before, 1e-9)
    match = re.search(r"(\d+) connections in ([\d.]+) real seconds", done.stdout)
    if not match:
        return {"error": (done.stdout + done.stderr)[-300:]}
    count, real = int(match.group(1)), float(match.group(2))
    return {"handshakes": count, "per_s": count / real, "per_cpu_s": count / cpu}


def resumed(running: servers.Running, tgt: load.Target, plan: Plan) -> dict[str, Any]:
    """TLS 1.3 resumption with tickets from the same client processes."""
    cpu_before, start = cpu_seconds(running.pids()), time.perf_counter()
    with multiprocessing.get_context("fork").Pool(plan.processes) as pool:
        results = pool.starmap(load.resumed_worker, [(tgt, plan.seconds, 1_000_000)] * plan.processes)
    wall = time.perf_counter() - start
    cpu = max(cpu_seconds(running.pids()) - cpu_before, 1e-9)
    done, reused = sum(d for d, _ in results), sum(r for _, r in results)
    return {
        "connections": done,
        "resumed_fraction": reused / done if done else 0.0,
        "per_s": done / wall,
        "per_cpu_s": done / cpu,
    }


def idle(running: servers.Running, tgt: load.Target, count: int) -> dict[str, Any]:
    """Hold ``count`` established idle mTLS connections; server RSS per connection."""
    ctx = tgt.context()
    before = rss_bytes(running.pids())
    held = []
    deadline = time.monotonic() + 300
    try:
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            raw = socket.create_connection(("127.0.0.1", running.port), timeout=30)
            sock = ctx.wrap_socket(raw, server_hostname="localhost")
            if running.name in OURS:
                load._read_lines(sock, 1, [])  # the greeting: the server has finished its side
            held.append(sock)
        time.sleep(0.5)  # bench only: let the server settle before reading its RSS
        after = rss_bytes(running.pids())
    finally:
        for sock in held:
            sock.close()
    return {
        "held": len(held),
        "errors": count - len(held),
        "rss_per_conn_kib": (after - before) / 1024 / max(len(held), 1),
    }


@contextmanager
def serving(name: str, creds: servers.Credentials, work: Path, **options: Any) -> Iterator[servers.Running]:
    """Start one server under test, and stop it whatever happens."""
    running = _START[name](creds, work, **options)
    try:
        yield running
    finally:
        running.stop()


def _start_nginx(creds: servers.Credentials, work: Path) -> servers.Running:
    return servers.start_nginx(require_peer("nginx"), creds, work, work / "bytes")


_START: dict[str, Callable[..., servers.Running]] = {
    "ours": servers.start_ours,
    "ours-stdlib": lambda creds, work, **options: servers.start_ours(creds, work, engine="stdlib", **options),
    "ours-recording": lambda creds, work: servers.start_ours(creds, work, record=True),
    "s_server": servers.start_s_server,
    "pyopenssl-floor": lambda creds, work: servers.start_floor(creds, work, module="pyopenssl_floor"),
    "pyopenssl-work": lambda creds, work: servers.start_floor(creds, work, module="work_floor"),
    "trio-floor": servers.start_floor,
    "nginx": _start_nginx,
}


def _rounds(
    plan: Plan, names: list[str], creds: servers.Credentials, work: Path, out: dict[str, Any]
) -> None:
    """Every contestant serving at once; each round measures each in turn, in a rotated order."""
    with ExitStack() as stack:
        running = {name: stack.enter_context(serving(name, creds, work)) for name in names}
        for number in range(plan.rounds):
            order = names[number % len(names) :] + names[: number % len(names)]
            for tls in plan.versions:
                row = out["handshakes"].setdefault(f"{creds.key_type}/TLS{tls}", {})
                for name in order:
                    result = handshakes(running[name], target(name, creds, running[name].port, tls), plan)
                    row.setdefault(name, []).append(result)
                print(
                    f"  round {number + 1} {creds.key_type} TLS {tls}: "
                    + "  ".join(f"{name}={row[name][-1]['per_cpu_s']:.0f}" for name in names),
                    flush=True,
                )
        if creds.key_type == plan.key_types[0]:
            _once(plan, running, creds, out)


def _once(
    plan: Plan, running: dict[str, servers.Running], creds: servers.Credentials, out: dict[str, Any]
) -> None:
    """The figures measured once: s_time, resumption, bulk, idle memory."""
    for name, server in running.items():
        if name in HANDSHAKES_ONLY:
            continue
        for tls in plan.versions:
            row = out["s_time"].setdefault(f"{creds.key_type}/TLS{tls}", {})
            row[name] = s_time(server, creds, tls, plan.s_time_seconds)
        tgt = target(name, creds, server.port, "1.3")
        if name != "trio-floor":
            out["resumed"][name] = resumed(server, tgt, plan)
        if name != "s_server":  # -rev cannot serve files; a -WWW instance measures it below
            http = dataclasses.replace(tgt, alpn=("http/1.1",) if name in OURS else ())
            out["bulk"][name] = {"download_mb_s": load.download(http, plan.bulk_bytes)}
            if name in (*OURS, "nginx"):
                out["bulk"][name]["upload_mb_s"] = load.upload(http, plan.bulk_bytes)
        if name in (*OURS, "nginx"):
            out["idle"][name] = {str(n): idle(server, tgt, n) for n in plan.idle_counts}


def run(plan: Plan, work: Path, out: dict[str, Any]) -> None:
    names = [
        "ours",
        "ours-stdlib",
        "ours-recording",
        "pyopenssl-floor",
        "pyopenssl-work",
        "trio-floor",
        "s_server",
    ]
    if plan.nginx:
        names.append("nginx")
    out["libraries"] = {name: servers.library_version(name) for name in names}
    www = work / "bytes"
    www.mkdir()
    with (www / str(plan.bulk_bytes)).open("wb") as handle:
        handle.truncate(plan.bulk_bytes)
    for key_type in plan.key_types:
        creds = credentials(work, key_type)
        _rounds(plan, names, creds, work, out)
        if key_type != plan.key_types[0]:
            continue
        with serving("s_server", creds, work, www=True) as running:
            tgt = target("s_server", creds, running.port, "1.3")
            out["bulk"]["s_server"] = {"download_mb_s": load.download(tgt, plan.bulk_bytes)}
        if plan.forward:
            _forward_figures(plan, creds, work, out)
        if plan.nginx:
            h2_rows(plan, creds, work, out)
        if plan.workers:
            for workers in (1, 2):
                with serving("ours", creds, work, workers=workers) as running:
                    tgt = target("ours", creds, running.port, "1.3")
                    out["workers"][str(workers)] = handshakes(running, tgt, plan)


def h2_rows(plan: Plan, creds: servers.Credentials, work: Path, out: dict[str, Any]) -> None:
    """The HTTP/2 figures, ours against nginx (``work/bytes`` is nginx's root)."""
    (work / "bytes").mkdir(exist_ok=True)
    out["h2"] = h2.h2_figures(
        creds,
        work,
        nginx=require_peer("nginx"),
        seconds=plan.seconds,
        rounds=plan.rounds,
        processes=plan.processes,
    )


def _forward_figures(plan: Plan, creds: servers.Credentials, work: Path, out: dict[str, Any]) -> None:
    """Forward mode against HAProxy doing the same job, to the same plain backend: handshakes per
    front-server CPU-second (TLS 1.3, rotated rounds) and bulk throughput, plus through our tunnel."""
    backend = servers.start_plain_backend(work)
    with ExitStack() as stack:
        stack.callback(backend.stop)
        ours = servers.start_ours(creds, work, forward=f"127.0.0.1:{backend.port}")
        stack.callback(ours.stop)
        haproxy = servers.start_haproxy(creds, work, backend.port)
        stack.callback(haproxy.stop)
        tunnel = servers.start_tunnel(creds, work, ours.port)
        stack.callback(tunnel.stop)
        fronts = {"ours-forward": ours, "haproxy": haproxy}
        rows: dict[str, list[dict[str, Any]]] = {}
        for number in range(plan.rounds):
            order = list(fronts) if number % 2 == 0 else list(reversed(fronts))
            for name in order:
                running = fronts[name]
                rows.setdefault(name, []).append(
                    handshakes(running, target(name, creds, running.port, "1.3"), plan)
                )
        out["forward"]["handshakes"] = rows
        out["forward"]["bulk"] = {
            name: load.download(target(name, creds, running.port, "1.3"), plan.bulk_bytes)
            for name, running in fronts.items()
        }
        out["forward"]["bulk"]["tunnel"] = load.download_plain(tunnel.port, plan.bulk_bytes)


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "n/a"


def median_ratio(rounds: dict[str, list[dict[str, Any]]], top: str, bottom: str) -> float | None:
    """The median over rounds of top/bottom handshakes per server CPU-second, each round on its own."""
    pairs = zip(rounds.get(top, []), rounds.get(bottom, []), strict=False)
    ratios = [a["per_cpu_s"] / b["per_cpu_s"] for a, b in pairs if a["per_cpu_s"] and b["per_cpu_s"]]
    return statistics.median(ratios) if ratios else None


def _median(results: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in results) if results else 0.0


def report(out: dict[str, Any]) -> str:
    names = list(out["libraries"])
    lines = ["", "The contestants and the OpenSSL each runs on"]
    lines += [f"  {name:<16} {version}" for name, version in out["libraries"].items()]
    lines += ["", "Full mTLS handshakes (+1 request/reply, no resumption): handshakes per server CPU-second,"]
    lines.append("median of the rounds; ratios are the median of per-round ratios")
    lines.append(f"{'scenario':<16}" + "".join(f"{n:>17}" for n in names) + "   ours p50/p99 ms")
    for scenario, rows in out["handshakes"].items():
        ours = rows["ours"]
        lines.append(
            f"{scenario:<16}"
            + "".join(f"{_median(rows.get(n, []), 'per_cpu_s'):>17.0f}" for n in names)
            + f"   {_median(ours, 'p50_ms'):.1f}/{_median(ours, 'p99_ms'):.1f}"
        )
    lines += ["", "Ratios (median of per-round ratios)"]
    for scenario, rows in out["handshakes"].items():
        cells = [
            f"{top}/{bottom} {value:.2f}x"
            for top, bottom in (
                ("ours", "nginx"),
                ("ours", "pyopenssl-floor"),
                ("ours", "pyopenssl-work"),
                ("pyopenssl-work", "pyopenssl-floor"),
                ("pyopenssl-work", "nginx"),
                ("ours", "s_server"),
                ("ours-stdlib", "nginx"),
                ("ours", "ours-stdlib"),
                ("ours-recording", "ours"),
            )
            if (value := median_ratio(rows, top, bottom)) is not None
        ]
        lines.append(f"  {scenario:<16}" + "   ".join(cells))
    lines += ["", "openssl s_time -new (independent load generator): handshakes per server CPU-second"]
    for scenario, row in out["s_time"].items():
        cpu = {k: v.get("per_cpu_s") for k, v in row.items()}
        lines.append(
            f"  {scenario:<16}"
            + "".join(f"{k}={v:.0f}  " if v else f"{k}=error  " for k, v in cpu.items())
            + f"ours/nginx={ratio(cpu.get('ours'), cpu.get('nginx'))}"
        )
    lines += ["", "Bulk over one connection (MB/s), TLS 1.3"]
    for name, row in out["bulk"].items():
        up = row.get("upload_mb_s")
        upload = f"{up:7.0f}" if up else "    n/a"
        lines.append(f"  {name:<16} download {row['download_mb_s']:>7.0f}   upload {upload}")
    ours_bulk, base = out["bulk"].get("ours", {}), out["bulk"].get("s_server", {})
    download = ratio(ours_bulk.get("download_mb_s"), base.get("download_mb_s"))
    lines.append(f"  ours/s_server download {download}")
    lines += ["", "Idle established connections: server RSS per connection (KiB)"]
    for name, row in out["idle"].items():
        lines.append(
            f"  {name:<16} "
            + "  ".join(f"{n}: {v['rss_per_conn_kib']:.1f} KiB ({v['held']} held)" for n, v in row.items())
        )
    lines += ["", "TLS 1.3 resumed handshakes (tickets): per second, and per server CPU-second"]
    lines += [
        f"  {k:<16} {v['per_s']:>6.0f}/s  {v['per_cpu_s']:>6.0f}/CPU-s  ({v['resumed_fraction']:.0%} resumed)"
        for k, v in out["resumed"].items()
    ]
    if out["workers"]:
        one, two = out["workers"].get("1", {}), out["workers"].get("2", {})
        lines.append("")
        lines.append(
            f"--workers: 1 worker {one.get('per_s', 0):.0f} hs/s, 2 workers {two.get('per_s', 0):.0f} hs/s "
            f"({ratio(two.get('per_s'), one.get('per_s'))})"
        )
    if out["forward"]:
        rows = out["forward"]["handshakes"]
        bulk = out["forward"]["bulk"]
        lines += ["", "Forward mode (P-256, TLS 1.3, to the same plain backend): per front-server CPU-second"]
        lines.append(
            f"  handshakes  ours-forward={_median(rows['ours-forward'], 'per_cpu_s'):.0f}  "
            f"haproxy={_median(rows['haproxy'], 'per_cpu_s'):.0f}  "
            f"ours/haproxy={median_ratio(rows, 'ours-forward', 'haproxy') or 0:.2f}x"
        )
        lines.append(
            f"  bulk MB/s   ours-forward={bulk['ours-forward']:.0f}  haproxy={bulk['haproxy']:.0f}  "
            f"through the tunnel={bulk['tunnel']:.0f}  "
            f"ours/haproxy={ratio(bulk['ours-forward'], bulk['haproxy'])}"
        )
    lines += h2.h2_report(out.get("h2", {}))
    lines += ["", *verdicts(out)]
    return "\n".join(lines)


def verdicts(out: dict[str, Any]) -> list[str]:
    """Each target of the engine issue, met or missed, with the figure."""
    lines = ["Targets"]
    for scenario, top, bottom, least in TARGETS:
        value = median_ratio(out["handshakes"].get(scenario, {}), top, bottom)
        if value is not None:
            mark = "met   " if value >= least else "MISSED"
            lines.append(f"  {mark} {scenario} {top}/{bottom} {value:.2f}x (at least {least}x)")
    ours, base = out["bulk"].get("ours", {}), out["bulk"].get("s_server", {})
    if ours and base:
        value = ours["download_mb_s"] / base["download_mb_s"]
        mark = "met   " if value >= 1.0 else "MISSED"
        lines.append(f"  {mark} bulk download ours/s_server {value:.2f}x (at least 1.0x)")
    if out["forward"]:
        value = median_ratio(out["forward"]["handshakes"], "ours-forward", "haproxy") or 0.0
        mark = "met   " if value >= 1.0 else "MISSED"
        lines.append(f"  {mark} forward mode handshakes ours/haproxy {value:.2f}x (at least 1.0x)")
        bulk = out["forward"]["bulk"]
        value = bulk["ours-forward"] / bulk["haproxy"]
        mark = "met   " if value >= 0.8 else "MISSED"
        lines.append(f"  {mark} forward mode bulk ours/haproxy {value:.2f}x (at least 0.8x)")
    for count, figure in out["idle"].get("ours", {}).items():
        kib = figure["rss_per_conn_kib"]
        mark = "met   " if kib <= IDLE_TARGET_KIB else "MISSED"
        lines.append(
            f"  {mark} idle RSS per connection at {count}: {kib:.1f} KiB (at most {IDLE_TARGET_KIB:g})"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a one-minute run (P-256 only, shorter loads)")
    parser.add_argument("--smoke", action="store_true", help="seconds, to check the bench works (no nginx)")
    parser.add_argument(
        "--json", type=Path, default=Path("bench-results.json"), help="where to write figures"
    )
    parser.add_argument(
        "--h2", action="store_true", help="only the HTTP/2 rows, ours against nginx, with the plan's load"
    )
    args = parser.parse_args(argv)
    plan = PLANS["smoke" if args.smoke else "quick" if args.quick else "full"]
    peers = ["openssl", *(["nginx"] if plan.nginx else []), *(["haproxy"] if plan.forward else [])]
    if args.h2:
        peers = ["nginx"]
    try:
        for peer in peers:  # before minutes of measuring, not in the middle of them
            require_peer(peer)
    except RuntimeError as missing:
        print(f"bench: {missing}", file=sys.stderr)
        return 1
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the idle test holds thousands of sockets
    out: dict[str, Any] = {
        "plan": plan.__repr__(),
        "python": sys.version.split()[0],
        "handshakes": {},
        "s_time": {},
        "bulk": {},
        "idle": {},
        "resumed": {},
        "workers": {},
        "forward": {},
        "h2": {},
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mtls-bench-") as tmp:
        Path(tmp).chmod(0o755)  # nginx workers run as www-data and must read the files served
        if args.h2:
            h2_rows(plan, credentials(Path(tmp), plan.key_types[0]), Path(tmp), out)
        else:
            run(plan, Path(tmp), out)
    out["seconds"] = time.monotonic() - started
    args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print("\n".join(h2.h2_report(out["h2"])) if args.h2 else report(out))
    print(f"\n(run took {out['seconds']:.0f}s; figures in {args.json})")
    return 0
