/**
 * Root arguments: every command that takes a root digest also takes
 * `ref:NAME` (spec §9), looked up in the same store.
 */
import { InvalidArgumentError } from "commander";
import {
  checkRefName,
  type Digest,
  NotFoundError,
  parseRootArgument,
  redactUrl,
  type RootArgument,
} from "@castore-ts/core";
import { openRefStoreIfAny } from "./stores.js";

/** The help text of a root argument. */
export const ROOT_ARGUMENT_HELP = "root directory: its digest (hex or b3:base64), or ref:NAME";

/** Commander's parser for a root argument: checks the digest or the ref name, looks nothing up yet. */
export function parseRoot(text: string): RootArgument {
  try {
    return parseRootArgument(text);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** Commander's parser for a ref name argument or option. */
export function parseRefName(text: string): string {
  try {
    return checkRefName(text);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** The digest a root argument names in the store at `url`: a NotFoundError names a ref that does not exist. */
export async function resolveRoot(root: RootArgument, url: string): Promise<Digest> {
  if (root.digest) return root.digest;
  const refs = await openRefStoreIfAny(url);
  if (!refs) throw new NotFoundError(`no ref ${root.ref}: ${redactUrl(url)} keeps no refs`);
  try {
    const digest = await refs.getRef(root.ref);
    if (!digest) throw new NotFoundError(`no ref ${root.ref} in ${redactUrl(url)}`);
    return digest;
  } finally {
    await refs.close();
  }
}
