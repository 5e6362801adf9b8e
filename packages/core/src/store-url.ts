/**
 * Reading store URLs, shared by the backends' URL parsers so that every
 * scheme rejects the same mistakes with the same words and spells the same
 * kind of option the same way. Each parser keeps its own message prefix
 * (scheme, example URL, redaction): it passes `fail`, which turns the reason
 * into its error.
 */

/**
 * `input` as a URL of `scheme` (e.g. "lmdb:", any case; or one of several),
 * with `text`, the URL as given, for messages. Always a fresh URL object, so
 * a parser may strip its own options from it. Text that is no URL, another
 * scheme, or a #fragment (no store gives one a meaning) is `fail`ed.
 */
export function readStoreUrl(
  input: URL | string,
  scheme: string | readonly string[],
  fail: (text: string, why: string) => Error,
): { url: URL; text: string } {
  const text = typeof input === "string" ? input : input.href;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw fail(text, "malformed URL");
  }
  const schemes = typeof scheme === "string" ? [scheme] : scheme;
  if (!schemes.includes(url.protocol.toLowerCase())) {
    throw fail(text, `scheme is "${url.protocol}", not ${schemes.map((s) => `"${s}"`).join(" or ")}`);
  }
  if (url.hash) throw fail(text, "a #fragment has no meaning here");
  return { url, text };
}

/**
 * A boolean option: a bare `?name` or `name=` (empty), 1, true or yes are
 * true; 0, false or no are false (any case). Anything else is `fail`ed.
 */
export function parseBooleanOption(name: string, value: string, fail: (why: string) => Error): boolean {
  switch (value.toLowerCase()) {
    case "":
    case "1":
    case "true":
    case "yes":
      return true;
    case "0":
    case "false":
    case "no":
      return false;
  }
  throw fail(`${name}=${JSON.stringify(value)} is not a boolean (true or false)`);
}
