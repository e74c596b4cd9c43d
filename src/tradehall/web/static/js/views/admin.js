// Admin: markets (create, halt, resume, settle or void, post a mark), users, API keys, feeds and breakers,
// held settlements, execution analytics, the monitor's alerts (live) and its rules.
import { api, get, live, post, items } from "../api.js";
import { attempt, button, checkbox, field, h, table, toast, values } from "../ui.js";

export async function render(root) {
  const [markets, users, keys, ready, analytics, alerts, rules] = await Promise.all([items("/markets"), get("/admin/users?limit=500"), get("/auth/api-keys"),
    fetch("/ready").then((r) => r.json()), get("/analytics/execution?group_by=market"), get("/alerts?limit=50"), get("/alerts/rules")]);
  // held settlements exist only where feeds run (the endpoint is 404 otherwise)
  const held = ready.checks?.feeds ? await get("/admin/settlements") : { items: [] };
  root.append(h("h1", {}, "Admin"));
  const rerender = () => window.dispatchEvent(new HashChangeEvent("hashchange")); // the router redraws (and cleans up)
  const act = (label, path, body) => button(label, async (event) => {
    const done = await attempt(event.target.closest("td"), () => post(path, body));
    if (done !== undefined) { toast(`${label}: done`); rerender(); }
  }, { "aria-label": `${label} ${path.split("/")[3]}` });
  const markCell = (m) => {
    const form = h("form", { class: "mini" }, h("label", { class: "sr-only", for: `mark-${m.symbol}` }, `Mark for ${m.symbol}`),
      h("input", { id: `mark-${m.symbol}`, name: "price", size: "8", placeholder: "mark" }), h("button", { type: "submit" }, "Post"));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const done = await attempt(form, () => post(`/admin/markets/${encodeURIComponent(m.symbol)}/price`, { price: values(form).price }));
      if (done) toast(`Mark posted on ${m.symbol}`);
    });
    return form;
  };
  root.append(h("div", { class: "scroll" }, table("Markets", [["Symbol", (m) => m.symbol], ["Kind", (m) => m.kind], ["Venue", (m) => m.venue],
    ["Status", (m) => h("span", { class: `status status-${m.status}` }, m.status)], ["Mark", (m) => m.mark_price ?? "—"],
    ["Actions", (m) => h("div", { class: "actions" },
      m.status === "open" ? act("Halt", `/admin/markets/${encodeURIComponent(m.symbol)}/halt`) : null,
      m.status === "halted" ? act("Resume", `/admin/markets/${encodeURIComponent(m.symbol)}/resume`) : null,
      m.kind === "binary" && ["open", "halted", "closed"].includes(m.status) ? [act("Settle YES", `/admin/markets/${encodeURIComponent(m.symbol)}/settle`, { outcome: "yes" }),
        act("Settle NO", `/admin/markets/${encodeURIComponent(m.symbol)}/settle`, { outcome: "no" }), act("Void", `/admin/markets/${encodeURIComponent(m.symbol)}/cancel`)] : null)],
    ["Post a mark", markCell]], markets)));

  const create = h("form", { class: "card inline", "aria-label": "Create a market" }, h("h2", {}, "Create a market"),
    field("Symbol", "symbol", { required: true }), field("Kind", "kind", { options: ["spot", "perp", "binary"] }), field("Venue", "venue", { options: ["book", "quote"] }),
    field("Base", "base", { required: true }), field("Quote", "quote", { value: "USD" }), field("Tick size", "tick_size", { value: "0.01" }), field("Lot size", "lot_size", { value: "0.001" }),
    field("Taker fee", "taker_fee", { value: "0.001" }), field("Max leverage (perp)", "max_leverage"), h("button", { type: "submit" }, "Create"));
  create.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = Object.fromEntries(Object.entries(values(create)).filter(([, v]) => v !== ""));
    const made = await attempt(create, () => post("/admin/markets", body));
    if (made) { toast(`Market ${made.symbol} created`); rerender(); }
  });

  const user = h("form", { class: "card inline", "aria-label": "Create a user" }, h("h2", {}, "Users"),
    field("Username", "username", { required: true }), field("Password", "password", { type: "password", required: true }),
    field("Role", "role", { options: ["trader", "admin"] }), h("button", { type: "submit" }, "Create user"));
  user.addEventListener("submit", async (e) => {
    e.preventDefault();
    const made = await attempt(user, () => post("/admin/users", values(user)));
    if (made) { toast(`User ${made.username} created`); rerender(); }
  });
  const userCaption = users.next_cursor ? "Users (the first 500, oldest first)" : `Users (${users.items.length})`;
  const userTable = table(userCaption, [["Username", (u) => u.username], ["Role", (u) => u.role], ["Created", (u) => u.created_at], ["Id", (u) => u.user_id]],
    users.items, "No users");

  const keyForm = h("form", { class: "card inline", "aria-label": "Create an API key" }, h("h2", {}, "My API keys"),
    field("Label", "label"), checkbox("Trade scope", "trade", true), h("button", { type: "submit" }, "Create key"));
  keyForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const v = values(keyForm);
    const made = await attempt(keyForm, () => post("/auth/api-keys", { label: v.label || null, scopes: v.trade ? ["read", "trade"] : ["read"] }));
    if (made) keyForm.append(h("p", { class: "secret" }, "Shown once: ", h("code", {}, made.api_key)));
  });
  const keyTable = table("API keys", [["Id", (k) => k.key_id], ["Label", (k) => k.label ?? ""], ["Scopes", (k) => (k.scopes || []).join(", ")], ["Last used", (k) => k.last_used_at ?? "—"],
    ["", (k) => button("Revoke", async (event) => { const done = await attempt(event.target.closest("td"), () => api("DELETE", `/auth/api-keys/${k.key_id}`)); if (done !== undefined) rerender(); }, { "aria-label": `Revoke key ${k.key_id}` })]], keys.items, "No keys");

  const feeds = ready.checks?.feeds?.feeds || [];
  const feedTable = table("Feeds and circuit breakers", [["Feed", (f) => f.feed], ["Connected", (f) => String(f.connected)], ["Mode", (f) => f.mode], ["Circuit", (f) => f.circuit],
    ["Last message (s)", (f) => f.last_message_age_seconds ?? "—"], ["Messages", (f) => f.messages]], feeds, "No feeds run in this process");
  const checks = table("Readiness", [["Check", (c) => c[0]], ["OK", (c) => String(c[1].ok)]], Object.entries(ready.checks || {}));
  const heldTable = table("Held settlements", [["Market", (s) => s.market], ["Outcome", (s) => s.outcome],
    ["", (s) => h("div", { class: "actions" }, act("Confirm", `/admin/settlements/${encodeURIComponent(s.market)}/confirm`), act("Reject", `/admin/settlements/${encodeURIComponent(s.market)}/reject`))]], held.items, "None held");
  const analyticsTable = table("Execution analytics (my orders, by market)", [["Market", (a) => a.key ?? "—"], ["Orders", (a) => a.orders], ["Filled", (a) => a.filled_orders],
    ["Fill ratio", (a) => a.fill_ratio], ["Notional", (a) => a.notional], ["Fees", (a) => a.fees], ["Arrival bps", (a) => a.arrival_slippage_bps ?? "—"], ["VWAP bps", (a) => a.vwap_slippage_bps ?? "—"]], analytics.items, "No orders yet");
  let alertRows = alerts.items;
  const alertTable = table(`Alerts (health: ${rules.health})`, [["Rule", (a) => a.rule], ["Severity", (a) => a.severity],
    ["Status", (a) => h("span", { class: `status status-${a.status}` }, a.status)], ["Value", (a) => String(a.value)], ["Started", (a) => a.started_at], ["Resolved", (a) => a.resolved_at ?? "—"]],
  alertRows, "No alerts");
  const ruleTable = table("Alert rules", [["Rule", (r) => r.name], ["Severity", (r) => r.severity], ["Condition", (r) => `${r.metric || r.event} ${r.condition} ${r.threshold}`],
    ["For (s)", (r) => r.for_seconds], ["Firing", (r) => (r.firing ? "yes" : "no")], ["Last value", (r) => (r.last_value === null ? "—" : String(r.last_value))]], rules.items, "No rules");
  root.append(h("div", { class: "scroll" }, alertTable), h("div", { class: "scroll" }, ruleTable));
  root.append(create, user, h("div", { class: "scroll" }, userTable), keyForm, h("div", { class: "scroll" }, keyTable), feedTable, checks, heldTable, h("div", { class: "scroll" }, analyticsTable));
  return live.subscribe("alerts", (m) => {
    if (m.type === "snapshot") return; // the firing ones, already in the history
    alertRows = [m.data, ...alertRows.filter((a) => a.id !== m.data.id)];
    alertTable.update(alertRows);
  });
}
