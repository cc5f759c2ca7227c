/*
 * Lablr's service worker: the only part of the extension that talks to the Lablr server.
 *
 * A page on https://www.flickr.com cannot fetch http://127.0.0.1 itself; the worker can, because
 * the extension holds a host permission for the local server (and for nothing else on the
 * network). It reads the server address and the number of tags from storage on every request,
 * so a change on the options page applies at once.
 */
"use strict";

if (typeof LABLR_DEFAULTS === "undefined" && typeof importScripts === "function") {
  importScripts("settings.js"); // Chrome's service worker; Firefox lists settings.js in the manifest
}

const api = globalThis.browser ?? globalThis.chrome;
const HEALTH_TIMEOUT_MS = 4000;
const SUGGEST_TIMEOUT_MS = 60000;
const FEEDBACK_TIMEOUT_MS = 30000;
const FEEDBACK_RETRY_MS = 3000;
// Says "this is Lablr's own extension": a page cannot send a custom header to the server without a
// CORS preflight, which the server never grants; the extension's host permission skips that check.
const CLIENT_HEADERS = Object.freeze({ "X-Lablr-Client": "extension" });

async function loadSettings() {
  return lablrNormalizeSettings(await api.storage.local.get(null));
}

/**
 * Whether the extension may talk to this server: the user chose it (the default one, or one saved on
 * the options page) and holds the host permission that really covers it. Only the port-less pattern
 * counts: Firefox "grants" http://127.0.0.1:PORT/* but never matches a port, so that grant reaches nothing.
 */
async function mayReach(parsed) {
  const stored = await api.storage.local.get(LABLR_APPROVED);
  if (!lablrIsApproved(parsed, stored[LABLR_APPROVED])) return false;
  try {
    return await api.permissions.contains({ origins: [parsed.pattern] });
  } catch (_) {
    return false;
  }
}

const needPermission = (parsed) => ({
  ok: false,
  kind: "permission",
  server: parsed.base,
  message: `Lablr needs your permission to reach ${parsed.base}: open its options and press Save.`,
});

/** fetch with a timeout, answering {ok, status, body} or {ok:false, kind, message}; never throws. */
async function call(url, init, timeoutMs) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let response;
  try {
    response = await fetch(url, { ...init, headers: CLIENT_HEADERS, signal: controller.signal, credentials: "omit", cache: "no-store" });
  } catch (err) {
    clearTimeout(timer);
    const timedOut = err && err.name === "AbortError";
    // A request that timed out reached the server; one that failed at once may not have.
    return { ok: false, kind: "unreachable", timedOut, message: timedOut ? "The server did not answer in time." : "The server is not running." };
  }
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  } finally {
    clearTimeout(timer);
  }
  if (!response.ok) {
    const error = body && body.error;
    return {
      ok: false,
      kind: "server",
      status: response.status,
      message: (error && error.message) || `The server answered ${response.status}.`,
    };
  }
  if (!body || typeof body !== "object") {
    return { ok: false, kind: "server", status: response.status, message: "The server's answer was not JSON." };
  }
  return { ok: true, status: response.status, body };
}

/** The settings and the server's address once it may be reached, or `refusal`: the answer saying why not. */
async function reachServer() {
  const settings = await loadSettings();
  const parsed = lablrParseServer(settings.server);
  if (parsed.error) return { settings, refusal: { ok: false, kind: "config", server: settings.server, message: parsed.error } };
  if (!(await mayReach(parsed))) return { settings, refusal: needPermission(parsed) };
  return { settings, base: parsed.base };
}

async function health() {
  const { base, refusal } = await reachServer();
  if (refusal) return refusal;
  const answer = await call(`${base}/api/v1/health`, { method: "GET" }, HEALTH_TIMEOUT_MS);
  if (!answer.ok) return { ...answer, server: base };
  const limits = answer.body.limits || {}; // an older server says none: the user's number goes as it is
  knownLimits = { server: base, limits };
  return { ok: true, server: base, model: answer.body.model || null, version: answer.body.version || null, limits };
}

// What the server last asked about accepts (the most tags k may ask for...), from its health answer:
// {server, limits}. Another server (the user changed the address) is asked again.
let knownLimits = null;

