/**
 * Reading the query options of store URLs, shared by the backends' URL
 * parsers so that every scheme spells the same kind of option the same way.
 * Each parser keeps its own error message prefix (scheme, example URL,
 * redaction): it passes `fail`, which turns the reason into its error.
 */

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
