// The router: `#/view/arg` picks a view module; a view draws into <main> and returns its cleanup.
import { get, live, session, signOut } from "./api.js";
import { h } from "./ui.js";

const VIEWS = {
  login: () => import("./views/login.js"),
  markets: () => import("./views/markets.js"),
  market: () => import("./views/market.js"),
  orders: () => import("./views/orders.js"),
  positions: () => import("./views/portfolio.js"),
  account: () => import("./views/account.js"),
  assessments: () => import("./views/assessments.js"),
  sessions: () => import("./views/sessions.js"),
  backtests: () => import("./views/backtests.js"),
  admin: () => import("./views/admin.js"),
};

const NAV = [["markets", "Markets"], ["orders", "Orders"], ["positions", "Positions"], ["account", "Account"],
  ["assessments", "Assessments"], ["sessions", "Sessions"], ["backtests", "Backtests"]];

let cleanup = null;

function drawNav(current) {
  const signedIn = Boolean(session.user);
  const items = signedIn ? [...NAV, ...(session.user.role === "admin" ? [["admin", "Admin"]] : [])] : [["markets", "Markets"], ["login", "Sign in"]];
  document.getElementById("nav").replaceChildren(h("ul", {}, items.map(([view, label]) =>
    h("li", {}, h("a", { href: `#/${view}`, "aria-current": view === current ? "page" : undefined }, label)))));
  document.getElementById("who").textContent = signedIn ? `${session.user.username} (${session.user.role})` : "";
  document.getElementById("signout").hidden = !signedIn;
}

async function route() {
  const [name = "markets", ...args] = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const view = VIEWS[name] ? name : "markets";
  const needsUser = !["markets", "market", "login"].includes(view);
  if (needsUser && !session.user) { location.hash = "#/login"; return; }
  if (cleanup) { cleanup(); cleanup = null; }
  drawNav(view);
  const main = document.getElementById("main");
  main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  const module = await VIEWS[view]();
  const root = h("div", { class: `view view-${view}` });
  main.replaceChildren(root);
  cleanup = (await module.render(root, args)) || null;
  document.title = `${root.querySelector("h1")?.textContent || view} · tradehall`;
}

async function start() {
  const status = document.getElementById("live");
  live.statusListeners.add((value) => { status.textContent = value; status.dataset.state = value; });
  if (session.token) {
    try { session.user = await get("/auth/me"); } catch { session.token = null; }
  }
  document.getElementById("signout").addEventListener("click", () => { signOut(); location.hash = "#/login"; drawNav("login"); });
  live.connect();
  window.addEventListener("hashchange", route);
  await route();
}

start();
