/**
 * Polls `check` (which may be async) every `intervalMs` until it returns a truthy value, and
 * resolves with that value.
 * Rejects after `timeoutMs` with an error naming `what`, so a stuck wait says what it waited for.
 */
export async function eventually<T>(
  check: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 5000,
  what = "condition",
  intervalMs = 10,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
