/**
 * Ref names (spec §9): paths like `releases/2026-12-03`. Components are
 * separated by `/`, each made of ASCII letters, digits and `.`, `_`, `-`,
 * `+`, `@`, `=`; no component is empty, `.` or `..`; at most 256 bytes in
 * all. ASCII only so that a name is the same key in every store (an S3 key,
 * a PostgreSQL text column, an LMDB key), safe in a URL path and a shell
 * word, and never two spellings (no Unicode normalization to agree on).
 */
import { Digest } from "../digest.js";
import { ValidationError } from "../errors.js";

export const REF_NAME_MAX_BYTES = 256;

const COMPONENT = /^[A-Za-z0-9._+@=-]+$/;

/** The name itself when it is a valid ref name; otherwise a ValidationError saying which rule it breaks. */
export function checkRefName(name: string): string {
  const shown = JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name);
  const bad = (why: string): never => {
    throw new ValidationError(`invalid ref name ${shown}: ${why}`);
  };
  if (typeof name !== "string" || name.length === 0) bad("it is empty");
  if (name.length > REF_NAME_MAX_BYTES) bad(`it is ${name.length} characters long, the limit is ${REF_NAME_MAX_BYTES}`);
  for (const component of name.split("/")) {
    if (component === "") bad("it has an empty component (a leading, trailing or doubled '/')");
    if (component === "." || component === "..") bad(`it has a '${component}' component`);
    if (!COMPONENT.test(component)) {
      const char = [...component].find((c) => !COMPONENT.test(c))!;
      bad(
        `it contains ${JSON.stringify(char)}; allowed are ASCII letters, digits, '.', '_', '-', '+', '@', '=' and '/'`,
      );
    }
  }
  return name;
}

/** Where a command argument names a root: a digest, or a ref to look up. */
export type RootArgument = { digest: Digest; ref?: undefined } | { ref: string; digest?: undefined };

/** The prefix that makes an argument a ref name: `ref:releases/latest`. */
export const REF_PREFIX = "ref:";

/**
 * Parses a root argument: `ref:NAME` names a ref (the name is checked), any
 * other text must be a digest (hex or base64, as Digest.parse takes it).
 */
export function parseRootArgument(text: string): RootArgument {
  if (text.startsWith(REF_PREFIX)) return { ref: checkRefName(text.slice(REF_PREFIX.length)) };
  return { digest: Digest.parse(text) };
}
