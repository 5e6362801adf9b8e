/** `/`: the store's refs, and a box to open a tree by digest (or ref:NAME). */
import { Code, ConnectError } from "@connectrpc/connect";
import { encodeRootSegment } from "../shared/segments.js";
import { listRefs } from "./api.js";
import { h, show } from "./dom.js";

export async function homePage(): Promise<void> {
  const input = h("input", {
    type: "text",
    name: "root",
    placeholder: "digest (64 hex) or ref:NAME",
    "aria-label": "root",
  });
  const form = h("form", { id: "open-root" }, input, h("button", { type: "submit" }, "open"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const root = input.value.trim();
    if (root) location.assign(`/tree/${encodeRootSegment(root)}`);
  });
  let refsSection: HTMLElement;
  try {
    const refs = await listRefs();
    refsSection =
      refs.length === 0
        ? h("p", { class: "note" }, "No refs in this store.")
        : h(
            "ul",
            { id: "refs" },
            ...refs.map((r) =>
              h(
                "li",
                {},
                h("a", { href: `/tree/${encodeRootSegment(`ref:${r.name}`)}` }, r.name),
                " ",
                h("code", { title: r.digest }, r.digest.slice(0, 12)),
              ),
            ),
          );
  } catch (e) {
    if (!(e instanceof ConnectError) || e.code !== Code.Unimplemented) throw e;
    refsSection = h("p", { class: "note" }, "This store keeps no refs.");
  }
  show(h("h1", {}, "Open a tree"), form, h("h2", {}, "Refs"), refsSection);
  document.body.dataset.state = "ready";
}
