// One market: ticker, candles with the user's fills marked, the live book ladder with cumulative depth,
// the trades tape, order entry (every type and class) with its cost, fee and the available balance.
import { all, get, live, post, session, items } from "../api.js";
import { attempt, button, checkbox, field, fmt, h, table, toast, values } from "../ui.js";
import { candleChart, depthChart, toSeconds } from "../charts.js";
import { orderColumns } from "./orders.js";

const INTERVALS = ["1m", "5m", "15m", "1h", "1d"];
const SECONDS = { "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400 };

export async function render(root, [symbol]) {
  const market = await get(`/markets/${encodeURIComponent(symbol)}`);
  const enc = encodeURIComponent(symbol);
  const stops = [];
  let preview = () => {}; // the order form's cost line, once the form exists
  const tickerBox = h("dl", { class: "ticker", "aria-label": "Ticker" });
  const ladder = new Ladder(market);
  const tape = h("ol", { class: "tape", "aria-label": "Trades" });
  const chartBox = h("div", { class: "chart", role: "img", "aria-label": `${symbol} candles` });
  const intervalPick = h("div", { class: "intervals", role: "group", "aria-label": "Interval" });
  const entry = h("section", { class: "card entry", "aria-labelledby": "entry-title" });
  const mine = h("section", { class: "card" });
  root.append(
    h("h1", {}, `${symbol} `, h("small", { class: "muted" }, `${market.kind} · ${market.venue}`)),
    tickerBox,
    h("div", { class: "market-grid" },
      h("section", { class: "card chart-card", "aria-label": "Chart" }, intervalPick, chartBox),
      h("section", { class: "card", "aria-labelledby": "book-title" }, h("h2", { id: "book-title" }, "Book"), ladder.node,
        h("h3", { id: "depth-title" }, "Depth"), ladder.depthBox),
      h("section", { class: "card", "aria-labelledby": "tape-title" }, h("h2", { id: "tape-title" }, "Trades"), tape),
      entry),
    mine);

  // ticker
  let ticker = await get(`/markets/${enc}/ticker`);
  const drawTicker = () => {
    tickerBox.replaceChildren(...[["Bid", ticker.bid], ["Ask", ticker.ask], ["Last", ticker.last], ["Mark", ticker.mark],
      ["Volume 24h", ticker.volume_24h]].flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, fmt.num(v))]),
    h("dt", {}, "Status"), h("dd", { class: `status status-${ticker.status}`, id: "market-status" }, ticker.status));
  };
  drawTicker();
  stops.push(live.subscribe(`ticker:${symbol}`, (m) => { ticker = m.data; drawTicker(); preview(); }));

  // candles, with the user's fills as markers
  const chart = candleChart(chartBox);
  let interval = "1m";
  let fills = session.user ? await all(`/trades?market=${enc}&limit=200`, 200) : [];
  let stopCandles = null;
  const markFills = () => chart.markers(fills.map((f) => ({
    time: Math.floor(toSeconds(f.executed_at) / SECONDS[interval]) * SECONDS[interval],
    position: f.side === "buy" ? "belowBar" : "aboveBar", color: f.side === "buy" ? "#2e7d32" : "#c62828",
    shape: f.side === "buy" ? "arrowUp" : "arrowDown", text: `${f.side} ${f.quantity}@${f.price}`,
  })));
  const pickInterval = (value) => {
    interval = value;
    for (const b of intervalPick.children) b.setAttribute("aria-pressed", String(b.dataset.interval === value));
    if (stopCandles) stopCandles();
    stopCandles = live.subscribe(`candles:${symbol}:${value}`, (m) => {
      if (m.type === "snapshot") { chart.setCandles(m.data); markFills(); } else chart.updateCandle(m.data);
    });
  };
  intervalPick.append(...INTERVALS.map((v) => h("button", { type: "button", "data-interval": v, onclick: () => pickInterval(v) }, v)));
  pickInterval(interval);
  stops.push(() => stopCandles && stopCandles(), () => chart.remove());

  // book and tape
  ladder.depth = depthChart(ladder.depthBox);
  stops.push(live.subscribe(`book:${symbol}`, (m) => ladder.receive(m)), () => ladder.depth.remove());
  const addTrade = (t) => {
    tape.prepend(h("li", { class: t.side === "buy" ? "up" : "down" }, `${fmt.time(t.executed_at).slice(11)} ${t.price} × ${t.quantity}`));
    while (tape.children.length > 50) tape.lastChild.remove();
  };
  (await get(`/markets/${enc}/trades?limit=30`)).items.reverse().forEach(addTrade);
  stops.push(live.subscribe(`trades:${symbol}`, (m) => addTrade(m.data)));

  if (!session.user) {
    entry.append(h("h2", { id: "entry-title" }, "Trade"), h("p", {}, h("a", { href: "#/login" }, "Sign in"), " to trade."));
    mine.remove();
    return () => stops.forEach((s) => s());
  }

  // order entry
  const accounts = await items("/accounts");
  const sides = { spot: ["buy", "sell"], perp: ["buy", "sell"], binary: ["yes", "no", "buy", "sell"] }[market.kind];
  const form = h("form", { "aria-labelledby": "entry-title" },
    h("h2", { id: "entry-title" }, "Place an order"),
    field("Account", "account_id", { options: accounts.map((a) => a.id), value: accounts[0]?.id }),
    field("Side", "side", { options: sides }),
    field("Type", "type", { options: ["limit", "market", "stop", "stop_limit", "trailing_stop"] }),
    field("Quantity", "quantity", { step: market.lot_size, required: true }),
    field("Price", "price", { step: market.tick_size }),
    field("Stop price", "stop_price", { step: market.tick_size }),
    field("Trail %", "trail_percent"),
    field("Trail (price)", "trail_price"),
    field("Activation price", "activation_price"),
    field("Trigger", "trigger", { options: ["", "last", "mark", "bid_ask"] }),
    field("Time in force", "time_in_force", { options: ["gtc", "ioc", "fok", "day", "gtd"] }),
    field("Expires at (gtd, RFC 3339)", "expire_at"),
    checkbox("Post-only", "post_only"),
    checkbox("Reduce-only", "reduce_only"),
    field("Order class", "order_class", { options: ["simple", "bracket", "oto", "oco"] }),
    field("Take-profit limit", "tp_limit"),
    field("Stop-loss stop", "sl_stop"),
    field("Stop-loss limit", "sl_limit"),
    h("output", { class: "preview", id: "order-preview", "aria-live": "polite" }),
    h("button", { type: "submit" }, "Place order"));
  entry.append(form);
  const show = () => {
    const v = values(form);
    const visible = {
      price: ["limit", "stop_limit"].includes(v.type), stop_price: ["stop", "stop_limit"].includes(v.type),
      trail_percent: v.type === "trailing_stop", trail_price: v.type === "trailing_stop", activation_price: v.type === "trailing_stop",
      trigger: ["stop", "stop_limit", "trailing_stop"].includes(v.type), expire_at: v.time_in_force === "gtd",
      tp_limit: v.order_class !== "simple", sl_stop: v.order_class !== "simple", sl_limit: v.order_class !== "simple",
    };
    for (const [name, on] of Object.entries(visible)) form.elements[name].closest(".field").hidden = !on;
  };
  preview = () => {
    if (!form.isConnected) return;
    const v = values(form);
    const account = accounts.find((a) => a.id === v.account_id);
    const reference = Number(v.price || v.stop_price || (v.side === "buy" || v.side === "yes" ? ticker.ask : ticker.bid) || ticker.last || 0);
    const qty = Number(v.quantity || 0);
    const price = v.side === "no" ? 1 - reference : reference;
    const notional = price * qty;
    const lev = market.kind === "perp" ? Number(market.initial_margin || 1) : 1;
    const fee = Math.ceil(notional * Number(v.post_only ? market.maker_fee : market.taker_fee) * 100 - 1e-9) / 100; // rounded up, as charged
    form.querySelector("#order-preview").textContent = qty && price
      ? `Cost ≈ ${(Math.ceil(notional * lev * 100 - 1e-9) / 100).toFixed(2)} ${market.quote}${market.kind === "perp" ? " (initial margin)" : ""} · fee ≤ ${fee.toFixed(2)} · available ${account ? account.available : "—"} ${account ? account.currency : ""}`
      : `Available ${account ? account.available : "—"} ${account ? account.currency : ""}`;
  };
  form.addEventListener("input", () => { show(); preview(); });
  show(); preview();
  stops.push(live.subscribe("account", (m) => {
    for (const a of m.type === "snapshot" ? m.data : [m.data]) {
      const i = accounts.findIndex((x) => x.id === a.id);
      if (i >= 0) accounts[i] = a;
    }
    preview();
  }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const v = values(form);
    const body = { account_id: v.account_id, market: symbol, side: v.side, type: v.type, quantity: v.quantity, time_in_force: v.time_in_force };
    for (const k of ["price", "stop_price", "trail_percent", "trail_price", "activation_price", "trigger", "expire_at"]) {
      if (v[k] && !form.elements[k].closest(".field").hidden) body[k] = v[k];
    }
    if (v.post_only) body.post_only = true;
    if (v.reduce_only) body.reduce_only = true;
    if (v.order_class !== "simple") {
      body.order_class = v.order_class;
      if (v.tp_limit) body.take_profit = { limit_price: v.tp_limit };
      if (v.sl_stop) body.stop_loss = v.sl_limit ? { stop_price: v.sl_stop, limit_price: v.sl_limit } : { stop_price: v.sl_stop };
    }
    const order = await attempt(form, () => post("/orders", body));
    if (order) toast(`Order ${order.id} ${order.status}`);
  });

  // the user's open orders here, live
  let open = (await get(`/orders?market=${enc}&status=open&limit=100`)).items;
  const openTable = table("My open orders", orderColumns({ cancel: true }), open, "No open orders");
  mine.append(openTable);
  stops.push(live.subscribe("orders", (m) => {
    if (m.type === "snapshot") open = m.data.filter((o) => o.market === symbol);
    else if (m.data.market === symbol) {
      open = open.filter((o) => o.id !== m.data.id);
      if (["open", "partially_filled", "pending_trigger", "accepted", "new", "pending"].includes(m.data.status)) open.unshift(m.data);
    }
    openTable.update(open);
  }));
  stops.push(live.subscribe("fills", (m) => {
    if (m.data.market !== symbol) return;
    fills = [m.data, ...fills];
    markFills();
    toast(`Filled ${m.data.side} ${m.data.quantity} @ ${m.data.price}`);
  }));
  return () => stops.forEach((s) => s());
}

