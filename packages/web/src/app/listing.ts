/**
 * A directory listing: one row per entry (directories, files and symlinks
 * together, in name order) in a virtual list (only the rows near the viewport
 * exist), so a directory of 50 000 entries opens as fast as a small one and
 * never blocks the page. When the first rows are on screen, the body's
 * `data-first-rows-ms` says how long after navigation start that was,
 * `data-state` is "ready" and `data-rows` the count.
 */
import type { Directory } from "@castore-ts/proto";
import { encodeSegment } from "../shared/segments.js";
import { h, hexOf, show } from "./dom.js";
import { escapeName } from "../shared/names.js";

/** Rows kept above and below the viewport, so a short scroll shows no gap. */
const OVERSCAN = 20;
/** A row's height (style.css), for the size an off-screen batch claims. */
const ROW_HEIGHT_PX = 24;

type Row =
  | { kind: "directory"; name: Uint8Array; digest: Uint8Array; size: bigint }
  | { kind: "file"; name: Uint8Array; digest: Uint8Array; size: bigint; executable: boolean }
  | { kind: "symlink"; name: Uint8Array; target: Uint8Array };

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

export function copyButton(text: string): HTMLButtonElement {
  return h("button", { class: "copy", type: "button", "data-copy": text, title: "copy the digest" }, "copy");
}

async function copy(text: string): Promise<void> {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  // Plain http on another host is not a secure context: the old way still works there.
  const area = h("textarea", {}, text);
  document.body.append(area);
  area.select();
  document.execCommand("copy");
  area.remove();
}

// One listener for every copy button on the page (a listing may have 50 000).
document.addEventListener("click", (ev) => {
  const button = (ev.target as Element).closest?.("button[data-copy]");
  if (!button) return;
  void copy(button.getAttribute("data-copy")!).then(() => {
    button.textContent = "copied";
  });
});

const cell = (cls: string, ...children: (Node | string)[]) =>
  h("span", { class: `cell ${cls}`, role: "cell" }, ...children);

function rowOf(entry: Row, base: string): HTMLElement {
  const name = escapeName(entry.name);
  const href = `${base}/${encodeSegment(entry.name)}`;
  const nameCell = cell(
    "name",
    entry.kind === "symlink" ? name : h("a", { href }, entry.kind === "directory" ? `${name}/` : name),
  );
  if (entry.kind === "symlink") {
    return h(
      "div",
      { class: "row", role: "row", "data-kind": "symlink" },
      nameCell,
      cell("kind", "symlink"),
      cell("size"),
      cell("exec"),
      cell("target", escapeName(entry.target)),
      cell("digest"),
    );
  }
  const digest = hexOf(entry.digest);
  const size = entry.kind === "file" ? entry.size.toString() : `${entry.size} entries`;
  return h(
    "div",
    { class: "row", role: "row", "data-kind": entry.kind },
    nameCell,
    cell("kind", entry.kind),
    cell("size", size),
    cell("exec", entry.kind === "file" && entry.executable ? "x" : ""),
    cell("target"),
    cell("digest", h("span", { title: digest }, digest.slice(0, 12)), copyButton(digest)),
  );
}

/**
 * Only the rows near the viewport are in the document (a virtual list): the
 * list claims the height of all its rows, and on every scroll or resize the
 * rows that came into view are added and those that left are removed. So a
 * directory of 50 000 entries costs what a screenful does, however long it is.
 */
export async function listing(heading: HTMLElement, directory: Directory, base: string): Promise<void> {
  const rows: Row[] = [
    ...directory.directories.map((d) => ({ kind: "directory" as const, name: d.name, digest: d.digest, size: d.size })),
    ...directory.files.map((f) => ({
      kind: "file" as const,
      name: f.name,
      digest: f.digest,
      size: f.size,
      executable: f.executable,
    })),
    ...directory.symlinks.map((s) => ({ kind: "symlink" as const, name: s.name, target: s.target })),
  ].sort((a, b) => compareBytes(a.name, b.name));
  const body = h("div", { class: "rows", role: "rowgroup" });
  body.style.height = `${rows.length * ROW_HEIGHT_PX}px`;
  const table = h(
    "div",
    { id: "listing", role: "table", "aria-rowcount": String(rows.length) },
    h(
      "div",
      { class: "row head", role: "row" },
      ...["name", "kind", "size", "exec", "symlink target", "digest"].map((c) =>
        h("span", { class: "cell", role: "columnheader" }, c),
      ),
    ),
    body,
  );
  show(heading, h("p", { class: "note" }, `${rows.length} entries`), table);
  const shown = new Map<number, HTMLElement>();
  const update = () => {
    const top = body.getBoundingClientRect().top;
    const first = Math.max(0, Math.floor(-top / ROW_HEIGHT_PX) - OVERSCAN);
    const last = Math.min(rows.length, Math.ceil((window.innerHeight - top) / ROW_HEIGHT_PX) + OVERSCAN);
    for (const [i, el] of shown) {
      if (i < first || i >= last) {
        el.remove();
        shown.delete(i);
      }
    }
    for (let i = first; i < last; i++) {
      if (shown.has(i)) continue;
      const el = rowOf(rows[i], base);
      el.style.top = `${i * ROW_HEIGHT_PX}px`;
      el.setAttribute("aria-rowindex", String(i + 2)); // 1 is the header
      body.append(el);
      shown.set(i, el);
    }
  };
  update();
  window.addEventListener("scroll", update, { passive: true });
  window.addEventListener("resize", update);
  document.body.dataset.firstRowsMs = String(Math.round(performance.now()));
  document.body.dataset.rows = String(rows.length);
  document.body.dataset.state = "ready";
}
