/**
 * The castore web app (no framework: a few pages built with the DOM). Routes:
 * `/` the refs and a digest box, `/tree/<root>/<path…>` a directory listing
 * or a file. Every page is a full load of index.html: the server answers
 * every app route with it, and the path is read here.
 */
import "./style.css";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorBox, show } from "./dom.js";
import { homePage } from "./home.js";
import { loginForm } from "./login.js";
import { treePage } from "./tree.js";
import { ready } from "./verify.js";

async function route(): Promise<void> {
  await ready;
  const path = location.pathname;
  if (path.startsWith("/tree/")) await treePage(path.slice("/tree/".length));
  else await homePage();
}

route().catch((e: unknown) => {
  if (e instanceof ConnectError && e.code === Code.Unauthenticated) show(loginForm());
  else show(errorBox(e instanceof Error ? e.message : String(e)));
  document.body.dataset.state = "error";
});
