/* Typing a tag into Flickr's tag widget the way a person would. */
"use strict";

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
