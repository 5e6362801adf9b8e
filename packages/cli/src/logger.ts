/** The CLI's one logger: pino, structured JSON on stderr, quiet (warn) by default. */
import { destination, pino, type Logger } from "pino";

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "silent";

export function createLogger(level: LogLevel): Logger {
  return pino(
    { level, base: { pid: process.pid }, redact: ["password", "token", "secret", "*.password", "*.token"] },
    destination(2),
  );
}