/** The book as two maps of price -> quantity, drawn at most once per animation frame. */
class Ladder {
  constructor(market) {
    this.market = market;
    this.bids = new Map();
    this.asks = new Map();
    this.sequence = null;
    this.node = h("div", { class: "ladder", role: "table", "aria-label": "Order book" });
    this.pending = false;
    this.depthBox = h("div", { class: "chart depth", role: "img", "aria-labelledby": "depth-title" });
    this.depth = null;
  }

  receive(message) {
    const data = message.data;
    if (message.type === "snapshot") {
      this.bids = new Map(data.bids.map(([p, q]) => [p, q]));
      this.asks = new Map(data.asks.map(([p, q]) => [p, q]));
      this.sequence = message.sequence;
    } else {
      if (this.sequence !== null && message.sequence !== this.sequence + 1) {
        if (message.sequence <= this.sequence) return;
        live.send({ op: "subscribe", channels: [`book:${this.market.symbol}`] }); // a gap: a fresh snapshot
        this.sequence = null;
        return;
      }
      this.sequence = message.sequence;
      for (const [p, q] of data.bids) { if (Number(q) === 0) this.bids.delete(p); else this.bids.set(p, q); }
      for (const [p, q] of data.asks) { if (Number(q) === 0) this.asks.delete(p); else this.asks.set(p, q); }
    }
    if (!this.pending) {
      this.pending = true;
      requestAnimationFrame(() => { this.pending = false; this.draw(); });
    }
  }

