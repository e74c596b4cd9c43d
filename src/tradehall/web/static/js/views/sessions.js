// Strategies and live sessions: start, pause, resume, stop; signals and decisions live; performance.
import { get, live, post, items } from "../api.js";
import { lineChart } from "../charts.js";
import { attempt, button, field, fmt, h, table, toast, values } from "../ui.js";

export async function render(root, [sessionId]) {
  const [accounts, strategies, markets, sessions] = await Promise.all([items("/accounts"), items("/strategies"), items("/markets"), get("/sessions?limit=100")]);
  root.append(h("h1", {}, "Sessions"));
  const strategyItems = strategies.items || strategies;
  const form = h("form", { class: "card inline", "aria-label": "Start a session" },
    field("Account", "account_id", { options: accounts.map((a) => a.id) }),
    field("Market", "market", { options: markets.map((m) => m.symbol) }),
    field("Strategy", "strategy", { options: strategyItems.map((s) => s.name), value: "sma_crossover" }),
    field("Parameters (JSON)", "parameters", { value: "{}" }),
    field("Interval seconds", "interval_seconds", { value: "45" }),
    h("button", { type: "submit" }, "Start session"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const v = values(form);
    const made = await attempt(form, async () => post("/sessions", { account_id: v.account_id, markets: [v.market],
      strategies: [{ name: v.strategy, parameters: JSON.parse(v.parameters || "{}") }], settings: { interval_seconds: Number(v.interval_seconds) } }));
    if (made) { toast(`Session ${made.id} started`); location.hash = `#/sessions/${made.id}`; }
  });
  const act = (s, verb) => button(verb[0].toUpperCase() + verb.slice(1), async (event) => {
    const done = await attempt(event.target.closest("td"), () => post(`/sessions/${s.id}/${verb}`));
    if (done) toast(`Session ${s.id} ${done.status}`);
  }, { "aria-label": `${verb} session ${s.id}` });
  let rows = sessions.items;
  const grid = table("Sessions", [["Id", (s) => h("a", { href: `#/sessions/${s.id}` }, s.id)], ["Account", (s) => s.account_id], ["Markets", (s) => s.markets.join(", ")],
    ["Strategies", (s) => s.strategies.map((x) => x.name).join(", ")], ["Status", (s) => h("span", { class: `status status-${s.status}`, "data-session-status": s.id }, s.status)],
    ["Cycles", (s) => s.cycles], ["Reason", (s) => s.status_reason ?? ""],
    ["", (s) => (["running", "paused"].includes(s.status) ? h("div", { class: "actions" }, act(s, s.status === "running" ? "pause" : "resume"), act(s, "stop")) : "")]], rows, "No sessions");
  root.append(form, h("div", { class: "scroll" }, grid), table("Strategies", [["Name", (s) => s.name], ["Description", (s) => s.description],
    ["Parameters", (s) => Object.entries(s.parameters || {}).map(([k, p]) => `${k}=${p.default}`).join(", ")]], strategyItems));
  const stops = [live.subscribe("sessions", (m) => {
    if (m.data.event === "cycle") { const s = rows.find((x) => x.id === m.data.session_id); if (s) s.cycles = m.data.cycle; }
    else rows = [m.data, ...rows.filter((x) => x.id !== m.data.id)];
    grid.update(rows);
  })];
  if (sessionId) {
    const [signals, decisions, performance] = await Promise.all([get(`/sessions/${sessionId}/signals?limit=50`), get(`/sessions/${sessionId}/decisions?limit=50`), get(`/sessions/${sessionId}/performance`)]);
    let signalRows = signals.items;
    const signalTable = table("Signals", [["At", (s) => fmt.time(s.at)], ["Cycle", (s) => s.cycle], ["Strategy", (s) => s.strategy], ["Market", (s) => s.market], ["Action", (s) => s.action], ["Confidence", (s) => s.confidence], ["Reason", (s) => s.reason]], signalRows, "No signals yet");
    const decisionTable = table("Decisions", [["At", (d) => fmt.time(d.at)], ["Cycle", (d) => d.cycle], ["Market", (d) => d.market], ["Action", (d) => d.action], ["Qty", (d) => d.quantity ?? ""], ["Status", (d) => d.status], ["Order", (d) => d.order_id ?? ""], ["Reason", (d) => d.vetoed_by || d.error || d.reason || ""]], decisions.items, "No decisions yet");
    const curve = h("div", { class: "chart small", role: "img", "aria-label": "Session equity" });
    root.append(h("h2", {}, `Session ${sessionId}`), h("section", { class: "card" }, h("h3", {}, "Performance"),
      h("dl", { class: "ticker" }, ...Object.entries(performance.metrics || {}).slice(0, 10).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v === null ? "—" : String(Number.isFinite(Number(v)) ? Number(Number(v).toFixed(6)) : v))])), curve),
    h("div", { class: "scroll" }, signalTable), h("div", { class: "scroll" }, decisionTable));
    if ((performance.equity || []).length) { const chart = lineChart(curve, [{ points: performance.equity, color: "#1565c0", title: "equity" }]); stops.push(() => chart.remove()); }
    stops.push(live.subscribe("signals", (m) => { if (String(m.data.session_id) === String(sessionId)) { signalRows = [m.data, ...signalRows].slice(0, 100); signalTable.update(signalRows); } }));
    stops.push(live.subscribe("sessions", async (m) => {
      if (m.data.event === "cycle" && String(m.data.session_id) === String(sessionId)) decisionTable.update((await get(`/sessions/${sessionId}/decisions?limit=50`)).items);
    }));
  }
  return () => stops.forEach((s) => s());
}
