"""The dashboard's files ship in the package and its page loads only its own assets."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from tradehall.web import ASSETS_URL, SECURITY_HEADERS, STATIC
from tradehall.web.shell import render_shell

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "tradehall"


def test_every_dashboard_file_is_package_data() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    covered = {path for pattern in patterns["tradehall"] for path in PACKAGE.glob(pattern)}
    files = {p for p in (PACKAGE / "web").rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")}
    assert files - covered == set()


def test_the_page_references_only_its_own_assets_and_they_exist() -> None:
    page = render_shell(ASSETS_URL)
    references = re.findall(r'(?:src|href)="([^"#]+)"', page)
    assert references
    for reference in references:
        if reference.startswith("https://www.tradingview.com/"):
            continue  # the attribution link (a link, never loaded)
        if reference == "data:,":
            continue  # no favicon request
        assert reference.startswith(ASSETS_URL + "/"), reference
        assert (STATIC / reference.removeprefix(ASSETS_URL + "/")).is_file(), reference


def test_the_vendored_chart_library_keeps_its_licence() -> None:
    vendor = STATIC / "vendor" / "lightweight-charts"
    assert "Apache License" in (vendor / "LICENSE").read_text()
    assert "@license" in (vendor / "lightweight-charts.standalone.production.js").read_text()[:200]
    assert "default-src 'self'" in SECURITY_HEADERS["Content-Security-Policy"]
