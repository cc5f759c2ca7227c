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

// Published photos whose feedback found no server, kept in storage.local under `key` until the server
// answers (background.js): at most `maxPhotos` of them and `maxChars` characters in all (each a shrunk JPEG
// of at most 512 px as a data URL, about 70,000 characters, with its tags), the oldest dropped first.
// Chrome's storage.local holds 10 MB (5 MB before Chrome 114).
// eslint-disable-next-line no-unused-vars
const LABLR_KEPT = Object.freeze({ key: "keptFeedback", maxPhotos: 60, maxChars: 4000000 });

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
  // No upper bound here: the server's health answer says how many tags it gives (its limits.max_k).
  s.count = int(s.count, 1, Infinity, LABLR_DEFAULTS.count);
  s.addTop = int(s.addTop, 1, Infinity, LABLR_DEFAULTS.addTop);
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
    return { error: `Not an address. Write it like ${LABLR_DEFAULTS.server}` };
  }
  if (url.protocol !== "http:") return { error: "The address must start with http://" };
  if (!LABLR_LOOPBACK_HOSTS.includes(url.hostname)) {
    return { error: "Lablr only talks to a server on this computer: use 127.0.0.1 or localhost." };
  }
  // A match pattern without the port: Firefox ignores ports in match patterns, and Chrome's covers every port.
  return { base: url.origin, pattern: `${url.protocol}//${url.hostname}/*` };
}

// The servers other than the default that the user chose on the options page, kept in storage.local.
// The manifest's host permissions cover every port of 127.0.0.1 and localhost; Lablr itself talks
// only to the default server and to these.
// eslint-disable-next-line no-unused-vars
const LABLR_APPROVED = "approvedServers";

/** Whether Lablr may talk to this parsed server address: the default one, or one the user saved. */
// eslint-disable-next-line no-unused-vars
function lablrIsApproved(parsed, approved) {
  return parsed.base === LABLR_DEFAULTS.server || (Array.isArray(approved) && approved.includes(parsed.base));
}

/**
 * On the user's click (call it before any await: Firefox grants only inside the click's handler):
 * asks the browser for the host permission the address needs, then remembers the address as chosen.
 * Resolves true when Lablr may now reach it.
 */
// eslint-disable-next-line no-unused-vars
function lablrAllowServer(api, parsed) {
  let asking;
  try {
    asking = Promise.resolve(api.permissions.request({ origins: [parsed.pattern] }));
  } catch (_) {
    asking = Promise.resolve(false);
  }
  return asking.then(async (granted) => {
    if (!granted) return false;
    const stored = await api.storage.local.get(LABLR_APPROVED);
    const approved = Array.isArray(stored[LABLR_APPROVED]) ? stored[LABLR_APPROVED] : [];
    if (!approved.includes(parsed.base)) await api.storage.local.set({ [LABLR_APPROVED]: [...approved, parsed.base] });
    return true;
  }, () => false);
}
