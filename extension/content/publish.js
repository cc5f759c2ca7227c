/* Publishing teaches Lablr; and the wiring: the page's events, the worker's messages, storage. */
"use strict";

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
    const tags = distinctTags((photo.pageTags || [...photo.added]).filter((t) => t && !t.includes(",")), S.maxTagsPerPhoto);
    if (!tags.length) continue;
    photo.taught = true;
    const suggested = [...photo.shown].filter((t) => !t.includes(","));
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
// The tags the page shows for the photo being edited are remembered before a click can select
// another photo: a render runs 30 ms after the page changes, which may be after the selection moved.
document.addEventListener(
  "pointerdown",
  (event) => {
    if (event.isTrusted && state.photos.length) rememberPageTags(editTarget(), tagFieldParts());
  },
  true
);

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

// What the page needs of storage.local: the settings and the picked field, never the kept photos.
const readStored = () => api.storage.local.get([...Object.keys(LABLR_DEFAULTS), LABLR_PICKED_FIELD]);

api.storage.onChanged.addListener((changes, area) => {
  if (area !== "local" || Object.keys(changes).every((key) => key === LABLR_KEPT.key)) return;
  const before = state.settings;
  readStored().then((stored) => {
    applyStored(stored);
    if (before.server !== state.settings.server) state.server.model = null; // another server: its own model and threshold
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

readStored().then((stored) => {
  applyStored(stored);
  if (state.settings.autoSuggest) checkServer(); // say at once if the server is not running
});
