/**
 * A directory listing: one row per entry (directories, files and symlinks
 * together, in name order as stored), rendered in batches, one per animation
 * frame, so a directory of 50 000 entries shows its first rows at once and
 * never blocks the page. When the first batch is on screen the body's
 * `data-first-rows-ms` says how long after navigation start that was; when
 * all are, `data-state` is "ready" and `data-rows` the count.
 */
import type { Directory } from "@castore-ts/proto";
import { encodeSegment } from "../shared/segments.js";
import { h, hexOf, show } from "./dom.js";
import { escapeName } from "./names.js";

const BATCH = 1000;

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

function rowOf(entry: Row, base: string): HTMLTableRowElement {
  const name = escapeName(entry.name);
  const href = `${base}/${encodeSegment(entry.name)}`;
  const nameCell = h(
    "td",
    { class: "name" },
    entry.kind === "symlink" ? name : h("a", { href }, entry.kind === "directory" ? `${name}/` : name),
  );
  if (entry.kind === "symlink") {
    return h(
      "tr",
      { "data-kind": "symlink" },
      nameCell,
      h("td", {}, "symlink"),
      h("td", { class: "size" }),
      h("td", {}),
      h("td", { class: "target" }, escapeName(entry.target)),
      h("td", {}),
    );
  }
  const digest = hexOf(entry.digest);
  const size = entry.kind === "file" ? entry.size.toString() : `${entry.size} entries`;
  return h(
    "tr",
    { "data-kind": entry.kind },
    nameCell,
    h("td", {}, entry.kind),
    h("td", { class: "size" }, size),
    h("td", { class: "exec" }, entry.kind === "file" && entry.executable ? "x" : ""),
    h("td", { class: "target" }),
    h("td", { class: "digest" }, h("span", { title: digest }, digest.slice(0, 12)), copyButton(digest)),
  );
}

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
  const tbody = h("tbody", {});
  const table = h(
    "table",
    { id: "listing" },
    h(
      "thead",
      {},
      h("tr", {}, ...["name", "kind", "size", "exec", "symlink target", "digest"].map((c) => h("th", {}, c))),
    ),
    tbody,
  );
  show(heading, h("p", { class: "note" }, `${rows.length} entries`), table);
  for (let at = 0; at < rows.length; at += BATCH) {
    const fragment = document.createDocumentFragment();
    for (const entry of rows.slice(at, at + BATCH)) fragment.append(rowOf(entry, base));
    tbody.append(fragment);
    if (at === 0) document.body.dataset.firstRowsMs = String(Math.round(performance.now()));
    // Let the browser paint and answer input before the next batch.
    await new Promise((r) => requestAnimationFrame(() => r(undefined)));
  }
  if (rows.length === 0) document.body.dataset.firstRowsMs = String(Math.round(performance.now()));
  document.body.dataset.rows = String(rows.length);
  document.body.dataset.state = "ready";
}
