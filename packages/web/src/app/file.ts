/**
 * A file: its size, executable bit and digest, a download link to /raw, and
 * a preview of files up to PREVIEW_LIMIT bytes, read whole through the
 * BlobService and verified against the digest before a byte is shown (as
 * text when it is UTF-8 without NULs, else as a hex dump). Larger files are
 * not previewed: a part of a blob cannot be checked against its digest.
 */
import type { FileNode } from "@castore-ts/proto";
import { readBlob, savedToken } from "./api.js";
import { h, hexOf, show } from "./dom.js";
import { escapeName } from "../shared/names.js";
import { copyButton } from "./listing.js";

export const PREVIEW_LIMIT = 1024 * 1024;
const HEX_LIMIT = 64 * 1024;

function hexDump(bytes: Uint8Array): string {
  const lines: string[] = [];
  for (let at = 0; at < Math.min(bytes.length, HEX_LIMIT); at += 16) {
    const row = bytes.subarray(at, at + 16);
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".")).join("");
    lines.push(`${at.toString(16).padStart(8, "0")}  ${hex.padEnd(47)}  ${ascii}`);
  }
  if (bytes.length > HEX_LIMIT) lines.push(`… ${bytes.length - HEX_LIMIT} more bytes`);
  return lines.join("\n");
}

function previewOf(bytes: Uint8Array): HTMLElement {
  let text: string | undefined;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    text = undefined;
  }
  if (text !== undefined && !text.includes("\0")) return h("pre", { class: "preview", "data-preview": "text" }, text);
  return h("pre", { class: "preview", "data-preview": "hex" }, hexDump(bytes));
}

export async function filePage(file: FileNode, rawUrl: string): Promise<void> {
  const digest = hexOf(file.digest);
  const size = Number(file.size);
  const facts = h(
    "p",
    {},
    `${size} bytes`,
    file.executable ? ", executable" : "",
    " · ",
    h("code", { title: digest }, digest),
    copyButton(digest),
    " · ",
    h("a", { href: `${rawUrl}?download`, id: "download", download: "" }, "download"),
  );
  const heading = h("h1", {}, escapeName(file.name));
  facts.querySelector("#download")!.addEventListener("click", (ev) => {
    const token = savedToken();
    if (!token) return; // a public port: the plain link works
    // A link cannot carry the bearer token: fetch with it, then save what came.
    ev.preventDefault();
    void downloadWithToken(`${rawUrl}?download`, token, escapeName(file.name));
  });
  if (size > PREVIEW_LIMIT) {
    show(heading, facts, h("p", { class: "note" }, `Larger than ${PREVIEW_LIMIT} bytes: not previewed.`));
  } else {
    show(heading, facts, previewOf(await readBlob(digest)));
  }
  document.body.dataset.state = "ready";
}

async function downloadWithToken(url: string, token: string, name: string): Promise<void> {
  const response = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  if (!response.ok) throw new Error(`download failed: ${response.status} ${await response.text()}`);
  const href = URL.createObjectURL(await response.blob());
  const a = h("a", { href, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 60_000);
}
