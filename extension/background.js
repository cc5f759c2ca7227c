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
  return lablrNormalizeSettings(await api.storage.local.get(Object.keys(LABLR_DEFAULTS))); // not the kept photos
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
    return { ok: false, kind: "unreachable", message: timedOut ? "The server did not answer in time." : "The server is not running." };
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
  deliverKept(); // not awaited: the server answers, so what is kept for it goes now
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
  deliverKept(); // not awaited: suggestions never wait for it
  const result = (answer.body.results || [])[0];
  if (!result || !Array.isArray(result.suggestions)) {
    return { ok: false, kind: "server", server: base, message: "The server's answer had no suggestions." };
  }
  const suggestions = result.suggestions
    .filter((s) => s && typeof s.tag === "string")
    .map((s) => ({ tag: s.tag, score: Number(s.score), distance: Number(s.distance) }));
  return { ok: true, server: base, suggestions, model: answer.body.model || null };
}

// ---------------------------------------------------------------- publishing teaches: kept until sent

/*
 * A published photo's feedback is kept in storage.local (LABLR_KEPT) until the server has answered it, so
 * a server that is not running when the user publishes learns the photo later: the worker sends what is
 * kept, oldest first, whenever it finds the server answering (a suggest or health call, its own start).
 *
 * Sending a photo twice is safe, so a request that may have reached the server (it timed out, Firefox
 * blocked only its reply, the worker stopped before the answer) is simply sent again: the server's
 * personal layer knows a photo by the hash of its decoded pixels (core/personal/layer.py `record`,
 * server/feedback.py), the kept copy is the very JPEG sent before, and a photo already learned is answered
 * "it counts once" and not counted again. Any answer, an error too (a 4xx says the feedback itself is
 * wrong), ends a feedback's stay: only one that got no answer is sent again.
 */

let keptTurn = Promise.resolve(); // changes to the kept list, one at a time
let delivering = null; // the run that sends the kept feedback, while there is one
let deliverAgain = false; // something was kept while that run was sending
let retryTimer = null;

/** The kept feedback, oldest first; none while teaching is switched off. */
async function readKept() {
  const stored = await api.storage.local.get(["teach", LABLR_KEPT.key]);
  const kept = stored[LABLR_KEPT.key];
  return lablrNormalizeSettings({ teach: stored.teach }).teach && Array.isArray(kept) ? kept : [];
}

/** Replaces the kept list by change(list), the oldest dropped beyond LABLR_KEPT's bounds. */
function changeKept(change) {
  const run = keptTurn.then(async () => {
    const kept = change(await readKept());
    let chars = kept.reduce((sum, entry) => sum + JSON.stringify(entry).length, 0);
    while (kept.length > LABLR_KEPT.maxPhotos || chars > LABLR_KEPT.maxChars) chars -= JSON.stringify(kept.shift()).length;
    if (kept.length) await api.storage.local.set({ [LABLR_KEPT.key]: kept });
    else await api.storage.local.remove(LABLR_KEPT.key);
    return kept;
  });
  keptTurn = run.catch(() => {});
  return run;
}

/** What the server is sent for a published photo: {image, filename, tags, suggested}, or {error}. */
function feedbackEntry(message) {
  const tags = cleanTags(message.tags);
  if (!tags.length) return { error: { ok: false, kind: "input", message: "No tags to send." } };
  if (!photoForm(message)) return { error: UNREADABLE_PHOTO };
  const filename = String(message.filename || "photo.jpg");
  return { id: crypto.randomUUID(), image: message.image, filename, tags, suggested: cleanTags(message.suggested) };
}

// Why a feedback got no answer: it waits for the server. Any other outcome ends its stay.
const UNANSWERED = new Set(["unreachable", "permission", "config"]);

/** One feedback to the server: its answer, or why it did not get one. */
async function postFeedback(entry) {
  const form = photoForm(entry);
  const tags = cleanTags(entry.tags);
  if (!form || !tags.length) return UNREADABLE_PHOTO; // never sendable: dropped
  const { base, refusal } = await reachServer();
  if (refusal) return refusal;
  form.append("tags", tags.join(","));
  const suggested = cleanTags(entry.suggested);
  if (suggested.length) form.append("suggested", suggested.join(","));
  const answer = await call(`${base}/api/v1/feedback`, { method: "POST", body: form }, FEEDBACK_TIMEOUT_MS);
  return { ...answer, server: base };
}

/** Sends the kept feedback, oldest first, each until answered; false when the server could not be reached. */
async function sendKept() {
  for (;;) {
    const [oldest] = await readKept();
    if (!oldest) return true;
    const answer = await postFeedback(oldest);
    if (!answer.ok && UNANSWERED.has(answer.kind)) return false; // kept for the next time
    await changeKept((kept) => kept.filter((entry) => entry.id !== oldest.id));
  }
}

/** Starts sending the kept feedback unless that is under way; resolves true once none is left. */
function deliverKept() {
  deliverAgain = true;
  delivering ??= (async () => {
    let sent = true;
    try {
      while (deliverAgain && sent) {
        deliverAgain = false;
        sent = await sendKept().catch(() => false); // storage failed: what is kept stays
      }
      return sent;
    } finally {
      delivering = null;
    }
  })();
  return delivering;
}

/**
 * A published photo's final tags, for the server's feedback endpoint so it learns from them: kept, then
 * sent with whatever else is kept. The page never waits for it. A server that was down is tried once more
 * a few seconds later, then whenever it answers again.
 */
async function feedback(message) {
  const settings = await loadSettings();
  if (!settings.teach) return { ok: false, kind: "off", message: "Teaching Lablr is switched off." };
  const entry = feedbackEntry(message);
  if (entry.error) return entry.error;
  await changeKept((kept) => [...kept, entry]);
  if (await deliverKept()) return { ok: true };
  retryTimer ??= setTimeout(() => {
    retryTimer = null;
    deliverKept();
  }, FEEDBACK_RETRY_MS);
  const waiting = (await readKept()).length;
  return { ok: false, kind: "unreachable", kept: waiting, message: `Kept: ${waiting} sent when the Lablr server answers.` };
}

const HANDLERS = {
  feedback,
  kept: async () => ({ ok: true, count: (await readKept()).length }),
  forgetKept: async () => ({ ok: true, count: (await changeKept(() => [])).length }),
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

deliverKept(); // what was published while the server was down, from an earlier run of the worker
