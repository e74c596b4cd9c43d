// Every market with its last price, 24 h change and volume, status; binary markets' YES/NO and outcome.
import { get, live, items } from "../api.js";
import { fmt, h, table } from "../ui.js";

export async function render(root) {
  const markets = await items("/markets");
  const rows = await Promise.all(markets.map(async (market) => {
    const [ticker, candles] = await Promise.all([
      get(`/markets/${encodeURIComponent(market.symbol)}/ticker`),
      get(`/markets/${encodeURIComponent(market.symbol)}/candles?interval=1h&limit=25`),
    ]);
    const first = candles.items.length ? Number(candles.items[0].open) : null;
    return { market, ticker, first };
  }));
  const change = (row) => (row.first && row.ticker.last ? Number(row.ticker.last) / row.first - 1 : null);
  const columns = [
    ["Market", (r) => h("a", { href: `#/market/${encodeURIComponent(r.market.symbol)}` }, r.market.symbol)],
    ["Kind", (r) => r.market.kind],
    ["Last", (r) => fmt.num(r.ticker.last)],
    ["24h", (r) => { const c = change(r); return h("span", { class: c === null ? "" : c >= 0 ? "up" : "down" }, fmt.pct(c)); }],
    ["Volume 24h", (r) => fmt.num(r.ticker.volume_24h)],
    ["YES / NO", (r) => (r.market.kind === "binary" && r.ticker.last ? `${r.ticker.last} / ${(1 - Number(r.ticker.last)).toFixed(2)}` : "")],
    ["Closes", (r) => (r.market.close_time ? fmt.time(r.market.close_time) : "")],
    ["Status", (r) => h("span", { class: `status status-${r.ticker.status}`, "data-market-status": r.market.symbol }, r.ticker.status)],
    ["Outcome", (r) => r.market.outcome || ""],
  ];
  const grid = table("Markets", columns, rows, "No markets yet");
  root.append(h("h1", {}, "Markets"), h("div", { class: "scroll" }, grid));
  const stops = rows.map((row) => live.subscribe(`ticker:${row.market.symbol}`, (message) => {
    row.ticker = message.data;
    grid.update(rows);
  }));
  return () => stops.forEach((stop) => stop());
}
