/* Photos the user adds, shrunk in the browser, and the server asked for their tags. */
"use strict";

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
      shown: new Set(), // suggestions the user saw as chips: what feedback calls "suggested"
      full: false, // Flickr's tag field had no room for another tag
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

// The settings an answer depends on: one asked for under others is asked again.
const askedUnder = () => JSON.stringify([state.settings.server, state.settings.count]);

async function suggestFor(photo) {
  photo.status = "asking";
  photo.requested = true;
  scheduleRender();
  if (!state.server.model) await checkServer(); // its threshold, before the first chips
  const settings = askedUnder();
  const answer = await ask({ type: "suggest", image: photo.dataUrl, filename: `${photo.stem}.jpg`, exclude: excludeFor(photo) });
  if (answer.ok) {
    photo.status = "done";
    photo.suggestions = answer.suggestions;
    photo.message = "";
    serverUp();
    if (askedUnder() !== settings) enqueue(photo); // the options changed while it was being asked
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