/** How many tags to ask for: the user's number, within the maximum of the server at `base`. */
async function tagCount(settings, base) {
  if (!knownLimits || knownLimits.server !== base) await health();
  const most = knownLimits && knownLimits.server === base && Number(knownLimits.limits.max_k);
  return most > 0 ? Math.min(settings.count, most) : settings.count;
}

function dataUrlToBlob(dataUrl) {
  const match = /^data:([^;,]+);base64,(.*)$/.exec(dataUrl || "");
  if (!match) throw new Error("not a base64 data URL");
  const bytes = Uint8Array.from(atob(match[2]), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type: match[1] });
}

/** A form with the message's photo in the field `image`, or null when the photo cannot be read. */
function photoForm(message) {
  let blob;
  try {
    blob = dataUrlToBlob(message.image);
  } catch (_) {
    return null;
  }
  const form = new FormData();
  form.append("image", blob, String(message.filename || "photo.jpg"));
  return form;
}

const UNREADABLE_PHOTO = { ok: false, kind: "input", message: "The photo could not be prepared." };

const cleanTags = (tags) =>
  (Array.isArray(tags) ? tags : []).map((t) => String(t).trim()).filter((t) => t && !t.includes(","));

async function suggest(message) {
  const { settings, base, refusal } = await reachServer();
  if (refusal) return refusal;
  const form = photoForm(message);
  if (!form) return UNREADABLE_PHOTO;
  const query = new URLSearchParams({ k: String(await tagCount(settings, base)) });
  const exclude = cleanTags(message.exclude);
  if (exclude.length) query.set("exclude", exclude.join(","));
  const answer = await call(`${base}/api/v1/suggest?${query}`, { method: "POST", body: form }, SUGGEST_TIMEOUT_MS);
  if (!answer.ok) return { ...answer, server: base };
  const result = (answer.body.results || [])[0];
  if (!result || !Array.isArray(result.suggestions)) {
    return { ok: false, kind: "server", server: base, message: "The server's answer had no suggestions." };
  }
  const suggestions = result.suggestions
    .filter((s) => s && typeof s.tag === "string")
    .map((s) => ({ tag: s.tag, score: Number(s.score), distance: Number(s.distance) }));
  return { ok: true, server: base, suggestions, model: answer.body.model || null };
}

/**
 * A published photo's final tags, to the server's feedback endpoint so it learns from them.
 * Runs in the background (the page never waits for it). Sent once: a request that may have reached
 * the server is never sent again (Firefox can let one through and block only its reply), so the
 * one retry is for a server that was down, told by its health check failing right after.
 */
async function feedback(message) {
  const { settings, base, refusal } = await reachServer();
  if (!settings.teach) return { ok: false, kind: "off", message: "Teaching Lablr is switched off." };
  if (refusal) return refusal;
  const tags = cleanTags(message.tags);
  if (!tags.length) return { ok: false, kind: "input", message: "No tags to send." };
  const form = photoForm(message);
  if (!form) return UNREADABLE_PHOTO;
  form.append("tags", tags.join(","));
  const suggested = cleanTags(message.suggested);
  if (suggested.length) form.append("suggested", suggested.join(","));
  const send = () => call(`${base}/api/v1/feedback`, { method: "POST", body: form }, FEEDBACK_TIMEOUT_MS);
  let answer = await send();
  if (!answer.ok && answer.kind === "unreachable" && !answer.timedOut && !(await health()).ok) {
    await new Promise((resolve) => setTimeout(resolve, FEEDBACK_RETRY_MS));
    answer = await send();
  }
  return { ...answer, server: base };
}

const HANDLERS = {
  feedback,
  health,
  suggest,
  settings: async () => ({ ok: true, settings: await loadSettings() }),
  openOptions: async () => {
    await api.runtime.openOptionsPage();
    return { ok: true };
  },
};

api.runtime.onMessage.addListener((message, sender, sendResponse) => {
  const handler = message && HANDLERS[message.type];
  if (!handler || sender.id !== api.runtime.id) return false;
  handler(message).then(sendResponse, (err) =>
    sendResponse({ ok: false, kind: "internal", message: String((err && err.message) || err) })
  );
  return true; // answer asynchronously
});
