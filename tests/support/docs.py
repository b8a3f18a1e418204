"""The project's own documents, read the way the doc tests read them: sections and fenced blocks."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent


def fenced_blocks(text: str) -> list[tuple[str, list[str]]]:
    """Each fenced code block: its language and its lines."""
    blocks: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if line.strip().startswith("```"):
            if current is None:
                current = []
                blocks.append((line.strip()[3:], current))
            else:
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def readme_section(title: str) -> str:
    """The README's section under the heading ``## title``."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    return readme.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
