/**
 * Checks a URI or URI-reference the way Go's `url.Parse` does for the cases an attacker can reach:
 * control characters, malformed percent escapes and a leading colon are refused. Returns why the
 * text is invalid, or undefined when it is acceptable.
 */
export function checkUri(text: string): string | undefined {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(text)) return `invalid URI ${JSON.stringify(text)}: invalid control character`;
  if (/%(?![0-9A-Fa-f]{2})/.test(text)) return `invalid URI ${JSON.stringify(text)}: invalid URL escape`;
  if (text.startsWith(":")) return `invalid URI ${JSON.stringify(text)}: missing protocol scheme`;
  return undefined;
}
