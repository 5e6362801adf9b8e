#!/usr/bin/env node
/**
 * castore: the command line. Every command has --help; errors go to stderr as
 * one line with a non-zero exit status.
 */
import { Command, Option, CommanderError } from "commander";
import { knownSchemes } from "@castore-ts/core";
import { catCommand } from "./commands/cat.js";
import { conformanceCommand } from "./commands/conformance.js";
import { exportCommand } from "./commands/export.js";
import { gcCommand } from "./commands/gc.js";
import { getCommand } from "./commands/get.js";
import { importCommand } from "./commands/import.js";
import { lsCommand } from "./commands/ls.js";
import { refCommand } from "./commands/ref.js";
import { serveCommand } from "./commands/serve.js";
import { syncCommand } from "./commands/sync.js";
import { verifyCommand } from "./commands/verify.js";
import { DEFAULT_STORE } from "./stores.js";

export function createProgram(): Command {
  const program = new Command("castore")
    .description("Content-addressed Merkle directory trees (tvix/snix castore compatible)")
    .addOption(
      new Option("--log-level <level>", "log level of the JSON logs on stderr")
        .choices(["trace", "debug", "info", "warn", "error", "silent"])
        .default("warn")
        .env("CASTORE_LOG_LEVEL"),
    )
    .showHelpAfterError("(run with --help for usage)")
    .addHelpText(
      "after",
      `\nStore URLs (--store, default ${DEFAULT_STORE}):\n${knownSchemes()
        .map((s) => `  ${s.example}`)
        .join("\n")}\n`,
    );
  for (const cmd of [
    serveCommand(),
    importCommand(),
    lsCommand(),
    getCommand(),
    catCommand(),
    exportCommand(),
    conformanceCommand(),
    verifyCommand(),
    refCommand(),
    gcCommand(),
    syncCommand(),
  ]) {
    program.addCommand(cmd);
  }
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = createProgram().exitOverride();
  for (const cmd of program.commands) cmd.exitOverride();
  try {
    await program.parseAsync(argv, { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode; // commander already printed usage or help
    const message = e instanceof Error ? e.message : String(e);
    process.stderr.write(`castore: ${message.split("\n")[0]}\n`);
    return 1;
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith("/castore")) {
  // `castore ls … | head` closes the pipe early: that is the reader's choice, not an error.
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(0);
    throw e;
  });
  main(process.argv.slice(2)).then(
    (code) => exitWhenFlushed(code),
    (e) => {
      process.stderr.write(`castore: ${e instanceof Error ? e.message : String(e)}\n`);
      exitWhenFlushed(1);
    },
  );
}

/**
 * Exits explicitly once stdout and stderr have taken everything written.
 * Node 20 can deadlock when a process ends by running out of work
 * (NodePlatform::DrainTasks, nodejs/node#54918): the command is done, the
 * process never exits. We saw it in about one of six multi-process test runs.
 */
function exitWhenFlushed(code: number): void {
  let pending = 2;
  const done = () => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write("", done);
  process.stderr.write("", done);
}
