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
    alive: true, // false once the extension was reloaded or removed under this page
    server: { down: false, kind: null, dismissed: false, address: LABLR_DEFAULTS.server },
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

  function first(selectors, root = document) {
    for (const selector of selectors) {
      try {
        const element = root.querySelector(selector);
        if (element) return element;
      } catch (_) {
        /* a selector this browser does not understand: try the next one */
      }
    }
    return null;
  }

  function all(selectors, root = document) {
    for (const selector of selectors) {
      try {
        const elements = root.querySelectorAll(selector);
        if (elements.length) return Array.from(elements);
      } catch (_) {
        /* next */
      }
    }
    return [];
  }

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

  /** Pairs the page's photo cards with our photos: remembered, then by name, then by position. */
  function pairCards() {
    const cards = all(S.photoCard);
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
      const name = norm(stemOf(cardName(card)));
      if (!name) continue;
      const photo = state.photos.find((p) => !used.has(p.id) && (norm(p.stem) === name || norm(p.name) === name));
      if (photo) {
        pairs.set(card, photo.id);
        used.add(photo.id);
      }
    }
    const restCards = cards.filter((c) => !pairs.has(c));
    const restPhotos = state.photos.filter((p) => !used.has(p.id));
    if (restCards.length && restCards.length === restPhotos.length) {
      restCards.forEach((card, i) => pairs.set(card, restPhotos[i].id));
    }
    for (const [card, id] of pairs) cardPhoto.set(card, id);
    return { cards, pairs };
  }

  /** The photo whose details the editing panel shows now, or null. */
  function currentPhoto() {
    if (!state.photos.length) return null;
    const { cards, pairs } = pairCards();
    if (!cards.length) return state.photos[state.photos.length - 1]; // no grid we know: the newest
    for (const card of all(S.selectedCard)) {
      const id = pairs.get(card);
      if (id) return state.photos.find((p) => p.id === id) || null;
    }
    return null;
  }

  function tagFieldParts() {
    const input = first(S.tagInput);
    if (!input) return null;
    const field = (input.closest && S.tagField.map((s) => input.closest(s)).find(Boolean)) || first(S.tagField) || input.parentElement;
    return { input, field };
  }

  /** Tags already on the photo being edited, as the tag widget shows them. */
  function currentTags(field) {
    const tokens = all(S.tagToken, field && field.isConnected ? field : document);
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

  // ---------------------------------------------------------------- typing a tag like a person

  function typeTag(input, tag) {
    input.focus();
    const setValue = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set;
    setValue.call(input, tag);
    input.dispatchEvent(new InputEvent("input", { bubbles: true, composed: true, inputType: "insertText", data: tag }));
    const enter = { key: "Enter", code: "Enter", keyCode: 13, which: 13, bubbles: true, cancelable: true, composed: true };
    input.dispatchEvent(new KeyboardEvent("keydown", enter));
    input.dispatchEvent(new KeyboardEvent("keypress", enter));
    input.dispatchEvent(new KeyboardEvent("keyup", enter));
    if (input.isConnected && input.value.trim() === tag) {
      // A widget that only takes tags on change/blur.
      input.dispatchEvent(new Event("change", { bubbles: true }));
    }
  }

  function addTags(tags) {
    for (const tag of tags) {
      const parts = tagFieldParts(); // the widget may re-render after each tag
      if (!parts) return;
      if (currentTags(parts.field).some((t) => norm(t) === norm(tag))) continue;
      typeTag(parts.input, tag);
    }
    scheduleRender();
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
    return parts && currentPhoto() === photo ? currentTags(parts.field) : [];
  }

  async function suggestFor(photo) {
    photo.status = "asking";
    photo.requested = true;
    scheduleRender();
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
    if (answer.ok) serverUp();
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
    .notice { position: fixed; right: 16px; bottom: 16px; z-index: 2147483646; max-width: 340px; background: #212124; color: #fff;
              border-radius: 6px; padding: 12px 14px; font-size: 13px; line-height: 18px; box-shadow: 0 4px 16px rgba(0,0,0,.3); }
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
  const visibleSuggestions = (photo, have) => {
    const taken = new Set(have.map(norm));
    return photo.suggestions.filter((s) => !taken.has(norm(s.tag))).slice(0, state.settings.count);
  };

  function statusText(photo) {
    if (photo.status === "shrinking" || photo.status === "asking") return "Lablr is finding tags…";
    if (photo.status === "waiting") return state.server.down ? "Waiting for the Lablr server…" : "Lablr is finding tags…";
    if (photo.status === "error") return photo.message;
    return "";
  }

  // Inline chips beside the tag field.
  const inline = makeHost("chips");

  function renderInline(photo, parts) {
    const anchor = parts.field;
    if (inline.host.previousElementSibling !== anchor || !inline.host.isConnected) anchor.after(inline.host);
    const have = currentTags(parts.field);
    const shown = photo ? visibleSuggestions(photo, have) : [];
    const several = state.photos.length > 1;
    const signature = JSON.stringify([photo && photo.id, photo && photo.status, shown, state.settings.addTop, several, state.server.down, photo && photo.message]);
    setView(inline, signature, () => {
      const bar = el("div", { class: "bar", role: "group", "aria-label": "Tags suggested by Lablr" }, el("span", { class: "label" }, "Lablr"));
      if (!photo) {
        bar.append(el("span", { class: "muted" }, "Select a photo to see its suggested tags."));
        return bar;
      }
      if (several) bar.append(el("span", { class: "for" }, `for ${photo.name}:`));
      if (photo.status === "idle") {
        bar.append(el("button", { class: "action", type: "button", on: { click: () => enqueue(photo) } }, "Suggest tags"));
      } else if (photo.status !== "done") {
        bar.append(el("span", { class: "muted", role: "status" }, statusText(photo)));
      } else if (!shown.length) {
        bar.append(el("span", { class: "muted" }, photo.suggestions.length ? "All suggested tags added." : "No tags to suggest."));
      } else {
        for (const s of shown) {
          bar.append(el("button", { class: "chip", type: "button", title: chipTitle(s), "data-tag": s.tag, on: { click: () => addTags([s.tag]) } }, s.tag));
        }
        const n = Math.min(state.settings.addTop, shown.length);
        if (n > 1) {
          bar.append(el("button", { class: "action", type: "button", on: { click: () => addTags(shown.slice(0, n).map((s) => s.tag)) } }, `Add top ${n}`));
        }
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

  function renderPanel() {
    if (!panel.host.isConnected) document.body.append(panel.host);
    const rows = state.photos.map((p) => [p.id, p.status, p.suggestions.slice(0, state.settings.count), p.message]);
    const signature = JSON.stringify([rows, panelMinimised, state.server.down]);
    setView(panel, signature, () => {
      const box = el("aside", { class: `panel${panelMinimised ? " minimised" : ""}`, role: "complementary", "aria-label": "Tags suggested by Lablr" });
      box.append(
        el("header", {}, el("span", {}, "Lablr: suggested tags"),
          el("button", { class: "link", type: "button", on: { click: () => { panelMinimised = !panelMinimised; scheduleRender(); } } }, panelMinimised ? "Show" : "Hide")),
        el("p", { class: "hint" }, "Flickr's tag field was not found on this page. Copy the tags and paste them into Flickr.")
      );
      for (const photo of state.photos) {
        const shown = photo.suggestions.slice(0, state.settings.count);
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
          section.append(el("span", { class: "muted", role: "status" }, photo.status === "done" ? "No tags to suggest." : statusText(photo)));
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

  function render() {
    if (!document.body) return;
    renderNotice();
    if (!state.photos.length) {
      inline.host.remove();
      panel.host.remove();
      return;
    }
    const parts = tagFieldParts();
    if (parts) {
      panel.host.remove();
      renderInline(currentPhoto(), parts);
    } else {
      inline.host.remove();
      renderPanel();
    }
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

  // ---------------------------------------------------------------- wiring

  // Capture phase on the document: we see the files before the page's own handlers reset them.
  document.addEventListener(
    "change",
    (event) => {
      const target = event.target;
      if (target && target.tagName === "INPUT" && target.type === "file" && target.files && target.files.length) {
        addFiles(target.files);
      }
    },
    true
  );
  window.addEventListener(
    "drop",
    (event) => {
      const files = event.dataTransfer && event.dataTransfer.files;
      if (files && files.length) addFiles(files);
    },
    true
  );

  const ours = new Set([inline.host, panel.host, notice.host]);
  // Runs from document_start: the listeners above are in place before the page's own scripts.
  new MutationObserver((mutations) => {
    if (!state.photos.length && !state.server.down) return;
    if (mutations.every((m) => ours.has(m.target) || [...m.addedNodes, ...m.removedNodes].every((n) => ours.has(n)))) return;
    scheduleRender();
  }).observe(document.documentElement, { childList: true, subtree: true, attributes: true, attributeFilter: ["class", "aria-selected", "hidden", "data-tag"] });

  api.storage.onChanged.addListener((changes, area) => {
    if (area !== "local") return;
    const before = state.settings;
    api.storage.local.get(null).then((stored) => {
      state.settings = lablrNormalizeSettings(stored);
      state.server.address = state.settings.server;
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
    state.settings = lablrNormalizeSettings(stored);
    state.server.address = state.settings.server;
    if (state.settings.autoSuggest) checkServer(); // say at once if the server is not running
  });
})();
