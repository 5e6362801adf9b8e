/** A tiny element builder: text children are always text nodes, never HTML, so names cannot inject markup. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) el.append(c);
  return el;
}

/** Replaces the page's content. */
export function show(...nodes: Node[]): void {
  document.getElementById("main")!.replaceChildren(...nodes);
}

/** A visible error that names what was wrong (role=alert, class error). */
export function errorBox(message: string): HTMLElement {
  return h("div", { class: "error", role: "alert" }, message);
}

export function hexOf(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

export function bytesOfHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}
