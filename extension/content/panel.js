/* The floating panel, the notice about the server, and the render loop that draws them all. */
"use strict";

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
  const photos = photosOnPage();
  const rows = photos.map((p) => [p.id, p.status, clearing(p), p.message]);
  if (!panelMinimised) for (const photo of photos) if (photo.status === "done") noteShown([photo], clearing(photo));
  const signature = JSON.stringify([rows, why, panelMinimised, state.server.down, threshold()]);
  setView(panel, signature, () => {
    const box = el("aside", { class: `panel${panelMinimised ? " minimised" : ""}`, role: "complementary", "aria-label": "Tags suggested by Lablr" });
    box.append(
      el("header", {}, el("span", {}, "Lablr: suggested tags"),
        el("button", { class: "link", type: "button", on: { click: () => { panelMinimised = !panelMinimised; scheduleRender(); } } }, panelMinimised ? "Show" : "Hide")),
      el("p", { class: "hint", role: "note" }, PANEL_WHY[why])
    );
    for (const photo of photos) {
      const shown = clearing(photo);
      const section = el("section", { "data-photo": photo.name },
        el("div", { class: "photo" }, thumbnail(photo), el("span", { class: "name", title: photo.name }, photo.name)));
      if (photo.status === "done" && shown.length) {
        const chips = el("div", { class: "chips" });
        for (const s of shown) {
          const chip = el("button", { class: "chip", type: "button", title: `${chipTitle(s)} (click to copy)`, "data-tag": s.tag });
          chip.textContent = s.tag;
          chip.addEventListener("click", () => copyText(flickrTag(s.tag), chip));
          chips.append(chip);
        }
        const copyAll = el("button", { class: "action copy", type: "button" }, "Copy tags");
        copyAll.addEventListener("click", () => copyText(flickrTagString(shown.map((s) => s.tag)), copyAll));
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
  const editing = typingTarget(target, parts);
  if (!editing || editing.batch) return;
  const shown = currentTags(parts);
  if (shown) editing.photos[0].pageTags = shown;
}

function render() {
  if (!document.body) return;
  renderNotice();
  renderPicking();
  const target = state.photos.length ? editTarget() : null; // pairs the cards: then it is known which photos were removed
  if (!target || !photosOnPage().length) {
    inline.host.remove();
    panel.host.remove();
    return;
  }
  const parts = tagFieldParts();
  rememberPageTags(target, parts);
  if (parts) renderInline(target, parts);
  else inline.host.remove();
  const mute = target.photo && !typingTarget(target, parts); // a photo is selected, but the field edits others too
  const why = !parts ? "field" : ["unknown", "select"].includes(target.why) ? target.why : mute ? "unknown" : null;
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
