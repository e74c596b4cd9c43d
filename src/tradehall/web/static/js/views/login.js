import { signIn } from "../api.js";
import { attempt, field, h, values } from "../ui.js";

export function render(root) {
  const form = h("form", { class: "card narrow", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Sign in"),
    field("Username", "username", { required: true }),
    field("Password", "password", { type: "password", required: true }),
    h("button", { type: "submit" }, "Sign in"),
    h("p", { class: "muted" }, "The token is kept for this tab only (sessionStorage)."));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { username, password } = values(form);
    const user = await attempt(form, () => signIn(username, password));
    if (user) location.hash = "#/markets";
  });
  root.append(form);
  form.querySelector("input").focus();
}
