/* Lablr's settings and their defaults, shared by the content script, worker, options and popup. */
"use strict";

// eslint-disable-next-line no-unused-vars
const LABLR_DEFAULTS = Object.freeze({
  server: "http://127.0.0.1:8777", // where `lablr serve` listens
  count: 10, // how many tags to suggest per photo
  addTop: 5, // how many the "Add top N" button adds
  autoSuggest: true, // ask as soon as a photo is added, or only on a click
  minScore: null, // hide tags whose score (a probability) is below this; 0 shows all; null: the server's suggestion
  teach: true, // on publishing, send each photo's final tags to the server so it learns
});

// Where the tag field the user picked ("Pick the tag field" in the popup) is kept in storage.local.
// eslint-disable-next-line no-unused-vars
const LABLR_PICKED_FIELD = "tagFieldSelector";

// Lablr only ever talks to a server on this computer.
// eslint-disable-next-line no-unused-vars
const LABLR_LOOPBACK_HOSTS = Object.freeze(["127.0.0.1", "localhost"]);

/** The settings with defaults filled in and numbers clamped to what the server accepts. */
// eslint-disable-next-line no-unused-vars
function lablrNormalizeSettings(stored) {
  const s = { ...LABLR_DEFAULTS, ...(stored || {}) };
  const int = (v, lo, hi, dflt) => {
    const n = Math.round(Number(v));
    return Number.isFinite(n) ? Math.min(hi, Math.max(lo, n)) : dflt;
  };
  s.count = int(s.count, 1, 100, LABLR_DEFAULTS.count);
  s.addTop = int(s.addTop, 1, 100, LABLR_DEFAULTS.addTop);
  s.autoSuggest = s.autoSuggest !== false;
  s.teach = s.teach !== false;
  const score = s.minScore === null || s.minScore === "" ? NaN : Number(s.minScore);
  s.minScore = Number.isFinite(score) ? Math.min(1, Math.max(0, score)) : null;
  s.server = String(s.server || LABLR_DEFAULTS.server).replace(/\/+$/, "");
  return s;
}

/**
 * Checks a server address typed by the user. Returns {base, pattern} where base is the origin
 * to fetch and pattern is the host permission it needs, or {error} saying what is wrong.
 */
// eslint-disable-next-line no-unused-vars
function lablrParseServer(text) {
  let url;
  try {
    url = new URL(String(text).trim());
  } catch (_) {
    return { error: "Not an address. Write it like http://127.0.0.1:8777" };
  }
  if (url.protocol !== "http:") return { error: "The address must start with http://" };
  if (!LABLR_LOOPBACK_HOSTS.includes(url.hostname)) {
    return { error: "Lablr only talks to a server on this computer: use 127.0.0.1 or localhost." };
  }
  return { base: url.origin, pattern: `${url.protocol}//${url.hostname}/*`, exact: `${url.origin}/*` };
}
