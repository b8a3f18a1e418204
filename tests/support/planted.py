"""Files that must never run: planted where our child processes start, they leave a marker if they do."""

from __future__ import annotations

from pathlib import Path

MARKER = "PLANTED-RAN"


def leaves_marker(label: str) -> str:
    """Source of a module that, if it ever runs, leaves a PLANTED-RAN file saying what ran."""
    return f"from pathlib import Path\nPath({MARKER!r}).write_text({label!r})\n"


# A server.py and an mtls_ref/ folder that would shadow our modules if the cwd were on sys.path.
PLANTED = {
    "server.py": leaves_marker("server.py"),
    "mtls_ref/__init__.py": leaves_marker("mtls_ref/__init__.py"),
    "mtls_ref/server/__init__.py": "",
    "mtls_ref/server/__main__.py": leaves_marker("mtls_ref/server/__main__.py"),
}


def write_tree(root: Path, files: dict[str, str]) -> None:
    """Write ``{relative path: text}`` under ``root``."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
