/*
 * Lablr on Flickr's upload page.
 *
 * Notices every photo the user adds (file picker or drag-and-drop, one or many, at any time),
 * shrinks it here in the browser (longest side at most 512 px, JPEG), asks the Lablr server for
 * tags through the extension's service worker, and shows them as chips beside the tag field of
 * the selected photo. A click on a chip types the tag into Flickr's own tag widget. When the tag
 * field cannot be found (Flickr changed its markup), a floating panel shows every photo's tags
 * with copy buttons instead. Every Flickr selector lives in selectors.js.
 */
"use strict";

(() => {
  if (globalThis.__lablrContentLoaded) return;
  globalThis.__lablrContentLoaded = true;

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
  const visible = (element) => (element.checkVisibility ? element.checkVisibility() : element.getClientRects().length > 0);

  const norm = (text) => String(text || "").trim().toLowerCase();
  const stemOf = (name) => String(name || "").replace(/\.[^./\\]+$/, "");

  function cardName(card) {
    const element = first(S.cardName, card) || card;
    for (const attribute of S.cardNameAttribute) {
      if (element.hasAttribute(attribute)) return element.getAttribute(attribute);
    }
    if (element === card) return "";
    return element.tagName === "INPUT" || element.tagName === "TEXTAREA" ? element.value : element.textContent;
  }

  /** The photo a card names by its title (filled in from the file name), if exactly one does. */
  function photoNamedBy(card, used) {
    const name = norm(stemOf(cardName(card)));
    if (!name) return null;
    const named = state.photos.filter((p) => !used.has(p.id) && (norm(p.stem) === name || norm(p.name) === name));
    return named.length === 1 ? named[0] : null; // two files of one name: no guessing
  }

  /** Cards paired with our photos: remembered pairs first, then by the title. Never by position. */
  function pairWith(cards) {
    const pairs = new Map();
    const used = new Set();
    const exists = (id) => state.photos.some((p) => p.id === id);
    for (const card of cards) {
      const id = cardPhoto.get(card);
      if (id && exists(id) && !used.has(id)) {
        pairs.set(card, id);
        used.add(id);
      }
    }
    for (const card of cards) {
      if (pairs.has(card)) continue;
      const photo = photoNamedBy(card, used);
      if (photo) {
        pairs.set(card, photo.id);
        used.add(photo.id);
      }
    }
    return pairs;
  }

  // The matches of a selector that are not inside another match of it.
  const outermost = (elements, selector) => elements.filter((e) => !(e.parentElement && e.parentElement.closest(selector)));

  /** The photo grid: built-in card selectors, else the class-fragment rule that names most of our photos. */
  function grid() {
    const known = all(S.photoCard);
    if (known.length) return { cards: known, pairs: pairWith(known), how: "built-in" };
    let best = { cards: [], pairs: new Map(), how: null };
    for (const selector of S.photoCardLoose) {
      const found = tryAll(selector, document, (s, r) => r.querySelectorAll(s));
      if (!found || !found.length) continue;
      const cards = outermost(Array.from(found), selector);
      const pairs = pairWith(cards);
      if (!best.how || pairs.size > best.pairs.size) best = { cards, pairs, how: selector };
    }
    return best;
  }

  function commitPairs(found) {
    for (const [card, id] of found.pairs) cardPhoto.set(card, id);
  }

  function isSelected(card, how) {
    if (how === "built-in") return all(S.selectedCard).includes(card);
    if (matchesAny(card, S.selectedLoose)) return true;
    const marker = first(S.selectedMarker, card);
    return Boolean(marker && visible(marker));
  }

  /**
   * Which photo the edit panel shows: {photo} when Lablr can tell, else {photo: null, why}.
   * why: "select" (no card selected), "several" (more than one selected), "unknown" (cannot tell).
   */
  function editTarget() {
    const photos = state.photos;
    if (!photos.length) return { photo: null, why: "none" };
    const found = grid();
    commitPairs(found);
    if (photos.length === 1 && found.cards.length <= 1) return { photo: photos[0] }; // one photo: no other to mix up
    const selected = found.cards.filter((card) => isSelected(card, found.how));
    const byId = (id) => photos.find((p) => p.id === id) || null;
    if (selected.length > 1) return { photo: null, why: "several" };
    if (selected.length === 1) {
      const photo = byId(found.pairs.get(selected[0]));
      return photo ? { photo } : { photo: null, why: "unknown" };
    }
    if (found.pairs.size) return { photo: null, why: "select" };
    return { photo: null, why: "unknown" };
  }

  /** A text input or textarea that names tags, in the edit panel if there is one; never the site's search. */
  function looseTagInput() {
    const word = S.tagWord.toLowerCase();
    const names = (input) => S.tagWordAttributes.some((a) => norm(input.getAttribute(a)).includes(word));
    const inPanel = (input) => Boolean(closestAny(input, S.editPanel));
    const candidates = all(S.textEntry).filter(
      (input) => names(input) && !input.disabled && !input.readOnly && (inPanel(input) || !closestAny(input, S.searchBox))
    );
    const rank = (input) => (inPanel(input) ? 2 : 0) + (visible(input) ? 1 : 0);
    candidates.sort((a, b) => rank(b) - rank(a));
    return candidates[0] || null;
  }

  function pickedInput() {
    if (!state.picked) return null;
    const element = tryAll(state.picked, document, (s, r) => r.querySelector(s));
    return element && (element.tagName === "INPUT" || element.tagName === "TEXTAREA") ? element : null;
  }

  /** Where tags are typed: {input, field, how} with how "picked", "built-in" or "loose"; or null. */
  function tagFieldParts() {
    let how = "picked";
    let input = pickedInput();
    if (!input) [how, input] = ["built-in", first(S.tagInput)];
    if (!input) [how, input] = ["loose", looseTagInput()];
    if (!input) return null;
    const field = closestAny(input, S.tagField) || input.parentElement;
    return { input, field, how };
  }

  /** Tags already on the photo being edited, as the tag widget shows them; null when its tokens cannot be read. */
  function currentTags(parts) {
    const tokens = all(S.tagToken, parts.field && parts.field.isConnected ? parts.field : document);
    if (!tokens.length && parts.how !== "built-in") return null;
    const tags = [];
    for (const token of tokens) {
      let text = null;
      for (const attribute of S.tagTokenAttribute) {
        if (token.hasAttribute(attribute)) text = token.getAttribute(attribute);
      }
      if (text === null) text = (first(S.tagTokenText, token) || token).textContent;
      text = String(text).replace(/[×✕]/g, "").trim();
      if (text) tags.push(text);
    }
    return tags;
  }

  /** The tags a photo has: the page's tokens while it shows them, else the ones added through Lablr. */
  function tagsOf(photo, parts) {
    const shown = parts ? currentTags(parts) : null;
    if (shown) return shown;
    if (photo.pageTags) return [...photo.pageTags];
    return [...photo.added];
  }

  // ---------------------------------------------------------------- typing a tag like a person

  const STICK_WAIT_MS = 80;
  const settle = () => new Promise((resolve) => setTimeout(() => requestAnimationFrame(() => resolve()), STICK_WAIT_MS));
  const setValue = (input, text) => {
    const proto = input.tagName === "TEXTAREA" ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype;
    Object.getOwnPropertyDescriptor(proto, "value").set.call(input, text);
  };
  const key = (input, type, name, code, keyCode) =>
    input.dispatchEvent(new KeyboardEvent(type, { key: name, code, keyCode, which: keyCode, bubbles: true, cancelable: true, composed: true }));
  const inputEvent = (input, data) =>
    input.dispatchEvent(new InputEvent("input", { bubbles: true, composed: true, inputType: "insertText", data }));

  // The ways a tag widget takes a typed tag, tried in turn until one sticks.
  const TYPE_WAYS = [
    function enter(input, tag) {
      setValue(input, tag);
      inputEvent(input, tag);
      for (const type of ["keydown", "keypress", "keyup"]) key(input, type, "Enter", "Enter", 13);
    },
    function comma(input, tag) {
      if (input.value.trim() !== tag) return; // taken in the meantime
      if (key(input, "keydown", ",", "Comma", 188)) {
        setValue(input, `${tag},`);
        inputEvent(input, ",");
      }
      key(input, "keyup", ",", "Comma", 188);
    },
    function blur(input, tag) {
      if (input.value.trim() === `${tag},`) {
        setValue(input, tag); // the comma did nothing: take it back before leaving
        inputEvent(input, null);
      }
      input.dispatchEvent(new Event("change", { bubbles: true }));
      if (document.activeElement === input) input.blur();
      else input.dispatchEvent(new FocusEvent("blur"));
    },
  ];

  /** Elements near the tag input whose whole text is the tag: a token, however the widget marks it up. */
  function tokensNamed(input, tag) {
    let root = input;
    for (let i = 0; i < S.tokenSearchLevels && root.parentElement; i++) root = root.parentElement;
    const want = norm(tag);
    let count = 0;
    for (const element of root.getElementsByTagName("*")) {
      if (element.firstElementChild || element === input) continue;
      if (norm(String(element.textContent).replace(/[×✕]/g, "")) === want) count++;
    }
    return count;
  }

  /** Types one tag; resolves true when the page took it (a new token, or the input cleared). */
  async function typeTag(tag) {
    let parts = tagFieldParts();
    if (!parts) return false;
    const before = { value: parts.input.value, tokens: tokensNamed(parts.input, tag) };
    parts.input.focus();
    for (const way of TYPE_WAYS) {
      parts = tagFieldParts();
      if (!parts) return false;
      way(parts.input, tag);
      await settle();
      const now = tagFieldParts();
      if (!now) return false;
      const shown = currentTags(now);
      if ((shown && shown.some((t) => norm(t) === norm(tag))) || tokensNamed(now.input, tag) > before.tokens) return true;
      if (now.input !== parts.input) return !now.input.value.trim(); // re-rendered: an empty new field took it
      if (!now.input.value.trim()) return true; // the field was cleared: taken
    }
    const last = tagFieldParts();
    if (last && norm(last.input.value).replace(/,$/, "") === norm(tag)) {
      setValue(last.input, before.value); // leave no half-typed tag behind
      inputEvent(last.input, null);
    }
    return false;
  }

  let adding = Promise.resolve();
  function addTags(photo, tags) {
    // One at a time, in order, even when clicks come faster than the widget.
    adding = adding.then(async () => {
      for (const tag of tags) {
        const parts = tagFieldParts();
        if (!parts || editTarget().photo !== photo) break; // the user selected another photo meanwhile
        const have = tagsOf(photo, parts);
        if (have.some((t) => norm(t) === norm(tag))) continue;
        if (await typeTag(tag)) {
          photo.added.add(tag);
          photo.refused.delete(tag);
        } else {
          photo.refused.add(tag);
        }
        scheduleRender();
      }
    });
    return adding;
  }

  // ---------------------------------------------------------------- photos in, shrunk

  function isImage(file) {
    return (file.type && file.type.startsWith("image/")) || (!file.type && IMAGE_NAME.test(file.name));
  }

  function addFiles(fileList) {
    let added = 0;
    for (const file of Array.from(fileList || [])) {
      if (!file || seenFiles.has(file) || !isImage(file)) continue;
      seenFiles.add(file);
      const photo = {
        id: nextId++,
        name: file.name || "photo",
        stem: stemOf(file.name || "photo"),
        status: "shrinking",
        suggestions: [],
        requested: false,
        added: new Set(), // tags added through Lablr's chips that the page took
        refused: new Set(), // tags the page did not take
        pageTags: null, // the tags the page last showed for it, where its tokens can be read
        taught: false, // its final tags went to the server on publishing
      };
      state.photos.push(photo);
      added++;
      prepare(photo, file);
    }
    if (added) scheduleRender();
  }

  async function shrink(file) {
    const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    try {
      const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
      const width = Math.max(1, Math.round(bitmap.width * scale));
      const height = Math.max(1, Math.round(bitmap.height * scale));
      let blob;
      if (typeof OffscreenCanvas === "function") {
        const canvas = new OffscreenCanvas(width, height);
        draw(canvas.getContext("2d"), bitmap, width, height);
        blob = await canvas.convertToBlob({ type: "image/jpeg", quality: JPEG_QUALITY });
      } else {
        const canvas = document.createElement("canvas");
        canvas.width = width;
        canvas.height = height;
        draw(canvas.getContext("2d"), bitmap, width, height);
        blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY));
      }
      if (!blob) throw new Error("could not encode");
      // A small picture for the floating panel, drawn on a canvas: no data: URL for the page's CSP to refuse.
      const thumbScale = Math.min(1, THUMB_SIDE / Math.max(width, height));
      const thumb = await createImageBitmap(bitmap, {
        resizeWidth: Math.max(1, Math.round(width * thumbScale)),
        resizeHeight: Math.max(1, Math.round(height * thumbScale)),
        resizeQuality: "medium",
      }).catch(() => null);
      const dataUrl = await new Promise((resolve, reject) => {
        const reader = new FileReader();
        reader.onload = () => resolve(reader.result);
        reader.onerror = () => reject(reader.error);
        reader.readAsDataURL(blob);
      });
      return { dataUrl, width, height, thumb };
    } finally {
      bitmap.close();
    }
  }

  function draw(ctx, bitmap, width, height) {
    ctx.fillStyle = "#fff"; // transparent areas become white, not black
    ctx.fillRect(0, 0, width, height);
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(bitmap, 0, 0, width, height);
  }

  // Decoding a 24-megapixel photo takes ~100 MB: shrink a few at a time, however many are added.
  const MAX_SHRINKING = 2;
  let shrinking = 0;
  const shrinkWaiters = [];

  async function shrinkInTurn(file) {
    while (shrinking >= MAX_SHRINKING) await new Promise((resolve) => shrinkWaiters.push(resolve));
    shrinking++;
    try {
      return await shrink(file);
    } finally {
      shrinking--;
      const next = shrinkWaiters.shift();
      if (next) next();
    }
  }

  async function prepare(photo, file) {
    try {
      Object.assign(photo, await shrinkInTurn(file));
    } catch (_) {
      photo.status = "error";
      photo.message = "This file could not be read as a picture.";
      scheduleRender();
      return;
    }
    if (state.settings.autoSuggest) enqueue(photo);
    else photo.status = "idle";
    scheduleRender();
  }

  // ---------------------------------------------------------------- asking for tags

  function enqueue(photo) {
    if (!photo.dataUrl || queue.includes(photo) || photo.status === "asking") return;
    photo.status = "waiting";
    queue.push(photo);
    pump();
  }

  function pump() {
    while (state.alive && !state.server.down && inFlight < MAX_IN_FLIGHT && queue.length) {
      const photo = queue.shift();
      if (!state.photos.includes(photo)) continue;
      inFlight++;
      suggestFor(photo).finally(() => {
        inFlight--;
        pump();
      });
    }
  }

  function excludeFor(photo) {
    const parts = tagFieldParts();
    return parts && editTarget().photo === photo ? tagsOf(photo, parts) : [];
  }

  async function suggestFor(photo) {
    photo.status = "asking";
    photo.requested = true;
    scheduleRender();
    if (!state.server.model) await checkServer(); // its threshold, before the first chips
    const answer = await ask({ type: "suggest", image: photo.dataUrl, filename: `${photo.stem}.jpg`, exclude: excludeFor(photo) });
    if (answer.ok) {
      photo.status = "done";
      photo.suggestions = answer.suggestions;
      photo.message = "";
      serverUp();
    } else if (answer.kind === "unreachable" || answer.kind === "permission" || answer.kind === "config") {
      photo.status = "waiting";
      queue.unshift(photo);
      serverDown(answer);
    } else if (answer.kind !== "gone") {
      photo.status = "error";
      photo.message = answer.message || "Lablr could not suggest tags for this photo.";
    }
    scheduleRender();
  }

  function serverDown(answer) {
    state.server.down = true;
    state.server.kind = answer.kind;
    state.server.message = answer.message || "";
    if (answer.server) state.server.address = answer.server;
    scheduleRender();
    scheduleRetry();
  }

  function serverUp() {
    const wasDown = state.server.down;
    state.server.down = false;
    state.server.kind = null;
    state.server.dismissed = false;
    retryDelay = RETRY_MIN_MS;
    clearTimeout(retryTimer);
    retryTimer = null;
    if (wasDown) scheduleRender();
    pump();
  }

  function scheduleRetry() {
    if (retryTimer || !state.alive) return;
    retryTimer = setTimeout(async () => {
      retryTimer = null;
      await checkServer();
      if (state.server.down) {
        retryDelay = Math.min(RETRY_MAX_MS, retryDelay * 2);
        scheduleRetry();
      }
    }, retryDelay);
  }

  async function checkServer() {
    const answer = await ask({ type: "health" });
    if (answer.ok) {
      state.server.model = answer.model;
      serverUp();
      scheduleRender(); // the model's threshold may have changed
    }
    else if (answer.kind !== "gone") serverDown(answer);
  }

  function retryNow() {
    clearTimeout(retryTimer);
    retryTimer = null;
    retryDelay = RETRY_MIN_MS;
    checkServer().then(() => {
      if (state.server.down) scheduleRetry();
    });
  }

  // ---------------------------------------------------------------- drawing our parts

  const STYLE = `
    :host { all: initial; }
    * { box-sizing: border-box; font-family: "Proxima Nova", "Helvetica Neue", Arial, sans-serif; }
    .bar { display: flex; flex-wrap: wrap; align-items: center; gap: 6px; margin: 8px 0 12px; font-size: 13px; color: #212124; }
    .label { font-weight: 600; color: #006add; margin-right: 2px; }
    .for { color: #898989; }
    .chip { border: 1px solid #c7c7c7; background: #f3f5f6; color: #212124; border-radius: 14px; padding: 3px 10px;
            font-size: 13px; line-height: 18px; cursor: pointer; }
    .chip:hover, .chip:focus-visible { background: #e1f0ff; border-color: #006add; outline: none; }
    .action { border: 0; background: #006add; color: #fff; border-radius: 3px; padding: 4px 10px; font-size: 12px; cursor: pointer; }
    .action:hover { background: #0058b8; }
    .link { border: 0; background: none; color: #006add; padding: 0; cursor: pointer; font-size: 12px; text-decoration: underline; }
    .muted { color: #898989; font-style: italic; }
    .chip.failed { border-color: #d08700; background: #fff4e0; }
    .warn { color: #a15c00; font-size: 12px; }
    .notice { position: fixed; right: 16px; bottom: 16px; z-index: 2147483646; max-width: 340px; background: #212124; color: #fff;
              border-radius: 6px; padding: 12px 14px; font-size: 13px; line-height: 18px; box-shadow: 0 4px 16px rgba(0,0,0,.3); }
    .notice.top { top: 16px; bottom: auto; }
    .notice code { font-family: Menlo, Consolas, monospace; background: #3b3b3f; padding: 1px 5px; border-radius: 3px; }
    .notice .row { display: flex; gap: 12px; margin-top: 8px; }
    .notice .link { color: #8fc6ff; }
    .notice .close { position: absolute; top: 4px; right: 8px; border: 0; background: none; color: #bbb; cursor: pointer; font-size: 16px; }
    .panel { position: fixed; right: 16px; top: 80px; z-index: 2147483645; width: 320px; max-height: calc(100vh - 120px); overflow: auto;
             background: #fff; border: 1px solid #d8d8d8; border-radius: 6px; box-shadow: 0 4px 16px rgba(0,0,0,.2); font-size: 13px; color: #212124; }
    .panel header { display: flex; justify-content: space-between; align-items: center; padding: 10px 12px; border-bottom: 1px solid #eee; font-weight: 600; }
    .panel .hint { margin: 8px 12px; color: #656565; font-size: 12px; }
    .panel section { padding: 10px 12px; border-top: 1px solid #f0f0f0; }
    .panel .photo { display: flex; align-items: center; gap: 8px; margin-bottom: 6px; }
    .panel .thumb { width: 40px; height: 40px; border-radius: 3px; background: #eee; flex: none; }
    .panel .name { font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
    .panel .chips { display: flex; flex-wrap: wrap; gap: 5px; margin-bottom: 8px; }
    .panel.minimised section, .panel.minimised .hint { display: none; }
  `;

  function makeHost(kind) {
    const host = document.createElement("div");
    host.dataset.lablr = kind;
    const root = host.attachShadow({ mode: "open" });
    try {
      // A constructed sheet is not an inline style, so a strict style-src on the page cannot block it.
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(STYLE);
      root.adoptedStyleSheets = [sheet];
    } catch (_) {
      const style = document.createElement("style");
      style.textContent = STYLE;
      root.append(style);
    }
    return { host, root, signature: null, view: null };
  }

  function el(tag, props = {}, ...children) {
    const element = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "class") element.className = value;
      else if (key === "on") for (const [type, fn] of Object.entries(value)) element.addEventListener(type, fn);
      else if (key in element && !key.includes("-")) element[key] = value;
      else element.setAttribute(key, value);
    }
    element.append(...children.filter((c) => c !== null && c !== undefined));
    return element;
  }

  function setView(part, signature, build) {
    if (part.signature === signature && part.view) return;
    part.signature = signature;
    const view = build();
    if (part.view) part.view.replaceWith(view);
    else part.root.append(view);
    part.view = view;
  }

  const fmt = (n, digits) => (Number.isFinite(n) ? n.toFixed(digits) : "?");
  const chipTitle = (s) => `score ${fmt(s.score, 3)} · distance ${fmt(s.distance, 2)}`;
  // The user's threshold, else the one the server suggests; none when the model's scores are not probabilities.
  const threshold = () => {
    const model = state.server.model;
    if (model && model.calibrated === false) return 0;
    return state.settings.minScore ?? (model && model.min_probability) ?? 0;
  };
  const clearing = (photo) => photo.suggestions.filter((s) => !(s.score < threshold())).slice(0, state.settings.count);
  const visibleSuggestions = (photo, have) => {
    const taken = new Set(have.map(norm));
    return clearing(photo).filter((s) => !taken.has(norm(s.tag)));
  };
  const belowThreshold = () =>
    `No suggested tag scores ${fmt(threshold(), 2)} or more; lower “Hide tags scoring below” in Lablr's options to see them.`;

  function statusText(photo) {
    if (photo.status === "shrinking" || photo.status === "asking") return "Lablr is finding tags…";
    if (photo.status === "waiting") return state.server.down ? "Waiting for the Lablr server…" : "Lablr is finding tags…";
    if (photo.status === "error") return photo.message;
    return "";
  }

  // What the inline bar says when it has no photo to add tags to.
  const NO_PHOTO = {
    select: "Select a photo to see its suggested tags.",
    several: "Several photos are selected: select one to add its suggested tags.",
    unknown: "Lablr cannot tell which photo this panel shows, so it adds no tags here: see Lablr's panel.",
  };

  // Inline chips beside the tag field.
  const inline = makeHost("chips");

  function renderInline(target, parts) {
    const anchor = parts.field;
    if (inline.host.previousElementSibling !== anchor || !inline.host.isConnected) anchor.after(inline.host);
    const photo = target.photo;
    const shown = photo ? visibleSuggestions(photo, tagsOf(photo, parts)) : [];
    const refused = photo ? [...photo.refused] : [];
    const several = state.photos.length > 1;
    const signature = JSON.stringify([photo && photo.id, target.why, photo && photo.status, shown, refused, state.settings.addTop,
      threshold(), several, state.server.down, photo && photo.message]);
    setView(inline, signature, () => {
      const bar = el("div", { class: "bar", role: "group", "aria-label": "Tags suggested by Lablr" }, el("span", { class: "label" }, "Lablr"));
      if (!photo) {
        bar.append(el("span", { class: "muted", role: "status" }, NO_PHOTO[target.why] || NO_PHOTO.unknown));
        return bar;
      }
      if (several) bar.append(el("span", { class: "for" }, `for ${photo.name}:`));
      if (photo.status === "idle") {
        bar.append(el("button", { class: "action", type: "button", on: { click: () => enqueue(photo) } }, "Suggest tags"));
      } else if (photo.status !== "done") {
        bar.append(el("span", { class: "muted", role: "status" }, statusText(photo)));
      } else if (!shown.length) {
        const message = !photo.suggestions.length ? "No tags to suggest." : !clearing(photo).length ? belowThreshold() : "All suggested tags added.";
        bar.append(el("span", { class: "muted", role: "status" }, message));
      } else {
        for (const s of shown) {
          const failed = photo.refused.has(s.tag);
          const title = failed ? `Flickr did not take “${s.tag}”: type it into the tag field yourself.` : chipTitle(s);
          bar.append(el("button", { class: `chip${failed ? " failed" : ""}`, type: "button", title, "data-tag": s.tag,
            on: { click: () => addTags(photo, [s.tag]) } }, failed ? `${s.tag} — not taken` : s.tag));
        }
        const n = Math.min(state.settings.addTop, shown.length);
        if (n > 1) {
          bar.append(el("button", { class: "action", type: "button", on: { click: () => addTags(photo, shown.slice(0, n).map((s) => s.tag)) } }, `Add top ${n}`));
        }
      }
      if (refused.length) {
        bar.append(el("span", { class: "warn", role: "alert" },
          `Flickr's tag field did not take ${refused.map((t) => `“${t}”`).join(", ")}: type ${refused.length > 1 ? "them" : "it"} yourself.`));
      }
      return bar;
    });
  }

  // The floating panel, for when the tag field is not where selectors.js expects it.
  const panel = makeHost("panel");
  let panelMinimised = false;

  async function copyText(text, button) {
    let copied = false;
    try {
      await navigator.clipboard.writeText(text);
      copied = true;
    } catch (_) {
      const area = el("textarea", { value: text, style: "position:fixed;left:-9999px;top:0" });
      panel.root.append(area);
      area.select();
      try {
        copied = document.execCommand("copy");
      } catch (_) {
        copied = false;
      }
      area.remove();
    }
    const label = button.textContent;
    button.textContent = copied ? "Copied" : "Copy failed";
    setTimeout(() => {
      if (button.isConnected) button.textContent = label;
    }, 2000);
  }

  function thumbnail(photo) {
    const canvas = el("canvas", { class: "thumb", width: 40, height: 40 });
    if (photo.thumb) {
      const { width, height } = photo.thumb;
      const side = Math.min(width, height); // centre crop, like the page's own thumbnails
      canvas.getContext("2d").drawImage(photo.thumb, (width - side) / 2, (height - side) / 2, side, side, 0, 0, 40, 40);
    }
    return canvas;
  }

  const flickrTag = (tag) => (/\s/.test(tag) ? `"${tag}"` : tag);

  // Why the floating panel is shown.
  const PANEL_WHY = {
    field: "Flickr's tag field was not found on this page. Copy the tags and paste them into Flickr, " +
      "or use “Pick the tag field” in Lablr's toolbar popup.",
    unknown: "Lablr cannot tell which photo Flickr's edit panel shows, so it types no tags into it: " +
      "they could land on the wrong photo. Copy each photo's tags here and paste them into Flickr.",
    select: "Lablr sees no selected photo. Select one in Flickr's grid to add its tags there, or copy them here.",
  };

  function renderPanel(why) {
    if (!panel.host.isConnected) document.body.append(panel.host);
    const rows = state.photos.map((p) => [p.id, p.status, clearing(p), p.message]);
    const signature = JSON.stringify([rows, why, panelMinimised, state.server.down, threshold()]);
    setView(panel, signature, () => {
      const box = el("aside", { class: `panel${panelMinimised ? " minimised" : ""}`, role: "complementary", "aria-label": "Tags suggested by Lablr" });
      box.append(
        el("header", {}, el("span", {}, "Lablr: suggested tags"),
          el("button", { class: "link", type: "button", on: { click: () => { panelMinimised = !panelMinimised; scheduleRender(); } } }, panelMinimised ? "Show" : "Hide")),
        el("p", { class: "hint", role: "note" }, PANEL_WHY[why])
      );
      for (const photo of state.photos) {
        const shown = clearing(photo);
        const section = el("section", { "data-photo": photo.name },
          el("div", { class: "photo" }, thumbnail(photo), el("span", { class: "name", title: photo.name }, photo.name)));
        if (photo.status === "done" && shown.length) {
          const chips = el("div", { class: "chips" });
          for (const s of shown) {
            const chip = el("button", { class: "chip", type: "button", title: `${chipTitle(s)} (click to copy)`, "data-tag": s.tag });
            chip.textContent = s.tag;
            chip.addEventListener("click", () => copyText(s.tag, chip));
            chips.append(chip);
          }
          const copyAll = el("button", { class: "action copy", type: "button" }, "Copy tags");
          copyAll.addEventListener("click", () => copyText(shown.map((s) => flickrTag(s.tag)).join(" "), copyAll));
          section.append(chips, copyAll);
        } else if (photo.status === "idle") {
          section.append(el("button", { class: "action", type: "button", on: { click: () => enqueue(photo) } }, "Suggest tags"));
        } else {
          const done = photo.status === "done" && (photo.suggestions.length ? belowThreshold() : "No tags to suggest.");
          section.append(el("span", { class: "muted", role: "status" }, done || statusText(photo)));
        }
        box.append(section);
      }
      return box;
    });
  }

  // The small notice shown while the server cannot be reached.
  const notice = makeHost("notice");

  function renderNotice() {
    const show = state.server.down && !state.server.dismissed;
    if (!show) {
      if (notice.host.isConnected) notice.host.remove();
      return;
    }
    if (!notice.host.isConnected) document.body.append(notice.host);
    const { kind, address } = state.server;
    setView(notice, JSON.stringify([kind, address, state.server.message]), () => {
      const close = el("button", { class: "close", type: "button", "aria-label": "Hide", on: { click: () => { state.server.dismissed = true; scheduleRender(); } } }, "×");
      let body;
      if (kind === "permission" || kind === "config") {
        body = [
          el("strong", {}, "Lablr needs your permission. "),
          kind === "config" ? state.server.message : `Open Lablr's options to let it reach ${address}.`,
          el("div", { class: "row" }, el("button", { class: "link", type: "button", on: { click: () => ask({ type: "openOptions" }) } }, "Open options")),
        ];
      } else {
        body = [
          el("strong", {}, "Lablr's server is not running. "),
          `Start it with `, el("code", {}, "lablr serve"), ` — suggestions appear as soon as it answers at ${address}.`,
          el("div", { class: "row" }, el("button", { class: "link", type: "button", on: { click: retryNow } }, "Retry now")),
        ];
      }
      return el("div", { class: "notice", role: "status", "aria-live": "polite" }, close, ...body);
    });
  }

  /** Remembers the tags the page shows for the photo it is editing, for when that photo is published. */
  function rememberPageTags(target, parts) {
    if (!target.photo || !parts) return;
    const shown = currentTags(parts);
    if (shown) target.photo.pageTags = shown;
  }

  function render() {
    if (!document.body) return;
    renderNotice();
    renderPicking();
    if (!state.photos.length) {
      inline.host.remove();
      panel.host.remove();
      return;
    }
    const parts = tagFieldParts();
    const target = editTarget();
    rememberPageTags(target, parts);
    if (parts) renderInline(target, parts);
    else inline.host.remove();
    const why = !parts ? "field" : ["unknown", "select"].includes(target.why) ? target.why : null;
    if (why) renderPanel(why);
    else panel.host.remove();
  }

  let renderPending = false;
  function scheduleRender() {
    if (renderPending) return;
    renderPending = true;
    setTimeout(() => {
      renderPending = false;
      try {
        render();
      } catch (_) {
        /* the page changed under us mid-render; the next mutation renders again */
      }
    }, 30);
  }

  // ---------------------------------------------------------------- "Pick the tag field"

  // Ids and classes that a page makes anew on every load (YUI's yui_3_…, long numbers or hex);
  // YUI's own class names (yui3-…) are stable.
  const GENERATED = /yui_|\d{4,}|[0-9a-f]{10,}/i;
  const picking = makeHost("picking");
  let pickMessage = "";

  const unique = (selector, element) => {
    const found = tryAll(selector, document, (s, r) => r.querySelectorAll(s));
    return Boolean(found && found.length === 1 && found[0] === element);
  };

  /** A selector for the element that does not rely on generated ids: stable attributes, else its place in the page. */
  function stableSelector(element) {
    const tag = element.tagName.toLowerCase();
    const stableId = (e) => e.id && !GENERATED.test(e.id);
    const tries = [];
    if (stableId(element)) tries.push(`#${CSS.escape(element.id)}`);
    for (const attribute of ["name", "placeholder", "aria-label", "data-name", "data-field"]) {
      const value = element.getAttribute(attribute);
      if (value) tries.push(`${tag}[${attribute}="${value.replace(/["\\]/g, "\\$&")}"]`);
    }
    const classes = Array.from(element.classList).filter((c) => !GENERATED.test(c));
    if (classes.length) tries.push(`${tag}.${classes.map((c) => CSS.escape(c)).join(".")}`);
    const found = tries.find((selector) => unique(selector, element));
    if (found) return found;
    const steps = [];
    for (let node = element; node && node !== document.documentElement; node = node.parentElement) {
      if (node !== element && stableId(node)) {
        steps.unshift(`#${CSS.escape(node.id)}`);
        break;
      }
      const name = node.tagName.toLowerCase();
      const index = Array.from(node.parentElement ? node.parentElement.children : []).filter((c) => c.tagName === node.tagName).indexOf(node) + 1;
      steps.unshift(node === document.body ? "body" : `${name}:nth-of-type(${index})`);
    }
    return steps.join(" > ");
  }

  function stopPicking() {
    state.picking = false;
    pickMessage = "";
    document.removeEventListener("click", onPickClick, true);
    document.removeEventListener("keydown", onPickKey, true);
    scheduleRender();
  }

  function onPickKey(event) {
    if (event.isTrusted && event.key === "Escape") stopPicking();
  }

  function onPickClick(event) {
    if (!event.isTrusted) return;
    const target = event.composedPath()[0];
    if (!(target instanceof Element) || picking.host.contains(target)) return;
    event.preventDefault();
    event.stopPropagation();
    if (target.tagName !== "INPUT" && target.tagName !== "TEXTAREA") {
      pickMessage = "That is not a text field. Click the field where you type tags (Esc to stop).";
      scheduleRender();
      return;
    }
    const selector = stableSelector(target);
    state.picked = selector;
    api.storage.local.set({ [LABLR_PICKED_FIELD]: selector });
    stopPicking();
  }

  function startPicking() {
    if (state.picking) return;
    state.picking = true;
    pickMessage = "";
    document.addEventListener("click", onPickClick, true);
    document.addEventListener("keydown", onPickKey, true);
    scheduleRender();
  }

  function renderPicking() {
    if (!state.picking) {
      picking.host.remove();
      return;
    }
    if (!picking.host.isConnected) document.body.append(picking.host);
    setView(picking, pickMessage, () =>
      el("div", { class: "notice top", role: "status", "aria-live": "polite" },
        el("strong", {}, "Lablr: click Flickr's tag field once. "),
        pickMessage || "Lablr will use it from now on, on every visit (Esc to stop).",
        el("div", { class: "row" }, el("button", { class: "link", type: "button", on: { click: stopPicking } }, "Cancel"))));
  }

  // ---------------------------------------------------------------- "Report a problem"

  const OUTLINE_UP = 3;
  const OUTLINE_DEPTH = 5;
  const OUTLINE_LINES = 80;

  /** Tag names, ids, classes and placeholders around an element: no text, no values. */
  function outline(focus) {
    let root = focus;
    for (let i = 0; i < OUTLINE_UP && root.parentElement && root.parentElement !== document.body; i++) root = root.parentElement;
    const lines = [];
    const describe = (e) => {
      let text = e.tagName.toLowerCase();
      if (e.id) text += `#${e.id}`;
      for (const c of e.classList) text += `.${c}`;
      const placeholder = e.getAttribute("placeholder");
      if (placeholder) text += ` [placeholder="${placeholder}"]`;
      return e === focus ? `${text}   <== this field` : text;
    };
    const walk = (e, depth) => {
      if (lines.length >= OUTLINE_LINES || depth > OUTLINE_DEPTH) return;
      lines.push(`${"  ".repeat(depth)}${describe(e)}`);
      for (const child of e.children) walk(child, depth + 1);
    };
    walk(root, 0);
    return lines;
  }

  function diagnose() {
    const groups = {};
    for (const [name, selectors] of Object.entries(S)) {
      if (!Array.isArray(selectors) || /Attributes?$/.test(name)) continue;
      groups[name] = {};
      for (const selector of selectors) {
        const found = tryAll(selector, document, (s, r) => r.querySelectorAll(s));
        if (!found || found.length) groups[name][selector] = found ? found.length : "invalid";
      }
    }
    const parts = tagFieldParts();
    const found = grid();
    const target = editTarget();
    const active = document.activeElement;
    const focus = active && (active.tagName === "INPUT" || active.tagName === "TEXTAREA") ? active : parts && parts.input;
    return {
      ok: true,
      page: location.pathname,
      realUploader: Boolean(first(S.realUploader)),
      matched: groups,
      tagField: parts ? { how: parts.how, selector: stableSelector(parts.input) } : null,
      pickedSelector: state.picked || null,
      pickedFound: Boolean(pickedInput()),
      grid: { how: found.how, cards: found.cards.length, paired: found.pairs.size },
      photos: state.photos.length,
      editing: target.photo ? "known" : target.why,
      outline: focus ? outline(focus) : ["(no text field has the focus, and no tag field was found)"],
    };
  }

  // ---------------------------------------------------------------- publishing teaches Lablr

  const PUBLISH_SETTLE_MS = 600;

  /** Each photo on the page with its final tags goes to the server's feedback endpoint, through the worker. */
  function teach() {
    if (!state.settings.teach) return;
    const parts = tagFieldParts();
    rememberPageTags(editTarget(), parts);
    const found = grid();
    const onPage = found.pairs.size ? new Set(found.pairs.values()) : null;
    for (const photo of state.photos) {
      if (photo.taught || !photo.dataUrl || (onPage && !onPage.has(photo.id))) continue;
      const tags = (photo.pageTags || [...photo.added]).filter((t) => t && !t.includes(","));
      if (!tags.length) continue;
      photo.taught = true;
      const suggested = photo.suggestions.map((s) => s.tag).filter((t) => !t.includes(","));
      ask({ type: "feedback", image: photo.dataUrl, filename: `${photo.stem}.jpg`, tags, suggested }); // not awaited
    }
  }

  // A chip clicked just before publishing counts: its tag is still being checked.
  const teachAfterAdding = () => adding.then(teach, teach);

  let publishing = null; // the timer that teaches unless a confirmation dialog shows up first

  function onPublishClick(event) {
    if (!event.isTrusted || !state.photos.length) return;
    const target = event.composedPath()[0];
    if (!(target instanceof Element)) return;
    if (closestAny(target, S.publishConfirm)) teachAfterAdding();
    else if (closestAny(target, S.publishStart) && !first(S.publishConfirm) && !publishing) {
      // A confirmation dialog may follow: then its button publishes, and a cancel teaches nothing.
      publishing = setTimeout(() => {
        publishing = null;
        if (!first(S.publishConfirm)) teachAfterAdding();
      }, PUBLISH_SETTLE_MS);
    }
  }

  // A page that goes away right after publishing still teaches.
  window.addEventListener("pagehide", () => {
    if (!publishing) return;
    clearTimeout(publishing);
    publishing = null;
    teach();
  });

  // ---------------------------------------------------------------- wiring

  // Capture phase on the document: we see the files before the page's own handlers reset them.
  // Only the user's own actions count: a page script's made-up events are ignored.
  document.addEventListener(
    "change",
    (event) => {
      const target = event.target;
      if (!event.isTrusted) return;
      if (target && target.tagName === "INPUT" && target.type === "file" && target.files && target.files.length) {
        addFiles(target.files);
      }
    },
    true
  );
  for (const [type, transfer] of [["drop", "dataTransfer"], ["paste", "clipboardData"]]) {
    window.addEventListener(
      type,
      (event) => {
        const files = event.isTrusted && event[transfer] && event[transfer].files;
        if (files && files.length) addFiles(files);
      },
      true
    );
  }
  document.addEventListener("click", onPublishClick, true);

  api.runtime.onMessage.addListener((message, sender, sendResponse) => {
    if (!message || sender.id !== api.runtime.id) return false;
    if (message.type === "pickTagField") {
      startPicking();
      sendResponse({ ok: true });
    } else if (message.type === "diagnose") {
      try {
        sendResponse(diagnose());
      } catch (err) {
        sendResponse({ ok: false, message: String((err && err.message) || err) });
      }
    }
    return false;
  });

  const ours = new Set([inline.host, panel.host, notice.host, picking.host]);
  // Runs from document_start: the listeners above are in place before the page's own scripts.
  new MutationObserver((mutations) => {
    if (!state.photos.length && !state.server.down) return;
    if (mutations.every((m) => ours.has(m.target) || [...m.addedNodes, ...m.removedNodes].every((n) => ours.has(n)))) return;
    scheduleRender();
  }).observe(document.documentElement, { childList: true, subtree: true, attributes: true, attributeFilter: ["class", "aria-selected", "hidden", "data-tag"] });

  function applyStored(stored) {
    state.settings = lablrNormalizeSettings(stored);
    state.server.address = state.settings.server;
    state.picked = stored[LABLR_PICKED_FIELD] || null;
  }

  api.storage.onChanged.addListener((changes, area) => {
    if (area !== "local") return;
    const before = state.settings;
    api.storage.local.get(null).then((stored) => {
      applyStored(stored);
      const askAgain = before.server !== state.settings.server || before.count !== state.settings.count;
      for (const photo of state.photos) {
        if (!photo.dataUrl) continue;
        if ((askAgain && photo.requested) || (state.settings.autoSuggest && photo.status === "idle")) enqueue(photo);
      }
      if (state.server.down) retryNow();
      scheduleRender();
    });
  });

  document.addEventListener("DOMContentLoaded", scheduleRender);

  api.storage.local.get(null).then((stored) => {
    applyStored(stored);
    if (state.settings.autoSuggest) checkServer(); // say at once if the server is not running
  });
})();
