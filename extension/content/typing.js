/*
 * Typing a tag into Flickr's tag widget the way a person would.
 *
 * Every key event goes to the tag field, and only while it has the focus: a key that lands anywhere
 * else on Flickr's page is a page shortcut ("?" opens its help).
 */
"use strict";

const STICK_WAIT_MS = 80;
const settle = () => new Promise((resolve) => setTimeout(() => requestAnimationFrame(() => resolve()), STICK_WAIT_MS));
const setValue = (input, text) => {
  const proto = input.tagName === "TEXTAREA" ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype;
  Object.getOwnPropertyDescriptor(proto, "value").set.call(input, text);
};
const focused = (input) => input.isConnected && input.getRootNode().activeElement === input;
/** A key event on the focused field; false, and nothing sent, when the field has not the focus. */
const key = (input, type, name, code, keyCode) =>
  focused(input) &&
  input.dispatchEvent(new KeyboardEvent(type, { key: name, code, keyCode, which: keyCode, bubbles: true, cancelable: true, composed: true }));
const inputEvent = (input, data) =>
  input.dispatchEvent(new InputEvent("input", { bubbles: true, composed: true, inputType: "insertText", data }));

// The ways a tag widget takes a typed tag, tried in turn until one sticks. `text` is the tag in
// Flickr's syntax (quoted when it has spaces); `spaces`: the field separates tags by spaces only.
const TYPE_WAYS = [
  function enter(input, text) {
    if (!focused(input)) return;
    setValue(input, text);
    inputEvent(input, text);
    for (const type of ["keydown", "keypress", "keyup"]) key(input, type, "Enter", "Enter", 13);
  },
  function comma(input, text, spaces) {
    if (spaces || input.value.trim() !== text) return; // a comma would be part of the tag; or taken meanwhile
    if (key(input, "keydown", ",", "Comma", 188)) {
      setValue(input, `${text},`);
      inputEvent(input, ",");
    }
    key(input, "keyup", ",", "Comma", 188);
  },
  function blur(input, text) {
    if (input.value.trim() === `${text},`) {
      setValue(input, text); // the comma did nothing: take it back before leaving
      inputEvent(input, null);
    }
    if (!focused(input)) return;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    input.blur();
  },
];

/** Elements near the tag input whose whole text is the tag: a token, however the widget marks it up. */
function tokensNamed(input, tag) {
  let root = input;
  for (let i = 0; i < S.tokenSearchLevels && root.parentElement; i++) root = root.parentElement;
  const want = tagKey(tag);
  let count = 0;
  for (const element of root.getElementsByTagName("*")) {
    if (element.firstElementChild || element === input) continue;
    if (tagKey(String(element.textContent).replace(/[×✕]/g, "")) === want) count++;
  }
  return count;
}

/** The field on screen while it still edits `editing`; null once the user selected other photos. */
function partsFor(editing) {
  const parts = tagFieldParts();
  return parts && sameTarget(typingTarget(editTarget(), parts), editing) ? parts : null;
}

/**
 * Types one tag for `editing` into the field on screen; resolves true when the page took it (a new
 * token, or the input cleared), false when it did not, null when the user selected other photos
 * meanwhile: then Lablr types no further and takes back what it typed, which the field would give them.
 */
async function typeTag(tag, editing) {
  let parts = partsFor(editing);
  if (!parts) return null;
  const text = flickrTag(tag);
  const before = { value: parts.input.value, tokens: tokensNamed(parts.input, tag) };
  parts.input.focus({ preventScroll: true });
  if (!focused(parts.input)) return false; // a key sent now would go to the page
  let took = false;
  for (const way of TYPE_WAYS) {
    way(parts.input, text, parts.spaces);
    await settle();
    // A token beside the field it was typed into, which may be gone now that another photo is selected.
    if (tokensNamed(parts.input, tag) > before.tokens) return true;
    const now = partsFor(editing);
    if (!now) {
      took = null;
      break;
    }
    const shown = currentTags(now);
    if ((shown && shown.some((t) => tagKey(t) === tagKey(tag))) || tokensNamed(now.input, tag) > before.tokens) return true;
    if (now.input !== parts.input) return !now.input.value.trim(); // re-rendered: an empty new field took it
    if (!now.input.value.trim()) return true; // the field was cleared: taken
    parts = now;
  }
  const last = tagFieldParts();
  if (last && norm(last.input.value).replace(/,$/, "") === norm(text)) {
    setValue(last.input, took === null ? "" : before.value); // leave no half-typed tag behind
    inputEvent(last.input, null);
  }
  return took;
}

/** What happened to a tag on each photo it was typed for (took: null when that is not known). */
function noteTyped(editing, tag, took) {
  if (took === null) return;
  for (const photo of editing.photos) {
    if (took) {
      photo.added.add(tag);
      photo.refused.delete(tag);
      if (editing.batch && photo.pageTags) photo.pageTags.push(tag);
    } else {
      photo.refused.add(tag);
    }
  }
}

let adding = Promise.resolve();
/** Adds tags to what `editing` ({photos, batch}, from typingTarget) names, while the page still shows it. */
function addTags(editing, tags) {
  // One at a time, in order, even when clicks come faster than the widget.
  adding = adding.then(async () => {
    for (const tag of tags) {
      const parts = tagFieldParts();
      if (!sameTarget(typingTarget(editTarget(), parts), editing)) break; // the user selected other photos meanwhile
      if (tagsOfAll(editing, parts).some((t) => tagKey(t) === tagKey(tag))) continue;
      if (tagRoom(editing, parts) <= 0) {
        for (const photo of editing.photos) photo.full = true;
        scheduleRender();
        break;
      }
      const took = await typeTag(tag, editing);
      noteTyped(editing, tag, took);
      scheduleRender();
      if (took === null) break; // the user selected other photos meanwhile
    }
  });
  return adding;
}
