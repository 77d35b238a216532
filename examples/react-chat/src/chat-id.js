// The chat id lives in the page URL (`?chat=<id>`), so a reload, or the same URL in a second
// tab, opens the same chat. A URL without a (valid) id gets a fresh random one.

// The ids the example app's routes accept.
const ID_PATTERN = /^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,199}$/;

/** A random id: `prefix` + 18 hex digits. */
export function randomId(prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The chat id of this page: `?chat=` when valid, else a new one written into the URL. */
export function chatIdFromUrl(prefix) {
  const url = new URL(window.location.href);
  const current = url.searchParams.get("chat");
  if (current && ID_PATTERN.test(current)) return current;
  const id = randomId(prefix);
  url.searchParams.set("chat", id);
  window.history.replaceState(null, "", url);
  return id;
}
