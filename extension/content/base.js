/*
 * Lablr on Flickr's upload page.
 *
 * Notices every photo the user adds (file picker or drag-and-drop, one or many, at any time),
 * shrinks it here in the browser (longest side at most 512 px, JPEG), asks the Lablr server for
 * tags through the extension's service worker, and shows them as chips beside the tag field of
 * the selected photo. A click on a chip types the tag into Flickr's own tag widget. When the tag
 * field cannot be found (Flickr changed its markup), a floating panel shows every photo's tags
 * with copy buttons instead. Every Flickr selector lives in selectors.js.
 *
 * The content scripts share one scope and load in the manifest's order: base, find, typing, photos,
 * draw, panel, pick, publish. Top-level code only defines things; the last one wires them to the page.
 */
"use strict";

const api = globalThis.browser ?? globalThis.chrome;
const S = LABLR_SELECTORS;
const MAX_SIDE = 512;
const THUMB_SIDE = 80;
const JPEG_QUALITY = 0.9;
const MAX_IN_FLIGHT = 2;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 5000;
const IMAGE_NAME = /\.(jpe?g|png|gif|webp|bmp|tiff?|heic|heif|avif)$/i;

const state = {
  photos: [], // {id, name, stem, status, dataUrl, width, height, suggestions, message, requested}
  settings: lablrNormalizeSettings({}),
  picked: null, // the selector of the tag field the user picked, from storage.local
  picking: false, // waiting for the user to click the tag field
  alive: true, // false once the extension was reloaded or removed under this page
  server: { down: false, kind: null, dismissed: false, address: LABLR_DEFAULTS.server, model: null },
};
const seenFiles = new WeakSet();
const cardPhoto = new WeakMap();
const queue = [];
let inFlight = 0;
let nextId = 1;
let retryTimer = null;
let retryDelay = RETRY_MIN_MS;

// ---------------------------------------------------------------- talking to the worker

async function ask(message) {
  if (!state.alive) return { ok: false, kind: "gone" };
  try {
    const answer = await api.runtime.sendMessage(message);
    return answer || { ok: false, kind: "internal", message: "No answer from Lablr's worker." };
  } catch (_) {
    // The extension was updated or removed: this page's copy of it can do nothing more.
    state.alive = false;
    return { ok: false, kind: "gone" };
  }
}

// ---------------------------------------------------------------- finding things on the page

function tryAll(selector, root, fn) {
  try {
    return fn(selector, root);
  } catch (_) {
    return null; // a selector this browser does not understand: try the next one
  }
}

function first(selectors, root = document) {
  for (const selector of selectors) {
    const element = tryAll(selector, root, (s, r) => r.querySelector(s));
    if (element) return element;
  }
  return null;
}

function all(selectors, root = document) {
  for (const selector of selectors) {
    const elements = tryAll(selector, root, (s, r) => r.querySelectorAll(s));
    if (elements && elements.length) return Array.from(elements);
  }
  return [];
}

const matchesAny = (element, selectors) => selectors.some((s) => tryAll(s, element, (sel, e) => e.matches(sel)));
const closestAny = (element, selectors) => {
  for (const selector of selectors) {
    const found = tryAll(selector, element, (s, e) => e.closest(s));
    if (found) return found;
  }
  return null;
};
const visible = (element) =>
  element.checkVisibility ? element.checkVisibility({ opacityProperty: true, visibilityProperty: true }) : element.getClientRects().length > 0;

/**
 * Whether a person can see the element on the page (scrolling to it if need be): shown, of some
 * size, and not parked off the page's top or left edge. Flickr keeps a second set of fields, the
 * batch editor's, mounted far above the page (y ≈ −9760): it matches every selector the real one does.
 */
function onScreen(element) {
  if (!element || !element.isConnected || !visible(element)) return false;
  const box = element.getBoundingClientRect();
  return box.width > 0 && box.height > 0 && box.bottom + window.scrollY > 0 && box.right + window.scrollX > 0;
}

/** Every element matching any of the selectors, in the selectors' order, each once. */
function everyMatch(selectors, root = document) {
  const found = new Set();
  for (const selector of selectors) {
    const elements = tryAll(selector, root, (s, r) => r.querySelectorAll(s));
    for (const element of elements || []) found.add(element);
  }
  return [...found];
}

const norm = (text) => String(text || "").trim().toLowerCase();
// Flickr takes "New York", "new york" and "newyork" as one tag: compare tags by this key.
const tagKey = (tag) => String(tag || "").toLowerCase().replace(/["\s]+/g, "");
// A tag as typed into Flickr: a tag of several words goes in double quotes.
const flickrTag = (tag) => (/\s/.test(tag) ? `"${tag}"` : tag);

/** Tags without repeats (by tagKey), in order, at most `most` of them. */
function distinctTags(tags, most = Infinity) {
  const seen = new Set();
  const kept = [];
  for (const tag of tags) {
    const k = tagKey(tag);
    if (!k || seen.has(k) || kept.length >= most) continue;
    seen.add(k);
    kept.push(tag);
  }
  return kept;
}

/** Tags as one string in Flickr's syntax: space-separated, multi-word tags quoted, at most Flickr's maximum. */
const flickrTagString = (tags) => distinctTags(tags, S.maxTagsPerPhoto).map(flickrTag).join(" ");
const stemOf = (name) => String(name || "").replace(/\.[^./\\]+$/, "");
