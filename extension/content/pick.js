/* "Pick the tag field" (the user points at it once) and "Report a problem" (a diagnostic without content). */
"use strict";

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
    tagFieldsOffScreen: everyMatch(S.tagInput).filter((e) => !onScreen(e)).length, // e.g. Flickr's parked batch set
    pickedSelector: state.picked || null,
    pickedFound: Boolean(pickedInput()),
    grid: { how: found.how, cards: found.cards.length, paired: found.pairs.size },
    photos: photosOnPage().length, // not those removed from the page
    editing: target.photo ? "known" : target.why,
    outline: focus ? outline(focus) : ["(no text field has the focus, and no tag field was found)"],
  };
}
