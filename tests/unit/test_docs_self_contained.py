"""The project's docs stand on their own: no pointer to files outside the repository, and the API
reference names every path the application serves.

A reader of a clone has README.md, docs/ and src/ and nothing else: a sentence that sends them to a
contract file the repository does not hold is a dead end. And a path added to the API without a word
in docs/reference.md is a path nobody can find the contract of.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tradehall.api import create_app
from tradehall.service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference.md"
SCANNED = ("README.md", "docs", "src")
FORBIDDEN = ("../shared", "/work/shared", "API.md", "FEEDS.md", "DESIGN.md")
"""Pointers to documents that live outside the repository (case-sensitive: `docs/api.md` is ours)."""


def names(text: str, path: str) -> bool:
    """Whether `text` names `path` as a whole path (not as the start or the end of a longer one)."""
    return re.search(rf"(?<![\w/}}-]){re.escape(path)}(?![\w/{{-])", text) is not None


def _files() -> list[Path]:
    """The tracked files under README.md, docs/ and src/ (every file there when git is unavailable)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--", *SCANNED],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return [
            path
            for name in SCANNED
            for path in ([ROOT / name] if (ROOT / name).is_file() else (ROOT / name).rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts
        ]
    return [ROOT / name for name in listed.decode().split("\0") if name]


def test_the_scan_sees_the_docs_and_the_code() -> None:
    """A scan of nothing would pass whatever the files say."""
    names = {path.relative_to(ROOT).as_posix() for path in _files()}
    assert {"README.md", "docs/reference.md", "docs/api.md", "src/tradehall/api/app.py"} <= names


def test_no_file_points_outside_the_repository() -> None:
    offenders = []
    for path in _files():
        if not path.is_file():  # tracked, but deleted in this working tree
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:  # a binary asset
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            for pointer in FORBIDDEN:
                if pointer in line:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {pointer}")
    assert offenders == []


def test_the_check_catches_a_pointer_in_a_sentence_and_in_a_link() -> None:
    lines = ["see `../shared/API.md`", "[contract](API.md)", "the FEEDS.md formats", "DESIGN.md rules"]
    assert all(any(pointer in line for pointer in FORBIDDEN) for line in lines)
    assert not any(pointer in "see docs/api.md and docs/marketdata.md" for pointer in FORBIDDEN)


@pytest.fixture(scope="module")
def openapi_paths(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Every path of the OpenAPI document of an app built (not started) on an empty data dir."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"))
    document = create_app(settings).openapi()
    return sorted(document["paths"])


def test_the_reference_names_every_path_of_the_openapi_document(openapi_paths: list[str]) -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    assert len(openapi_paths) >= 30  # the whole API, not an app that lost its routers
    missing = [path for path in openapi_paths if not names(text, path)]
    assert missing == []


def test_a_path_counts_only_where_it_stands_whole() -> None:
    """`/markets` inside `/admin/markets` or `/markets/{symbol}` does not name `/markets`."""
    assert names("`GET /markets`, `GET /markets/{symbol}`", "/markets")
    assert not names("`POST /admin/markets` and `/markets/{symbol}/book`", "/markets")
    assert not names("`GET /markets/{symbol}/bookish`", "/markets/{symbol}/book")


def test_the_reference_names_the_websocket_and_every_error_code() -> None:
    from tradehall.api.errors import STATUS_OF

    text = REFERENCE.read_text(encoding="utf-8")
    assert "`/ws`" in text
    rows = [f"| `{code.value}` | {status} |" for code, status in STATUS_OF.items()]
    assert [row for row in rows if row not in text] == []
