// Positions with live unrealised P&L and liquidation price, and a close button.
import { live, post, get } from "../api.js";
import { attempt, button, h, table, toast } from "../ui.js";

export async function render(root) {
  let positions = (await get("/positions")).items;
  const columns = [
    ["Account", (p) => p.account_id], ["Market", (p) => p.market], ["Side", (p) => p.side], ["Qty", (p) => p.quantity],
    ["Entry", (p) => p.average_entry_price], ["Mark", (p) => p.mark_price],
    ["Unrealised P&L", (p) => h("span", { class: Number(p.unrealized_pnl) >= 0 ? "up" : "down" }, p.unrealized_pnl)],
    ["Realised P&L", (p) => p.realized_pnl], ["Margin", (p) => p.margin ?? ""], ["Liquidation", (p) => p.liquidation_price ?? "—"],
    ["", (p) => button("Close", async (event) => {
      const order = await attempt(event.target.closest("td"), () => post(`/positions/${encodeURIComponent(p.market)}/close`, { account_id: p.account_id }));
      if (order) toast(`Close order ${order.id} ${order.status}`);
    }, { "aria-label": `Close ${p.market} position` })],
  ];
  const grid = table("Open positions", columns, positions, "No open positions");
  root.append(h("h1", {}, "Positions"), h("div", { class: "scroll" }, grid));
  const key = (p) => `${p.account_id}|${p.market}`;
  return live.subscribe("positions", (m) => {
    if (m.type === "snapshot") positions = m.data;
    else {
      const updates = Array.isArray(m.data) ? m.data : [m.data];
      for (const u of updates) {
        positions = positions.filter((p) => key(p) !== key(u));
        if (u.side !== "flat") positions.push(u);
      }
      positions.sort((a, b) => key(a).localeCompare(key(b)));
    }
    grid.update(positions);
  });
}
