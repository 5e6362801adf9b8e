/**
 * A partial upload made whole (spec §3.6): each stored child it refers to
 * is read back with its closure, and the upload becomes an ordinary
 * whole-closure upload of those directories and the ones it carried. A
 * store whose commit cannot check and mark stored children atomically takes
 * partial uploads this way: committing the whole closure stores again (and
 * marks used) whatever a collection deleted meanwhile, so no reference
 * dangles. The cost is reading the referred-to closures where the store is;
 * the client still sends only what it carried.
 */
import { ClosureValidator, type ValidatedClosure } from "./closure.js";
import { ClosureError } from "./errors.js";
import type { Directory } from "./model.js";
import type { DirectoryService } from "./service.js";
import type { SizeCheck } from "./size-check.js";

export async function expandPartialClosure(
  service: Pick<DirectoryService, "getRecursive">,
  closure: ValidatedClosure,
  opts: { sizeCheck?: SizeCheck; signal?: AbortSignal } = {},
): Promise<ValidatedClosure> {
  if (closure.external.length === 0) return closure;
  const whole = new ClosureValidator({ sizeCheck: opts.sizeCheck });
  for (const ext of closure.external) {
    // Root to leaves, each once (checked by the service's read): reversed, every child precedes its parents.
    const stored: Directory[] = [];
    for await (const d of service.getRecursive(ext.digest, { signal: opts.signal })) stored.push(d);
    if (stored.length === 0)
      throw new ClosureError(
        `${ext.referredBy} refers to ${ext.digest.hex}, which was not sent in this partial upload and is not stored`,
      );
    for (let i = stored.length - 1; i >= 0; i--) whole.add(stored[i]);
  }
  // The carried directories, in upload order; their declared sizes of the stored children are checked here.
  for (const entry of closure.entries) whole.add(entry.directory, entry.bytes);
  return whole.finish();
}
