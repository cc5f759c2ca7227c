/* Which photo Flickr's edit panel shows, and where its tag field is. */
"use strict";

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
