// Backtests: run one, watch its progress, read the report (metrics, equity and drawdown charts, trades).
import { get, post, items } from "../api.js";
import { lineChart } from "../charts.js";
import { attempt, field, fmt, h, table, toast, values } from "../ui.js";

export async function render(root, [backtestId]) {
  const [strategies, markets, jobs] = await Promise.all([items("/strategies"), items("/markets"), get("/backtests?limit=50")]);
  const strategyItems = strategies.items || strategies;
  const form = h("form", { class: "card inline", "aria-label": "Run a backtest" },
    field("Market", "market", { options: markets.map((m) => m.symbol) }),
    field("Strategy", "strategy", { options: strategyItems.map((s) => s.name), value: "sma_crossover" }),
    field("Parameters (JSON)", "parameters", { value: '{"fast": 2, "slow": 4}' }),
    field("Data file (in the backtest data directory; empty: the market's candles)", "data_path"),
    field("Start (RFC 3339)", "start"), field("End (RFC 3339)", "end"),
    field("Initial balance", "initial_balance", { value: "10000" }), field("Bar interval", "interval", { options: ["1m", "5m", "15m", "1h", "1d"] }),
    field("Order quantity", "order_quantity", { value: "0.01" }),
    h("button", { type: "submit" }, "Run backtest"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const v = values(form);
    const body = { strategies: [{ name: v.strategy, parameters: JSON.parse(v.parameters || "{}") }], markets: [v.market],
      settings: { initial_balance: v.initial_balance, interval: v.interval, order_quantity: v.order_quantity || undefined } };
    if (v.data_path) body.data = { path: v.data_path };
    if (v.start) body.start = v.start;
    if (v.end) body.end = v.end;
    const job = await attempt(form, () => post("/backtests", body));
    if (job) { toast(`Backtest ${job.id} ${job.status}`); location.hash = `#/backtests/${job.id}`; }
  });
  root.append(h("h1", {}, "Backtests"), form, h("div", { class: "scroll" }, table("Backtests", [["Id", (j) => h("a", { href: `#/backtests/${j.id}` }, j.id)],
    ["Status", (j) => j.status], ["Progress", (j) => `${(Number(j.progress) * 100).toFixed(0)}%`], ["Reason", (j) => j.status_reason ?? ""]], jobs.items, "No backtests yet")));
  if (!backtestId) return undefined;
  const box = h("section", { class: "card", "aria-labelledby": "report-title" }, h("h2", { id: "report-title" }, `Backtest ${backtestId}`));
  const progress = h("progress", { max: "1", value: "0", "aria-label": "Progress" });
  const state = h("p", { id: "backtest-status", role: "status" });
  box.append(progress, state);
  root.append(box);
  let timer = null;
  let chart = null;
  const poll = async () => {
    const job = await get(`/backtests/${backtestId}`);
    progress.value = Number(job.progress);
    state.textContent = `${job.status}${job.status_reason ? `: ${job.status_reason}` : ""}`;
    if (job.status === "done") {
      progress.value = 1;
      const report = await get(`/backtests/${backtestId}/report`);
      const curve = h("div", { class: "chart small", role: "img", "aria-label": "Equity and drawdown" });
      box.append(h("dl", { class: "ticker metrics" }, ...Object.entries(report.metrics).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, metric(v))])),
        curve,
        h("div", { class: "scroll" }, table("Trades", Object.keys(report.trades[0] || { entry_time: 1 }).slice(0, 9).map((k) => [k, (t) => (k.endsWith("time") || k.endsWith("_at") ? fmt.time(t[k]) : t[k])]), report.trades, "No trades")));
      chart = lineChart(curve, [{ points: report.equity, color: "#1565c0", title: "equity" }, { points: report.drawdown, color: "#c62828", title: "drawdown" }]);
    } else if (job.status !== "failed") timer = setTimeout(poll, 300);
  };
  await poll();
  return () => { clearTimeout(timer); chart?.remove(); };
}

/** A metric at most 6 decimals (they come as JSON numbers or decimal strings). */
function metric(value) {
  if (value === null || value === undefined) return "—";
  const n = Number(value);
  return Number.isFinite(n) ? String(Number(n.toFixed(6))) : String(value);
}
