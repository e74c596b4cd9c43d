// Assessments: status, the tier's rules, the floors and the distance to each, progress, trading days, reason.
import { get, live, post, items } from "../api.js";
import { attempt, field, h, table, toast, values } from "../ui.js";

export async function render(root) {
  const [accounts, tiers] = await Promise.all([items("/accounts"), get("/tiers")]);
  root.append(h("h1", {}, "Assessments"));
  const open = h("form", { class: "card inline", "aria-label": "Start an assessment" },
    field("Tier", "tier", { options: tiers.items.map((t) => t.name) }), h("button", { type: "submit" }, "Start assessment"));
  open.addEventListener("submit", async (e) => {
    e.preventDefault();
    const made = await attempt(open, () => post("/accounts", { kind: "assessment", tier: values(open).tier }));
    if (made) { toast(`Assessment ${made.id} started`); location.reload(); }
  });
  root.append(open);
  const list = h("div", { class: "cards" });
  root.append(list);
  const cards = new Map();
  const draw = (a) => {
    const r = a.rules || {};
    const card = h("section", { class: "card assessment", "data-account": a.id, "aria-label": `Assessment ${a.id}` },
      h("h2", {}, `${a.id} · ${a.tier} `, h("span", { class: `status status-${a.status}` }, a.status)),
      h("dl", { class: "ticker" }, ...[["Equity", a.equity], ["Peak", r.peak_equity], ["Trading state", a.trading_state]]
        .flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")])),
      table("Floors", [["Rule", (x) => x[0]], ["Floor", (x) => x[1]], ["Distance", (x) => x[2]]],
        [["Daily loss", r.floors?.daily, r.distance?.daily], ["Total loss", r.floors?.total, r.distance?.total]]),
      table("Progress", [["Target equity", (p) => p.target_equity], ["Profit", (p) => p.profit], ["Still needed", (p) => p.profit_needed],
        ["Trading days", (p) => `${p.trading_days} / ${p.min_trading_days}`]], r.progress ? [r.progress] : []),
      table("Tier rules", [["Target", (t) => t.profit_target], ["Max daily loss", (t) => t.max_daily_loss], ["Max total loss", (t) => t.max_total_loss],
        ["Drawdown", (t) => t.drawdown_mode], ["Risk/trade", (t) => t.max_risk_per_trade ?? "—"], ["Leverage", (t) => t.max_leverage ?? "—"]], r.name ? [r] : []),
      a.status_reason ? h("p", { class: "reason" }, `Reason: ${a.status_reason.rule} — equity ${a.status_reason.value} vs ${a.status_reason.limit} at ${a.status_reason.at}`) : null);
    const old = cards.get(a.id);
    if (old) old.replaceWith(card); else list.append(card);
    cards.set(a.id, card);
  };
  const assessments = accounts.filter((a) => a.kind === "assessment");
  assessments.forEach(draw);
  if (!assessments.length) list.append(h("p", { class: "muted" }, "No assessment yet."));
  return live.subscribe("account", (m) => {
    for (const a of m.type === "snapshot" ? m.data : [m.data]) if (a.kind === "assessment") draw(a);
  });
}
