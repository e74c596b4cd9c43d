"""The one HTML page of the dashboard (a Jinja2 template): the frame every view is drawn into."""

from __future__ import annotations

from functools import cache

from jinja2 import Environment, PackageLoader, select_autoescape


@cache
def _environment() -> Environment:
    return Environment(loader=PackageLoader("tradehall.web", "templates"), autoescape=select_autoescape())


def render_shell(assets: str) -> str:
    """The page, its scripts and stylesheet under `assets` (the static mount, behind any root path)."""
    return _environment().get_template("index.html").render(assets=assets)
