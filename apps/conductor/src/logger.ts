import type { Logger } from "@ocm-conductor/router";

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 } as const;

/** A log level name. */
export type LogLevel = keyof typeof LEVELS;

/**
 * A logger writing one JSON object per line to a stream (stderr by default), for log collectors.
 */
export function createJsonLogger(level: LogLevel = "info", out: NodeJS.WritableStream = process.stderr): Logger {
  const min = LEVELS[level];
  const write = (lvl: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
    if (LEVELS[lvl] < min) return;
    out.write(`${JSON.stringify({ time: new Date().toISOString(), level: lvl, msg: message, ...fields })}\n`);
  };
  return { debug: write("debug"), info: write("info"), warn: write("warn"), error: write("error") };
}

/** True when `value` names a log level. */
export function isLogLevel(value: string): value is LogLevel {
  return value in LEVELS;
}
