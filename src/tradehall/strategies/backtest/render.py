"""The report's files: `report.json`, PNG plots (equity, drawdown, trades on price) and one
self-contained HTML page (the plots inlined, no script, no CDN).

matplotlib runs on its Agg backend (no display) and writes PNGs without a software or date stamp,
so the same report gives the same bytes.
"""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, select_autoescape

from tradehall.strategies.backtest.report import METRIC_NAMES, report_bytes

MAX_PLOT_POINTS = 5_000

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Backtest {{ run.market }}: {{ names }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:1rem 0}
td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}
th{background:#f4f4f4;text-align:left}img{max-width:100%;display:block;margin:1rem 0}
.warn{color:#a40}
</style></head><body>
<h1>Backtest: {{ names }} on {{ run.market }}</h1>
<p>{{ run.start }} to {{ run.end }}, {{ run.bars }} bars; initial balance {{ run.initial_balance }}
{{ run.spec.quote }}, final equity {{ run.final_equity }}; seed {{ run.seed }}.</p>
{% for warning in run.warnings %}<p class="warn">{{ warning }}</p>{% endfor %}
<h2>Metrics</h2>
<table>{% for name in metric_names %}<tr><th>{{ name }}</th><td>{{ metrics[name] if metrics[name] is not none
else "n/a" }}</td></tr>{% endfor %}
<tr><th>annualization</th><td>{{ metrics.annualization }}</td></tr></table>
<p>Fractions are decimal fractions (0.05 = 5 %); max_drawdown_duration in seconds;
money in {{ run.spec.quote }}.
Daily returns of end-of-day equity (UTC), annualised by &radic;365.</p>
{% for title, image in images %}<h2>{{ title }}</h2>
<img alt="{{ title }}" src="data:image/png;base64,{{ image }}">
{% endfor %}
<h2>Trades ({{ trades|length }})</h2>
<table><tr><th>side</th><th>quantity</th><th>entry</th><th>entry price</th><th>exit</th><th>exit price</th>
<th>pnl</th><th>fees</th><th>return</th></tr>
{% for t in trades[:2000] %}<tr><td>{{ t.side }}</td><td>{{ t.quantity }}</td><td>{{ t.entry_time }}</td>
<td>{{ t.entry_price }}</td><td>{{ t.exit_time }}</td><td>{{ t.exit_price }}</td><td>{{ t.pnl }}</td>
<td>{{ t.fees }}</td><td>{{ t["return"] }}</td></tr>
{% endfor %}</table>
{% if trades|length > 2000 %}
<p>The first 2,000 of {{ trades|length }} trades; all are in report.json.</p>{% endif %}
<h2>Run</h2>
<table>{% for key, value in settings %}<tr><th>{{ key }}</th><td>{{ value }}</td></tr>{% endfor %}</table>
</body></html>
"""


def _thin(points: list[Any]) -> list[Any]:
    step = max(1, len(points) // MAX_PLOT_POINTS)
    thinned = points[::step]
    if points and thinned[-1] is not points[-1]:
        thinned.append(points[-1])
    return thinned


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _subplots(plt: Any, width: float, height: float) -> tuple[Any, Any]:
    return plt.subplots(figsize=(width, height))  # type: ignore[no-any-return]


def plots(report: dict[str, Any], prices: list[tuple[int, float]]) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, bytes] = {}

    def save(figure: Any, name: str) -> None:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=90, metadata={"Software": None})
        plt.close(figure)
        out[name] = buffer.getvalue()

    equity = _thin(report["equity"])
    figure, axes = _subplots(plt, 10, 3.2)
    axes.plot([_time(t) for t, _ in equity], [float(v) for _, v in equity], color="#1f5fbf", linewidth=1)
    axes.set_title("Equity")
    axes.grid(alpha=0.3)
    figure.autofmt_xdate()
    save(figure, "equity.png")

    drawdown = _thin(report["drawdown"])
    figure, axes = _subplots(plt, 10, 2.6)
    axes.fill_between([_time(t) for t, _ in drawdown], [-float(v or 0) for _, v in drawdown], 0,
                      color="#c0392b", alpha=0.5, linewidth=0)
    axes.set_title("Drawdown")
    axes.grid(alpha=0.3)
    figure.autofmt_xdate()
    save(figure, "drawdown.png")

    figure, axes = _subplots(plt, 10, 3.6)
    thinned = _thin(prices)
    axes.plot([datetime.fromtimestamp(ts / 1e9, UTC) for ts, _ in thinned], [p for _, p in thinned],
              color="#555", linewidth=0.8)
    trades = report["trades"][:2000]
    for key, price_key, marker, colour in (("entry_time", "entry_price", "^", "#1a8f3c"),
                                           ("exit_time", "exit_price", "v", "#c0392b")):
        points = [(t[key], t[price_key]) for t in trades if t[key] and t[price_key]]
        axes.scatter([_time(x) for x, _ in points], [float(y) for _, y in points], marker=marker,
                     color=colour, s=14, zorder=3)
    axes.set_title("Trades on price (entries ^, exits v)")
    axes.grid(alpha=0.3)
    figure.autofmt_xdate()
    save(figure, "trades.png")
    return out


def html_page(report: dict[str, Any], images: dict[str, bytes]) -> str:
    environment = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    template = environment.from_string(_PAGE)
    run = report["run"]
    described = (f"{s['name']} {s['parameters']} x{s['weight']}" for s in run["strategies"])
    settings = [("strategies", ", ".join(described))]
    settings += [(f"settings.{k}", v) for k, v in sorted(run["settings"].items()) if v is not None]
    settings += [(f"fill_model.{k}", v) for k, v in sorted(run["fill_model"].items()) if v is not None]
    settings += [(f"market.{k}", v) for k, v in sorted(run["spec"].items())]
    return template.render(
        run=run,
        names=", ".join(s["name"] for s in run["strategies"]),
        metrics=report["metrics"],
        metric_names=METRIC_NAMES,
        trades=report["trades"],
        images=[(title, base64.b64encode(images[name]).decode()) for title, name in
                (("Equity", "equity.png"), ("Drawdown", "drawdown.png"), ("Trades on price", "trades.png"))
                if name in images],
        settings=settings,
    )


def write_report(directory: Path, report: dict[str, Any], prices: list[tuple[int, float]],
                 *, with_plots: bool = True) -> dict[str, Path]:
    """report.json, the PNGs and report.html into `directory` (created); returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    path = directory / "report.json"
    path.write_bytes(report_bytes(report))
    written["report.json"] = path
    images = plots(report, prices) if with_plots else {}
    for name, data in images.items():
        (directory / name).write_bytes(data)
        written[name] = directory / name
    page = directory / "report.html"
    page.write_text(html_page(report, images), encoding="utf-8")
    written["report.html"] = page
    return written
