"""The README and docs/: links that resolve, a tour made only of what the pages show, and every shell
command of every page either run by a test (named here) or listed with the reason none can run it.

Tests that run a page's command as written read it from that page (test_bundle, test_browser,
test_interop_openssl, test_status_port); the rest run the same command with their own paths and
ports. A new command in a page needs a line in CHECKED_BY, under its test, or in UNRUN, saying why.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from mtls_ref.shared.pki.cli import main

from .support.docs import REPO, fenced_blocks, readme_section
from .test_packaging import FOREIGN_TESTS

DOCS = REPO / "docs"
PAGES = (REPO / "README.md", *sorted(DOCS.glob("*.md")))

# Each test that runs commands a page shows, and those commands (continuations joined, trailing
# comment dropped, white space collapsed).
CHECKED_BY = {
    "test_new_user.py::test_make_demo_runs_as_the_readme_says": ("make demo",),
    "test_browser.py::test_the_documented_steps_in_chromium": (
        "make certs",
        "make run-server",
        "make run-server ARGS=--record-handshakes",
        "[ -d ~/.pki/nssdb ] || { mkdir -p ~/.pki/nssdb && "
        "certutil -d sql:$HOME/.pki/nssdb -N --empty-password; }",
        'certutil -d sql:$HOME/.pki/nssdb -A -n "mtls-ref demo CA" -t "C,," -i certs/ca.pem',
        "pk12util -d sql:$HOME/.pki/nssdb -i certs/client.p12 -w certs/client.p12.passphrase",
    ),
    "test_bundle.py::test_demo_writes_a_client_bundle_openssl_reads": ("cat certs/client.p12.passphrase",),
    "test_docs.py::test_the_certificate_page_runs_as_written": (
        "mtls-certs init --intermediate",
        "mtls-certs issue server server --san DNS:localhost --san IP:127.0.0.1",
        "mtls-certs issue client alice --san URI:spiffe://example.test/alice",
        "mtls-certs show certs/alice.pem",
        "openssl genrsa -out client_private_key.pem 2048",
        'openssl req -new -key client_private_key.pem -out client_csr.pem -subj "/CN=bob"',
        "mtls-certs sign client_csr.pem --profile client --san email:bob@example.test --out bob.pem",
        "openssl verify -CAfile certs/ca.pem -untrusted certs/intermediate.pem bob.pem",
        "mtls-certs verify bob-chain.pem --key client_private_key.pem --purpose client",
        "mtls-certs verify certs/server-chain.pem --purpose client",
        "mtls-certs export alice --p12",
    ),
    "test_bundle.py::test_documented_show_of_the_demo_bundle_runs_verbatim": (
        "mtls-certs show certs/client.p12 --passphrase-file certs/client.p12.passphrase",
    ),
    "test_client_grpc.py::test_grpc_on_the_command_line": ("mtls-client --grpc --port 50051 --trace off",),
    "test_grpc_server.py::test_mtls_client_grpc_against_our_server": ("mtls-client --grpc --trace off",),
    "test_grpc_server.py::test_the_readme_grpcio_script_runs_as_written": ("python grpc_check.py",),
    "test_pair_loopback.py::test_no_certificate_is_diagnosed": (
        "mtls-client --no-cert --tls 1.2 --trace off",
    ),
    "test_badset_matrix.py::test_matrix_row": (
        "mtls-client --cert clients/expired-chain.pem --key clients/expired.key ... --trace off",
    ),
    "test_packaging.py::test_foreign_project_uses_the_fixtures": ("pip install /path/to/mtls-ref",),
    "test_tunnel.py::test_redis_cli_through_the_whole_chain": (
        "mtls-server --forward 127.0.0.1:6379 --forward-identity none",
        "mtls-server --forward 127.0.0.1:6379 &",
        "mtls-client tunnel --listen 127.0.0.1:16379 localhost:8443 &",
        "redis-cli -p 16379 PING",
    ),
    "test_status_port.py::test_documented_status_example_prints_what_the_page_shows": (
        "curl -s http://127.0.0.1:9100/metrics | grep mtls_connections_total",
    ),
    "test_interop_openssl.py::test_documented_s_client_sends_the_leaf_once": (
        "openssl s_client -connect 127.0.0.1:8443 -quiet -CAfile certs/ca.pem -cert certs/client.pem "
        "-cert_chain certs/intermediate.pem -key certs/client.key",
    ),
    "test_http_interop.py::test_curl_with_client_certificate": (
        "curl --cacert certs/ca.pem --cert certs/client-chain.pem --key certs/client.key "
        "https://localhost:8443/whoami",
    ),
    "test_http2.py::test_curl_http2_with_client_certificate": (
        "curl --http2 --cacert certs/ca.pem --cert certs/client-chain.pem --key certs/client.key -s "
        "-o /dev/null -w '%{http_version} %{http_code}\\n' https://localhost:8443/whoami",
    ),
    "test_http2.py::test_nghttp_fetches_several_paths_on_one_connection": (
        "SSL_CERT_FILE=certs/ca.pem nghttp --null-out --stat --cert certs/client-chain.pem "
        "--key certs/client.key https://localhost:8443/whoami https://localhost:8443/healthz",
    ),
    "test_http_interop.py::test_curl_refused_with_the_alert": (
        "curl --cacert certs/ca.pem https://localhost:8443/whoami",
    ),
    "test_docs.py::test_badset_writes_the_files_the_pages_name": (
        "mtls-certs badset bs",
        "mtls-certs badset bad-servers",
    ),
    "test_conformance.py::test_show_openssl_commands_send_each_certificate_once": (
        "mtls-client conformance 127.0.0.1:9557 --badset bs --authz --show-openssl",
    ),
    "test_badservers_clients.py::test_curl_with_correct_options_passes_every_row": (
        "mtls-server badservers --badset bs --run "
        "'curl -sS --cacert {ca} --crlfile {crl} --cert {cert} --key {key} {url}'",
    ),
    "test_badservers_cli.py::test_run_prints_a_table_and_writes_junit": (
        "mtls-server badservers --badset bad-servers --junit-xml bad-servers.xml "
        "--run 'my-client --ca {ca} --cert {cert} --key {key} --crl {crl} {url}'",
    ),
}
# Commands no test runs, and why.
UNRUN = {
    "make test": "the suite itself; .ci/run runs it",
    "make test-deps": ".ci/run runs it before make test; tests install nothing",
    "make PYTHON=/usr/bin/python3 VENV=.venv-debian test": "the suite on Debian's python3; .ci/run runs it",
    "make run-client": "waits for make run-server in another terminal; make demo runs the pair",
    "pip install mtls-ref": "the CI example; here the distribution is on no index (test_packaging builds it)",
}


def normalized(command: str) -> str:
    """A command without its trailing `# comment`, white space collapsed."""
    return " ".join(re.sub(r"\s+#\s.*$", "", command).split())


def shell_commands(text: str) -> list[str]:
    """The commands of a text's `sh` blocks and the `$ ` lines of its `console` blocks, backslash
    continuations joined, normalized."""
    commands = []
    for language, lines in fenced_blocks(text):
        pending = ""
        for line in lines:
            if pending:
                command = pending + " " + line.strip()
            elif language == "sh" and line.strip() and not line.strip().startswith("#"):
                command = line.strip()
            elif language == "console" and line.startswith("$ "):
                command = line.removeprefix("$ ")
            else:
                continue
            pending = command.removesuffix("\\") if command.endswith("\\") else ""
            if not pending:
                commands.append(normalized(command))
    return commands


def readme_tour() -> str:
    """The README's "A short tour" section."""
    return readme_section("A short tour")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces to hyphens,
    ``-1``, ``-2``... after a repeat."""
    seen: dict[str, int] = {}
    found = set()
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("```"):
            in_code = not in_code
        elif not in_code and (heading := re.match(r"#{1,6} (.*)", line)):
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
            seen[slug] = seen.get(slug, 0) + 1
    return found


def links(page: Path) -> list[str]:
    """The targets of a page's Markdown links outside code blocks."""
    prose = re.sub(r"^\s*```.*?^\s*```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL | re.MULTILINE)
    return re.findall(r"\]\(([^)\s]+)\)", prose)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_relative_links_resolve(page: Path) -> None:
    """Every relative link in the README and docs/ names a file that exists and, after `#`, a heading
    of that page."""
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, fragment = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif fragment and fragment not in anchors(resolved):
            broken.append(f"{target}: no heading #{fragment} in {resolved.name}")
    assert broken == []


def test_links_check_catches_a_broken_anchor_and_file(tmp_path: Path) -> None:
    """The negative control: a missing file and a missing heading are both reported."""
    page = tmp_path / "page.md"
    page.write_text("# A title: here\n\n[ok](#a-title-here) [gone](nope.md) [bad](#elsewhere)\n")
    assert "a-title-here" in anchors(page)
    assert links(page) == ["#a-title-here", "nope.md", "#elsewhere"]
    with pytest.raises(AssertionError, match=r"nope\.md: no such file"):
        test_relative_links_resolve(page)


def test_readme_links_every_docs_page() -> None:
    """No page in docs/ is an orphan: "Where the rest lives" links each."""
    linked = {Path(target.partition("#")[0]).name for target in links(REPO / "README.md")}
    assert sorted(p.name for p in DOCS.glob("*.md") if p.name not in linked) == []


def test_the_tour_shows_only_what_the_pages_show() -> None:
    """Each line of the README tour's code blocks stands, as it is (or after `$ `), in a page of docs/,
    so the tour's commands and outputs are those the pages' tests check."""
    in_docs = {line for page in DOCS.glob("*.md") for line in page.read_text(encoding="utf-8").splitlines()}
    shown = [
        line for _, lines in fenced_blocks(readme_tour()) for line in lines if line.strip() not in ("", "...")
    ]
    assert len(shown) > 20
    assert [line for line in shown if line not in in_docs and f"$ {line}" not in in_docs] == []


def test_the_readme_names_every_package_test_deps_installs() -> None:
    """The README's Development section names the Debian package of each program in .ci/test-peers.txt."""
    development = readme_section("Development").lower()
    peers = (REPO / ".ci" / "test-peers.txt").read_text(encoding="utf-8").splitlines()
    packages = {line.split()[1] for line in peers if line.strip() and not line.startswith("#")}
    assert len(packages) > 5
    assert sorted(package for package in packages if package not in development) == []


def test_the_plugin_page_holds_the_suite_the_packaging_test_runs() -> None:
    """docs/pytest-plugin.md's example suite is, verbatim, the one test_packaging runs from a wheel."""
    assert FOREIGN_TESTS.strip() in (DOCS / "pytest-plugin.md").read_text(encoding="utf-8")


def test_every_make_target_named_exists() -> None:
    """Every `make TARGET` a page names is a target of the Makefile."""
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([\w-]+):", makefile, re.MULTILINE))
    named = {
        target
        for page in PAGES
        # `make VAR=value ... TARGET`: the target is the first word that is not an assignment.
        for target in re.findall(
            r"(?:`|^)make (?:[A-Z]+=\S+\s+)*([\w-]+)", page.read_text(encoding="utf-8"), re.MULTILINE
        )
    }
    assert {"demo", "test", "test-deps", "certs", "run-server", "run-client"} <= named
    assert sorted(named - targets) == []


def test_shell_commands_are_read_as_a_shell_would() -> None:
    """A `sh` line and a `$ ` line with a continuation, each with a trailing comment; output, a comment
    line and another language are not commands."""
    text = (
        "```sh\n# a comment\nmake demo   # the demo\n```\n"
        "```console\n$ openssl s_client -connect h:1 \\\n    -quiet   # ok\nOK hello\n```\n"
        "```python\nprint(1)\n```\n"
    )
    assert shell_commands(text) == ["make demo", "openssl s_client -connect h:1 -quiet"]


def test_every_shell_command_is_checked_or_says_why_not() -> None:
    """Each command of a page's sh and console blocks is in CHECKED_BY, under a test that exists, or in
    UNRUN; and neither lists a command no page shows any more."""
    shown = {command for page in PAGES for command in shell_commands(page.read_text(encoding="utf-8"))}
    checked = {command for commands in CHECKED_BY.values() for command in commands}
    assert sorted(shown - checked - UNRUN.keys()) == []
    assert sorted((checked | UNRUN.keys()) - shown) == []
    missing = []
    for test in CHECKED_BY:
        file, name = test.split("::")
        if not re.search(rf"^(async )?def {name}\(", (REPO / "tests" / file).read_text(), re.MULTILINE):
            missing.append(test)
    assert sorted(missing) == []


def page_session(page: str) -> list[tuple[str, list[str]]]:
    """The `$ ` commands of a page's console blocks, in order, each with the output lines shown for it."""
    session: list[tuple[str, list[str]]] = []
    for language, lines in fenced_blocks((DOCS / page).read_text(encoding="utf-8")):
        if language == "console":
            for line in lines:
                if line.startswith("$ "):
                    session.append((normalized(line.removeprefix("$ ")), []))
                elif session:
                    session[-1][1].append(line)
    return session


@pytest.mark.interop
def test_the_certificate_page_runs_as_written(
    tmp_path: Path, openssl: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/certificates.md's console sessions (the README tour's mtls-certs commands among them),
    command for command in an empty folder: each exits as shown (the FAILED verify with 1), and each
    output line shown that holds no digit (no date, serial, key id or count) is printed as shown.
    The .p12 `show` after `mtls-certs demo` is test_bundle's."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MTLS_CONFIG", raising=False)
    session = [(c, out) for c, out in page_session("certificates.md") if "certs/client.p12" not in c]
    tour = {c for c in shell_commands(readme_tour()) if c.startswith("mtls-certs ") and " badset " not in c}
    assert len(tour) == 4 and tour <= {command for command, _ in session}
    assert [c for c, _ in session] == list(
        CHECKED_BY["test_docs.py::test_the_certificate_page_runs_as_written"]
    )
    for command, shown in session:
        argv = shlex.split(command)
        if argv[0] == "mtls-certs":
            code = main(argv[1:])
            captured = capsys.readouterr()
            printed = captured.out + captured.err
        else:
            assert argv[0] == "openssl", command
            done = subprocess.run(
                [openssl, *argv[1:]], capture_output=True, text=True, timeout=60, check=False
            )
            code, printed = done.returncode, done.stdout + done.stderr
        assert code == (1 if "FAILED:" in "\n".join(shown) else 0), (command, printed)
        lines = printed.splitlines()
        assert [
            s for s in shown if s.strip() not in ("", "...") and not re.search(r"\d", s) and s not in lines
        ] == [], command


def test_badset_writes_the_files_the_pages_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`mtls-certs badset bs`, as the pages say: the CA and CRL that conformance's comment names, the
    manifest, and the good client credential."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MTLS_CONFIG", raising=False)
    assert main(["badset", "bs"]) == 0
    for name in ("ca/ca.pem", "ca/crl.pem", "manifest.json", "clients/good.pem", "clients/expired-chain.pem"):
        assert (tmp_path / "bs" / name).is_file(), name
