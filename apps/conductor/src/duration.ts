const UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, "μs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parses a Go duration (`300ms`, `1.5h`, `2h45m`) into milliseconds. A bare integer is taken as
 * nanoseconds, as gopkg.in/yaml.v2 does for `time.Duration` fields. Returns undefined when the
 * text is not a duration.
 */
export function parseGoDuration(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isInteger(value) ? value / 1e6 : undefined;
  if (typeof value !== "string") return undefined;
  const text = value.trim();
  if (text === "0") return 0;
  const match = /^([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/.exec(text);
  if (match === null) return undefined;
  let total = 0;
  for (const part of text.matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) {
    total += Number(part[1]) * (UNITS[part[2] as string] as number);
  }
  return match[1] === "-" ? -total : total;
}
