/**
 * Whether a server sends castore's error classes: one deliberately invalid
 * upload (B without its child A, a closure error on every conforming server),
 * then a look at whether the rejection carries the castore-error-code
 * trailer. Servers we did not write (tvix, snix, another language) answer
 * with a bare status whose class a client can only guess, so the suite must
 * not check classes against them.
 */
import { castoreCodeOf, grpcCodeOf, transportFailureOf } from "@castore-ts/backend-grpc";
import { type DirectoryService, fixtures, isCastoreError } from "@castore-ts/core";

/** `true` when the server proved it sends classes; otherwise why not (the typedErrors capability's reason). */
export async function probeTypedErrors(service: DirectoryService): Promise<true | string> {
  const putter = service.putMultipleStart();
  let error: unknown;
  try {
    await putter.put(fixtures.DIRECTORY_B);
    await putter.close();
    return "the probe upload (B without its child A) was accepted, so no error code could be seen";
  } catch (e) {
    error = e;
    await putter.abort(e).catch(() => {});
  }
  const gone = transportFailureOf(error);
  if (gone) throw new Error(`the server went away during the typed-error probe (${gone}): ${(error as Error).message}`);
  if (castoreCodeOf(error) !== undefined) return true;
  // Never on a wire: a local castore backend (memory://, lmdb://, …) raised its own class.
  if (grpcCodeOf(error) === undefined && isCastoreError(error)) return true;
  return "the server's rejections carry no castore-error-code trailer, so their classes cannot be known";
}
