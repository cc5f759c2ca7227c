/* Drawing Lablr's parts in shadow roots: the style, small builders, and the chips beside the tag field. */
"use strict";

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
/** Suggestions without a tag twice (by tagKey), the first of each kept. */
const distinctSuggestions = (suggestions) => {
  const kept = distinctTags(suggestions.map((s) => s.tag));
  return suggestions.filter((s) => kept.includes(s.tag) && kept.splice(kept.indexOf(s.tag), 1));
};
/** Suggestions for several photos at once: each tag's mean score over them (0 where it was not suggested), best first. */
function groupSuggestions(photos) {
  const merged = new Map();
  for (const photo of photos) {
    for (const s of distinctSuggestions(photo.suggestions)) {
      const entry = merged.get(tagKey(s.tag)) || { tag: s.tag, score: 0, distance: NaN };
      entry.score += (Number.isFinite(s.score) ? s.score : 0) / photos.length;
      merged.set(tagKey(s.tag), entry);
    }
  }
  return [...merged.values()].sort((a, b) => b.score - a.score);
}
const clearingAll = (suggestions) => distinctSuggestions(suggestions).filter((s) => !(s.score < threshold())).slice(0, state.settings.count);
const clearing = (photo) => clearingAll(photo.suggestions);
const unlessTaken = (suggestions, have) => {
  const taken = new Set(have.map(tagKey));
  return suggestions.filter((s) => !taken.has(tagKey(s.tag)));
};
/**
 * Remembers which suggestions the user saw: only those count as "suggested" when the photo is published.
 * A chip for several photos counts for each photo whose own suggestions cleared the threshold with it.
 */
const noteShown = (photos, suggestions) => {
  const keys = new Set(suggestions.map((s) => tagKey(s.tag)));
  for (const photo of photos) for (const s of clearing(photo)) if (keys.has(tagKey(s.tag))) photo.shown.add(s.tag);
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
  several: "Several photos are selected, and Lablr cannot tell which: select one to add its suggested tags.",
  unknown: "Lablr cannot tell which photo this panel shows, so it adds no tags here: see Lablr's panel.",
};

/** What the chips beside the field show for `editing` ({photos, batch}). */
function chipsModel(editing, parts) {
  const photos = editing.photos;
  const waiting = photos.find((p) => p.status !== "done");
  const cleared = clearingAll(editing.batch ? groupSuggestions(photos) : photos[0].suggestions);
  const several = photosOnPage().length > 1;
  return {
    ids: photos.map((p) => p.id),
    label: editing.batch ? `for the ${photos.length} selected photos:` : several ? `for ${photos[0].name}:` : null,
    idle: photos.filter((p) => p.status === "idle"),
    waiting: waiting && waiting.status !== "idle" ? statusText(waiting) : null,
    anySuggested: photos.some((p) => p.suggestions.length),
    cleared,
    shown: unlessTaken(cleared, tagsOfAll(editing, parts)),
    refused: distinctTags(photos.flatMap((p) => [...p.refused])),
    full: photos.some((p) => p.full) || tagRoom(editing, parts) <= 0,
  };
}

// Inline chips beside the tag field.
const inline = makeHost("chips");

function renderInline(target, parts) {
  const anchor = parts.field;
  if (inline.host.previousElementSibling !== anchor || !inline.host.isConnected) anchor.after(inline.host);
  const editing = typingTarget(target, parts);
  const model = editing && chipsModel(editing, parts);
  if (model && !model.waiting && !model.idle.length) noteShown(editing.photos, model.shown);
  const signature = JSON.stringify([target.why, model, state.settings.addTop, threshold(), state.server.down]);
  setView(inline, signature, () => {
    const bar = el("div", { class: "bar", role: "group", "aria-label": "Tags suggested by Lablr" }, el("span", { class: "label" }, "Lablr"));
    if (!model) {
      bar.append(el("span", { class: "muted", role: "status" }, NO_PHOTO[target.why] || NO_PHOTO.unknown));
      return bar;
    }
    if (model.label) bar.append(el("span", { class: "for" }, model.label));
    if (model.idle.length) {
      bar.append(el("button", { class: "action", type: "button", on: { click: () => model.idle.forEach(enqueue) } }, "Suggest tags"));
    } else if (model.waiting) {
      bar.append(el("span", { class: "muted", role: "status" }, model.waiting));
    } else if (!model.shown.length) {
      const message = !model.anySuggested ? "No tags to suggest." : !model.cleared.length ? belowThreshold() : "All suggested tags added.";
      bar.append(el("span", { class: "muted", role: "status" }, message));
    } else {
      appendChips(bar, editing, model);
    }
    if (model.full) {
      bar.append(el("span", { class: "warn", role: "alert" }, `Flickr takes at most ${S.maxTagsPerPhoto} tags on a photo: there is no room for more.`));
    }
    if (model.refused.length) {
      const refused = model.refused;
      bar.append(el("span", { class: "warn", role: "alert" },
        `Flickr's tag field did not take ${refused.map((t) => `“${t}”`).join(", ")}: type ${refused.length > 1 ? "them" : "it"} yourself.`));
    }
    return bar;
  });
}

/** One button per suggested tag (its text begins with the tag), then "Add top N". */
function appendChips(bar, editing, model) {
  for (const s of model.shown) {
    const failed = model.refused.includes(s.tag);
    const title = failed ? `Flickr did not take “${s.tag}”: type it into the tag field yourself.` : chipTitle(s);
    bar.append(el("button", { class: `chip${failed ? " failed" : ""}`, type: "button", title, "data-tag": s.tag,
      on: { click: () => addTags(editing, [s.tag]) } }, failed ? `${s.tag} — not taken` : s.tag));
  }
  const n = Math.min(state.settings.addTop, model.shown.length);
  if (n > 1) {
    bar.append(el("button", { class: "action", type: "button", on: { click: () => addTags(editing, model.shown.slice(0, n).map((s) => s.tag)) } }, `Add top ${n}`));
  }
}
