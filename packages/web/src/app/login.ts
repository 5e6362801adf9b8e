/**
 * The login form: the server's bearer token, kept in session storage (gone
 * when the tab closes) and sent as `authorization: Bearer …` on every call.
 */
import { TOKEN_KEY, savedToken } from "./api.js";
import { h } from "./dom.js";

export function loginForm(): HTMLElement {
  const input = h("input", {
    type: "password",
    name: "token",
    autocomplete: "current-password",
    "aria-label": "token",
  });
  const form = h("form", { id: "login" }, input, h("button", { type: "submit" }, "sign in"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    location.reload();
  });
  return h(
    "section",
    {},
    h("h1", {}, "token needed"),
    h(
      "p",
      { class: "note" },
      savedToken() ? "The server refused the token given. " : "",
      "This castore server needs a bearer token (one of those in its --auth-token-file).",
    ),
    form,
  );
}
