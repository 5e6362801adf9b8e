import { Command, Option } from "commander";
import { type Digest, NotFoundError, redactUrl, type RefService } from "@castore-ts/core";
import { DEFAULT_STORE, openRefs } from "../stores.js";
import { parseDigest } from "./options.js";
import { parseRefName } from "../roots.js";

const NAME_HELP = `
Ref names: 1–256 bytes; '/'-separated components of ASCII letters, digits and
. _ - + @ =, none empty, '.' or '..' (e.g. releases/2026-12-03). Anywhere a
command takes a root digest it also takes ref:NAME.`;

/**
 * --expect DIGEST, or --expect none (the ref must not exist). Checked while
 * parsing, kept as text: commander turns a parser's null into "".
 */
function parseExpect(text: string): string {
  if (text !== "none") parseDigest(text);
  return text;
}

function expectation(text: string | undefined): Digest | null | undefined {
  if (text === undefined) return undefined;
  return text === "none" ? null : parseDigest(text);
}

function storeOption(): Option {
  return new Option("--store <url>", "store URL").default(DEFAULT_STORE).env("CASTORE_STORE");
}

const EXPECT_HELP =
  "compare-and-swap: change the ref only if it holds DIGEST ('none': only if it does not exist); " +
  "otherwise fail, saying what it holds";

async function withRefs<T>(url: string, fn: (refs: RefService) => Promise<T>): Promise<T> {
  const refs = await openRefs(url);
  try {
    return await fn(refs);
  } finally {
    await refs.close();
  }
}

export function refCommand(): Command {
  const ref = new Command("ref")
    .description("Named roots: give a stored tree a name (set), look it up (get), list and remove names")
    .addHelpText("after", NAME_HELP);

  ref
    .command("set")
    .description("Point NAME at DIGEST, after checking that the store holds the whole tree (directories and blobs)")
    .argument("<name>", "ref name", parseRefName)
    .argument("<digest>", "root directory digest (hex or b3:base64)", parseDigest)
    .option("--expect <digest|none>", EXPECT_HELP, parseExpect)
    .addOption(storeOption())
    .action(async (name: string, digest: Digest, opts) => {
      await withRefs(opts.store, (refs) => refs.set(name, digest, { expect: expectation(opts.expect) }));
      process.stdout.write(`${name} ${digest.hex}\n`);
    });

  ref
    .command("get")
    .description("Print the digest NAME points at")
    .argument("<name>", "ref name", parseRefName)
    .addOption(storeOption())
    .action(async (name: string, opts) => {
      const digest = await withRefs(opts.store, (refs) => refs.get(name));
      if (!digest) throw new NotFoundError(`no ref ${name} in ${redactUrl(opts.store)}`);
      process.stdout.write(`${digest.hex}\n`);
    });

  ref
    .command("ls")
    .description("List refs (NAME DIGEST per line, by name), or those whose name starts with PREFIX")
    .argument("[prefix]", "only names starting with this text", "")
    .addOption(storeOption())
    .action(async (prefix: string, opts) => {
      await withRefs(opts.store, async (refs) => {
        for await (const { name, digest } of refs.list({ prefix })) process.stdout.write(`${name} ${digest.hex}\n`);
      });
    });

  ref
    .command("rm")
    .description("Remove NAME (the tree stays until garbage collection finds it unreferenced)")
    .argument("<name>", "ref name", parseRefName)
    .option(
      "--expect <digest>",
      "remove only if the ref holds DIGEST; otherwise fail, saying what it holds",
      parseDigest,
    )
    .addOption(storeOption())
    .action(async (name: string, opts) => {
      const removed = await withRefs(opts.store, (refs) => refs.delete(name, { expect: opts.expect }));
      if (!removed) throw new NotFoundError(`no ref ${name} in ${redactUrl(opts.store)}`);
    });

  return ref;
}