  draw() {
    const allBids = [...this.bids].sort((a, b) => Number(b[0]) - Number(a[0]));
    const allAsks = [...this.asks].sort((a, b) => Number(a[0]) - Number(b[0]));
    const cumulative = (levels) => { let sum = 0; return levels.map(([p, q]) => [p, q, (sum += Number(q))]); };
    if (this.depth) this.depth.update(cumulative(allBids.slice(0, 100)).map(([p, , c]) => [p, c]), cumulative(allAsks.slice(0, 100)).map(([p, , c]) => [p, c]));
    const bids = allBids.slice(0, 15);
    const asks = allAsks.slice(0, 15);
    const cb = cumulative(bids);
    const ca = cumulative(asks);
    const most = Math.max(cb.at(-1)?.[2] || 0, ca.at(-1)?.[2] || 0) || 1;
    const row = (side) => ([p, q, c]) => h("div", { class: `level ${side}`, role: "row", "data-price": p, style: `--depth:${((c / most) * 100).toFixed(1)}%` },
      h("span", { role: "cell" }, p), h("span", { role: "cell" }, q), h("span", { role: "cell", class: "muted" }, c.toFixed(6).replace(/\.?0+$/, "")));
    this.node.replaceChildren(
      h("div", { class: "level head", role: "row" }, h("span", { role: "columnheader" }, "Price"), h("span", { role: "columnheader" }, "Size"), h("span", { role: "columnheader" }, "Total")),
      ...ca.reverse().map(row("ask")),
      h("div", { class: "spread", role: "row" }, h("span", { role: "cell" }, asks.length && bids.length ? `spread ${(Number(asks[0][0]) - Number(bids[0][0])).toFixed(8).replace(/\.?0+$/, "")}` : "—")),
      ...cb.map(row("bid")));
  }
}

export { button };
