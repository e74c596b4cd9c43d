// The accounts: balances, equity and drawdown curves (from the ledger's running balance), the ledger.
import { get, live, post, items } from "../api.js";
import { lineChart } from "../charts.js";
import { attempt, field, fmt, h, table, toast, values } from "../ui.js";

export async function render(root, [chosen]) {
  const accounts = await items("/accounts");
  root.append(h("h1", {}, "Account"));
  const create = h("form", { class: "card inline", "aria-label": "Open an account" },
    field("Currency", "currency", { value: "USD" }), field("Initial balance", "initial_balance", { value: "10000" }),
    h("button", { type: "submit" }, "Open cash account"));
  create.addEventListener("submit", async (e) => {
    e.preventDefault();
    const v = values(create);
    const made = await attempt(create, () => post("/accounts", { kind: "cash", currency: v.currency, initial_balance: v.initial_balance || null }));
    if (made) { toast(`Account ${made.id} opened`); location.hash = `#/account/${made.id}`; }
  });
  root.append(create);
  if (!accounts.length) { root.append(h("p", {}, "No account yet.")); return undefined; }
  const account = accounts.find((a) => a.id === chosen) || accounts[0];
  root.append(h("nav", { class: "tabs", "aria-label": "Accounts" }, accounts.map((a) =>
    h("a", { href: `#/account/${a.id}`, "aria-current": a.id === account.id ? "page" : undefined }, `${a.id} (${a.kind})`))));
  const summary = h("dl", { class: "ticker" });
  const draw = (a) => summary.replaceChildren(...[["Equity", a.equity], ["Balance", a.balance], ["Available", a.available],
    ["Unrealised", a.unrealized_pnl], ["Realised", a.realized_pnl], ["Drawdown", a.drawdown], ["Status", a.status], ["Trading", a.trading_state]]
    .flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]));
  draw(account);
  const balances = table("Balances", [["Currency", (b) => b.currency], ["Total", (b) => b.total], ["Available", (b) => b.available], ["Held", (b) => b.held]], account.balances || []);
  const ledger = (await get(`/accounts/${account.id}/ledger?limit=200`)).items;
  const ledgerTable = table("Ledger", [["When", (e) => fmt.time(e.at)], ["Type", (e) => e.type], ["Amount", (e) => e.amount], ["Currency", (e) => e.currency],
    ["Balance after", (e) => e.balance_after], ["Market", (e) => e.market ?? ""], ["Order", (e) => e.order_id ?? ""]], ledger, "No entries");
  const curve = h("div", { class: "chart small", role: "img", "aria-label": "Equity and drawdown" });
  root.append(summary, h("section", { class: "card" }, h("h2", {}, "Equity and drawdown"), curve), balances, h("div", { class: "scroll" }, ledgerTable));
  // the curve: the account's cash balance after each ledger entry (its equity between fills is not journaled)
  const cash = ledger.filter((e) => e.currency === account.currency).reverse();
  const points = cash.map((e) => [e.at, e.balance_after]);
  let peak = -Infinity;
  const drawdown = points.map(([t, v]) => { peak = Math.max(peak, Number(v)); return [t, peak - Number(v)]; });
  const chart = points.length ? lineChart(curve, [{ points, color: "#1565c0", title: "equity" }, { points: drawdown, color: "#c62828", title: "drawdown" }]) : null;
  const stop = live.subscribe("account", (m) => {
    const updates = m.type === "snapshot" ? m.data : [m.data];
    const mine = updates.find((a) => a.id === account.id);
    if (mine) { draw(mine); balances.update(mine.balances || []); }
  });
  return () => { stop(); chart?.remove(); };
}
