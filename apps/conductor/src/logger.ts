import type { Logger } from "@ocm-conductor/router";
import pino from "pino";

const LEVELS = ["debug", "info", "warn", "error"] as const;

/** A log level name. */
export type LogLevel = (typeof LEVELS)[number];

/** What replaces a redacted value. */
export const REDACTED = "[redacted]";

/**
 * Field names whose values are never logged, at the top level and one level down (pino `redact`
 * paths): passwords and tokens from the database and Maestro settings, and gRPC/HTTP credentials.
 */
const REDACT_KEYS = ["password", "token", "authorization", "secret", "bearer", "cookie", "privateKey"];
const REDACT_PATHS = REDACT_KEYS.flatMap((k) => [k, `*.${k}`]);

/** `scheme://user:password@host` → `scheme://user:[redacted]@host`, wherever a URL shows up in a message or field. */
const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/[^\s:/@"]*):[^\s@/"]*@/gi;
const scrub = (text: string): string => text.replace(URL_CREDENTIALS, `$1:${REDACTED}@`);

/**
 * A pino logger behind the libraries' small {@link Logger} interface: one JSON object per line
 * (`level` as a name, `time` ISO-8601, the fields, `msg`), on stderr by default so a command's
 * own output on stdout stays clean. Secrets are redacted: the fields named in {@link REDACT_KEYS}
 * and the password of any `scheme://user:password@host` URL in the message or in string fields
 * (a `DATABASE_URL` in an error message is the usual leak). Errors in fields are serialized with
 * their message and stack.
 */
export function createJsonLogger(level: LogLevel = "info", out: pino.DestinationStream | NodeJS.WritableStream = pino.destination({ fd: 2, sync: true })): Logger {
  const base = pino(
    {
      level,
      base: null,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT_PATHS, censor: REDACTED },
      serializers: { err: pino.stdSerializers.err, error: pino.stdSerializers.err },
    },
    out as pino.DestinationStream,
  );
  const write = (lvl: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
    if (!base.isLevelEnabled(lvl)) return;
    if (fields === undefined) base[lvl](scrub(message));
    else base[lvl](scrubFields(fields), scrub(message));
  };
  return { debug: write("debug"), info: write("info"), warn: write("warn"), error: write("error") };
}

/** Copies `fields` with URL credentials scrubbed from string values (two levels deep). */
function scrubFields(fields: Record<string, unknown>, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (typeof v === "string") out[k] = scrub(v);
    else if (v instanceof Error) out[k] = v;
    else if (depth < 1 && v !== null && typeof v === "object" && !Array.isArray(v)) out[k] = scrubFields(v as Record<string, unknown>, depth + 1);
    else out[k] = v;
  }
  return out;
}

/** True when `value` names a log level. */
export function isLogLevel(value: string): value is LogLevel {
  return (LEVELS as readonly string[]).includes(value);
}
