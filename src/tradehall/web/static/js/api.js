// REST calls and the one WebSocket of the page. The JWT lives in sessionStorage: it ends with the tab.

const TOKEN = "tradehall.token";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || problem.message || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.code = problem.code || String(status);
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN); },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN, value); else sessionStorage.removeItem(TOKEN);
  },
  user: null,
};

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.status === 204) return null;
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data || {});
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body);

/** Every page of a cursor-paginated list, up to `max` items. */
export async function all(path, max = 500) {
  const items = [];
  let cursor = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page = await get(cursor ? `${path}${sep}cursor=${encodeURIComponent(cursor)}` : path);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

export async function signIn(username, password) {
  const answer = await post("/auth/token", { username, password });
  session.token = answer.access_token;
  session.user = await get("/auth/me");
  live.authenticate();
  return session.user;
}

export function signOut() {
  session.token = null;
  session.user = null;
  live.restart();
}

/**
 * The WebSocket: one per tab, kept across views. A view subscribes with a handler and gets back a
 * function that unsubscribes it; the socket reconnects (and resubscribes, so snapshots come again).
 */
class Live {
  constructor() {
    this.handlers = new Map(); // channel -> Set(handler)
    this.socket = null;
    this.authenticated = false;
    this.statusListeners = new Set();
    this.retry = 500;
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${location.host}/ws`;
  }

  connect() {
    if (this.socket) return;
    const socket = new WebSocket(this.url());
    this.socket = socket;
    socket.onopen = () => {
      this.retry = 500;
      this.setStatus("live");
      this.authenticate();
      const publicChannels = [...this.handlers.keys()].filter((c) => !PRIVATE.has(c.split(":")[0]));
      if (publicChannels.length) this.send({ op: "subscribe", channels: publicChannels });
    };
    socket.onmessage = (event) => this.dispatch(JSON.parse(event.data));
    socket.onclose = () => {
      this.socket = null;
      this.authenticated = false;
      this.setStatus("offline");
      if (this.closing) { this.closing = false; this.connect(); return; }
      setTimeout(() => this.connect(), this.retry);
      this.retry = Math.min(this.retry * 2, 10000);
    };
  }

  restart() {
    if (this.socket) { this.closing = true; this.socket.close(); } else this.connect();
  }

  authenticate() {
    if (this.socket && this.socket.readyState === WebSocket.OPEN && session.token) {
      this.send({ op: "auth", token: session.token });
    }
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  setStatus(status) { for (const listener of this.statusListeners) listener(status); }

  dispatch(message) {
    if (message.op === "authenticated") {
      this.authenticated = true;
      const privateChannels = [...this.handlers.keys()].filter((c) => PRIVATE.has(c.split(":")[0]));
      if (privateChannels.length) this.send({ op: "subscribe", channels: privateChannels });
      return;
    }
    if (message.op === "error") { console.warn("ws error", message.code, message.message); return; }
    const handlers = this.handlers.get(message.channel);
    if (handlers) for (const handler of handlers) handler(message);
  }

  subscribe(channel, handler) {
    let set = this.handlers.get(channel);
    const fresh = !set;
    if (fresh) { set = new Set(); this.handlers.set(channel, set); }
    set.add(handler);
    const isPrivate = PRIVATE.has(channel.split(":")[0]);
    if (fresh && (!isPrivate || this.authenticated)) this.send({ op: "subscribe", channels: [channel] });
    else if (!fresh) this.send({ op: "subscribe", channels: [channel] }); // a fresh snapshot for the new view
    return () => {
      set.delete(handler);
      if (set.size === 0) {
        this.handlers.delete(channel);
        this.send({ op: "unsubscribe", channels: [channel] });
      }
    };
  }
}

const PRIVATE = new Set(["orders", "fills", "positions", "account", "sessions", "signals", "alerts"]);
export const live = new Live();

/** A list endpoint's items, whether it answers a page `{items}` or a bare list. */
export async function items(path) {
  const data = await get(path);
  return Array.isArray(data) ? data : data.items;
}
