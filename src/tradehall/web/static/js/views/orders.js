// Open orders (cancel, amend price/quantity/stop), the history with end reasons, the fills.
import { all, api, get, live } from "../api.js";
import { attempt, button, fmt, h, table, toast } from "../ui.js";

const OPEN = new Set(["open", "partially_filled", "pending_trigger", "accepted", "new", "pending"]);

function legs(order) {
  return (order.legs || []).map((leg) => h("div", { class: "leg", "data-leg": leg.id || "" }, `↳ ${leg.type} ${leg.side} ${leg.quantity ?? ""} ${leg.price ?? leg.stop_price ?? ""} ${leg.status ?? ""}`));
}

export function orderColumns({ cancel = false, amend = false } = {}) {
  const cols = [
    ["Id", (o) => String(o.id)],
    ["Market", (o) => o.market],
    ["Side", (o) => o.side],
    ["Type", (o) => `${o.type}${o.order_class && o.order_class !== "simple" ? ` (${o.order_class})` : ""}`],
    ["Qty", (o) => `${o.filled_quantity ?? 0}/${o.quantity}`],
    ["Price", (o) => o.price ?? ""],
    ["Stop", (o) => o.stop_price ?? ""],
    ["Status", (o) => h("span", { class: `status status-${o.status}` }, o.status)],
    ["Legs", (o) => h("div", {}, legs(o))],
  ];
  if (cancel || amend) {
    cols.push(["", (o) => h("div", { class: "actions" },
      amend ? button("Amend", () => amendDialog(o), { "aria-label": `Amend order ${o.id}` }) : null,
      button("Cancel", async (event) => {
        const cell = event.target.closest("td");
        const done = await attempt(cell, () => api("DELETE", `/orders/${o.id}`));
        if (done) toast(`Order ${o.id} cancelled`);
      }, { "aria-label": `Cancel order ${o.id}` }))]);
  }
  return cols;
}

function amendDialog(order) {
  const dialog = h("dialog", { "aria-labelledby": "amend-title" });
  const form = h("form", {},
    h("h2", { id: "amend-title" }, `Amend order ${order.id}`),
    ...[["price", "Price"], ["quantity", "Quantity"], ["stop_price", "Stop price"]].map(([name, label]) =>
      h("div", { class: "field" }, h("label", { for: `amend-${name}` }, label), h("input", { id: `amend-${name}`, name, value: order[name] ?? "" }))),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Save"), button("Close", () => dialog.close())));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {};
    for (const name of ["price", "quantity", "stop_price"]) {
      const value = form.elements[name].value.trim();
      if (value && value !== String(order[name] ?? "")) body[name] = value;
    }
    const done = await attempt(form, () => api("PATCH", `/orders/${order.id}`, body));
    if (done) { toast(`Order ${order.id} amended`); dialog.close(); }
  });
  dialog.addEventListener("close", () => dialog.remove());
  dialog.append(form);
  document.body.append(dialog);
  dialog.showModal();
}

export async function render(root) {
  let open = await all("/orders?status=open&limit=100");
  const closed = await get("/orders?status=closed&limit=100");
  const fills = await get("/trades?limit=100");
  const openTable = table("Open orders", orderColumns({ cancel: true, amend: true }), open, "No open orders");
  const history = [...orderColumns(), ["Reason", (o) => o.cancel_reason || o.reject_reason || ""], ["Updated", (o) => fmt.time(o.updated_at || o.created_at)]];
  const historyTable = table("History", history, closed.items, "No ended orders");
  const fillColumns = [["Time", (f) => fmt.time(f.executed_at)], ["Market", (f) => f.market], ["Side", (f) => f.side], ["Price", (f) => f.price],
    ["Qty", (f) => f.quantity], ["Fee", (f) => f.fee], ["Liquidity", (f) => f.liquidity], ["P&L", (f) => f.realized_pnl], ["Order", (f) => String(f.order_id)]];
  const fillTable = table("Fills", fillColumns, fills.items, "No fills");
  root.append(h("h1", {}, "Orders"), h("div", { class: "scroll" }, openTable), h("div", { class: "scroll" }, historyTable), h("div", { class: "scroll" }, fillTable));
  let ended = closed.items;
  let fillRows = fills.items;
  const stops = [
    live.subscribe("orders", (m) => {
      if (m.type === "snapshot") { open = m.data; } else {
        open = open.filter((o) => o.id !== m.data.id);
        if (OPEN.has(m.data.status)) open.unshift(m.data);
        else { ended = [m.data, ...ended.filter((o) => o.id !== m.data.id)]; historyTable.update(ended); }
      }
      openTable.update(open);
    }),
    live.subscribe("fills", (m) => { fillRows = [m.data, ...fillRows]; fillTable.update(fillRows); }),
  ];
  return () => stops.forEach((s) => s());
}
