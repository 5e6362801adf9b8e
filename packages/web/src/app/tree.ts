/**
 * `/tree/<root>/<path…>`: walks from the root one verified directory at a
 * time (each child's digest comes from its verified parent, so the chain of
 * trust starts at the root digest in the URL), then shows the directory
 * listing or the file at the end of the path.
 */
import type { Directory, DirectoryNode, FileNode, SymlinkNode } from "@castore-ts/proto";
import { decodeSegment, encodeRootSegment, encodeSegment } from "../shared/segments.js";
import { getDirectory, getRef } from "./api.js";
import { errorBox, h, hexOf, show } from "./dom.js";
import { escapeName } from "../shared/names.js";
import { filePage } from "./file.js";
import { copyButton, listing } from "./listing.js";

const crumbsEl = () => document.getElementById("crumbs")!;

function findByName<T extends { name: Uint8Array }>(nodes: T[], name: Uint8Array): T | undefined {
  return nodes.find((n) => n.name.length === name.length && n.name.every((b, i) => b === name[i]));
}

export async function treePage(rest: string): Promise<void> {
  const segments = rest.split("/");
  const rootText = new TextDecoder().decode(decodeSegment(segments[0]));
  const names = segments
    .slice(1)
    .filter((s) => s !== "")
    .map(decodeSegment);
  const rootUrl = `/tree/${encodeRootSegment(rootText)}`;
  const hrefOf = (depth: number) => [rootUrl, ...names.slice(0, depth).map(encodeSegment)].join("/");

  // Breadcrumbs first, so they are there even when something below fails.
  const crumbs: (Node | string)[] = [
    h("a", { href: rootUrl }, rootText.startsWith("ref:") ? rootText : rootText.slice(0, 12)),
  ];
  names.forEach((n, i) => crumbs.push(" / ", h("a", { href: hrefOf(i + 1) }, escapeName(n))));
  crumbsEl().replaceChildren(h("nav", { "aria-label": "breadcrumbs" }, ...crumbs));

  let digestHex: string;
  if (rootText.startsWith("ref:")) digestHex = await getRef(rootText.slice(4));
  else if (/^[0-9a-fA-F]{64}$/.test(rootText)) digestHex = rootText.toLowerCase();
  else throw new Error(`${JSON.stringify(rootText)} is not a root: expected 64 hex digits or ref:NAME`);

  let directory: Directory = await getDirectory(digestHex);
  for (let i = 0; i < names.length; i++) {
    const name = names[i];
    const shown = names
      .slice(0, i + 1)
      .map(escapeName)
      .join("/");
    const dir: DirectoryNode | undefined = findByName(directory.directories, name);
    if (dir) {
      digestHex = hexOf(dir.digest);
      directory = await getDirectory(digestHex);
      continue;
    }
    const file: FileNode | undefined = findByName(directory.files, name);
    const link: SymlinkNode | undefined = findByName(directory.symlinks, name);
    if ((file || link) && i < names.length - 1) throw new Error(`${shown} is not a directory`);
    if (file) return filePage(file, `/raw/${encodeRootSegment(rootText)}/${names.map(encodeSegment).join("/")}`);
    if (link) {
      show(
        h("h1", {}, escapeName(link.name)),
        h("p", {}, "symlink to ", h("code", { class: "target" }, escapeName(link.target))),
      );
      document.body.dataset.state = "ready";
      return;
    }
    show(errorBox(`${shown}: no such file or directory below ${rootText}`));
    document.body.dataset.state = "error";
    return;
  }
  const title = names.length ? escapeName(names[names.length - 1]) : rootText.startsWith("ref:") ? rootText : "/";
  const heading = h(
    "h1",
    {},
    title,
    " ",
    h("code", { class: "note digest", title: "this directory's digest" }, digestHex),
    copyButton(digestHex),
  );
  await listing(heading, directory, hrefOf(names.length));
}
