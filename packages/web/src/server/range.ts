/**
 * One HTTP `Range: bytes=…` header against a representation of `size` bytes
 * (RFC 9110 §14). Only single ranges are answered with 206: a list of ranges
 * is answered with the whole representation (200), which the RFC allows, and
 * so is a header that is not a bytes range at all.
 */
export type RangeAnswer =
  | { kind: "whole" }
  | { kind: "partial"; start: number; end: number } // inclusive end, as in Content-Range
  | { kind: "unsatisfiable" };

const SINGLE = /^bytes[ \t]*=[ \t]*(\d*)[ \t]*-[ \t]*(\d*)[ \t]*$/i;

export function answerRange(header: string | undefined, size: number): RangeAnswer {
  if (header === undefined) return { kind: "whole" };
  const m = SINGLE.exec(header);
  if (!m || (m[1] === "" && m[2] === "")) return { kind: "whole" };
  if (m[1] === "") {
    // bytes=-N: the last N bytes; N = 0 selects nothing.
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return { kind: "unsatisfiable" };
    return { kind: "partial", start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const last = m[2] === "" ? size - 1 : Number(m[2]);
  if (m[2] !== "" && last < start) return { kind: "whole" }; // invalid: ignored, as the RFC says
  if (start >= size) return { kind: "unsatisfiable" };
  return { kind: "partial", start, end: Math.min(last, size - 1) };
}
