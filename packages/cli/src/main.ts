#!/usr/bin/env node
/**
 * castore: the command line. Every command has --help; errors go to stderr as
 * one line with a non-zero exit status.
 */
import { Command, Option, CommanderError } from "commander";
import { knownSchemes } from "@castore-ts/core";
import { DEFAULT_STORE, loadAllBackends } from "./stores.js";

/**
 * Every command by name, each loaded only when it runs: a command's module
 * brings its libraries (serve: the gRPC server and the web viewer;
 * conformance: the suite), and a short command should not pay for all of
 * them at start.
 */
const COMMANDS: Record<string, () => Promise<Command>> = {
  serve: async () => (await import("./commands/serve.js")).serveCommand(),
  import: async () => (await import("./commands/import.js")).importCommand(),
  ls: async () => (await import("./commands/ls.js")).lsCommand(),
  get: async () => (await import("./commands/get.js")).getCommand(),
  cat: async () => (await import("./commands/cat.js")).catCommand(),
  export: async () => (await import("./commands/export.js")).exportCommand(),
  conformance: async () => (await import("./commands/conformance.js")).conformanceCommand(),
  verify: async () => (await import("./commands/verify.js")).verifyCommand(),
  ref: async () => (await import("./commands/ref.js")).refCommand(),
  gc: async () => (await import("./commands/gc.js")).gcCommand(),
  sync: async () => (await import("./commands/sync.js")).syncCommand(),
};

/**
 * The program with the named commands (default: all of them, and every
 * backend, so that --help lists every command and store URL).
 */
export async function createProgram(names: string[] = Object.keys(COMMANDS)): Promise<Command> {
  const all = names.length === Object.keys(COMMANDS).length;
  const [commands] = await Promise.all([
    Promise.all(names.map((name) => COMMANDS[name]!())),
    all ? loadAllBackends() : undefined,
  ]);
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
  for (const cmd of commands) program.addCommand(cmd);
  return program;
}

/**
 * The command argv names: its first word that is a command's name (the
 * global option's values are log levels, never command names). None (no
 * arguments, `help`, --help, a misspelt command): all of them, so that
 * commander prints the whole usage.
 */
function commandsNamed(argv: string[]): string[] | undefined {
  const name = argv.find((a) => Object.hasOwn(COMMANDS, a));
  return name === undefined ? undefined : [name];
}

export async function main(argv: string[]): Promise<number> {
  try {
    const program = (await createProgram(commandsNamed(argv))).exitOverride();
    for (const cmd of program.commands) cmd.exitOverride();
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
