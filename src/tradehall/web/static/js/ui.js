// Small DOM helpers: build elements, tables and forms without a framework.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A table with a caption; `columns` are [heading, (row) => cell content]. */
export function table(caption, columns, rows, empty = "None") {
  const body = h("tbody");
  const node = h("table", { class: "grid" }, h("caption", {}, caption),
    h("thead", {}, h("tr", {}, columns.map(([name]) => h("th", { scope: "col" }, name)))), body);
  fillRows(body, columns, rows, empty);
  node.update = (next) => fillRows(body, columns, next, empty);
  return node;
}

function fillRows(body, columns, rows, empty) {
  body.replaceChildren(...(rows.length
    ? rows.map((row) => h("tr", {}, columns.map(([, cell]) => h("td", {}, cell(row) ?? ""))))
    : [h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, empty))]));
}

/** A labelled input or select; `options` turns it into a select. */
export function field(label, name, { value = "", type = "text", options, required, hint, step } = {}) {
  const id = `f-${name}-${Math.random().toString(36).slice(2, 7)}`;
  const control = options
    ? h("select", { id, name }, options.map((o) => h("option", { value: o, selected: o === value }, o)))
    : h("input", { id, name, type, value, required, step, autocomplete: type === "password" ? "current-password" : "off", inputmode: type === "text" && step ? "decimal" : undefined });
  return h("div", { class: "field" }, h("label", { for: id }, label), control, hint ? h("small", {}, hint) : null);
}

export function values(form) {
  const out = {};
  for (const element of form.elements) {
    if (!element.name) continue;
    if (element.type === "checkbox") out[element.name] = element.checked;
    else out[element.name] = element.value.trim();
  }
  return out;
}

export function checkbox(label, name, checked = false) {
  const id = `c-${name}-${Math.random().toString(36).slice(2, 7)}`;
  return h("div", { class: "field check" }, h("input", { id, name, type: "checkbox", checked }), h("label", { for: id }, label));
}

/** An error as the API gave it: its code and its detail, in an alert region. */
export function problem(error) {
  const text = error.problem ? `${error.code}: ${error.message}` : String(error.message || error);
  return h("p", { class: "error", role: "alert" }, text);
}

export function toast(text) {
  const box = document.getElementById("toast");
  box.textContent = text;
  box.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => box.classList.remove("show"), 4000);
}

export const fmt = {
  num(value, digits) {
    if (value === null || value === undefined || value === "") return "—";
    const n = Number(value);
    return digits === undefined ? String(value) : n.toFixed(digits);
  },
  pct(value) {
    if (value === null || value === undefined || Number.isNaN(value)) return "—";
    return `${value >= 0 ? "+" : ""}${(value * 100).toFixed(2)}%`;
  },
  time(value) { return value ? new Date(value).toISOString().replace("T", " ").slice(0, 19) : "—"; },
};

export function button(text, onclick, attrs = {}) {
  return h("button", { type: "button", onclick, ...attrs }, text);
}

/** Runs `action`, shows its error below `anchor` (replacing an earlier one). */
export async function attempt(anchor, action) {
  anchor.querySelector(":scope > .error")?.remove();
  try { return await action(); } catch (error) { anchor.append(problem(error)); return undefined; }
}
