// The Cookie header hookbox forwards (the browser's cookies), as an object.

/**
 * `"sid=abc; theme=dark"` → `{sid: 'abc', theme: 'dark'}`. The first of repeated names wins (as
 * browsers send the most specific first); quoted values lose their quotes and %-escapes are
 * decoded where they decode. Pieces without `=` are skipped.
 */
export function parseCookies(header) {
  const cookies = {};
  for (const piece of String(header ?? '').split(';')) {
    const eq = piece.indexOf('=');
    if (eq < 0) continue;
    const name = piece.slice(0, eq).trim();
    if (!name || Object.hasOwn(cookies, name)) continue;
    let value = piece.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    // defineProperty: a cookie named __proto__ is just a cookie.
    Object.defineProperty(cookies, name, {
      value: decode(value), enumerable: true, writable: true, configurable: true,
    });
  }
  return cookies;
}

function decode(value) {
  if (!value.includes('%')) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
