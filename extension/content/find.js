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

const titleOf = (card) => norm(stemOf(cardName(card)));

/**
 * The photo a card names by its title (filled in from the file name), if exactly one does. Two files
 * of one name: no guessing, unless one of them was removed from the page (its card is gone while
 * others stay) and only this card bears the name, as when a removed photo is chosen again.
 */
function photoNamedBy(card, used, cards) {
  const name = titleOf(card);
  if (!name) return null;
  const named = state.photos.filter((p) => !used.has(p.id) && (norm(p.stem) === name || norm(p.name) === name));
  if (named.length === 1) return named[0];
  const onPage = named.filter((p) => !p.card || p.card.isConnected);
  const regridded = !cards.some((c) => cardPhoto.has(c)); // every card new: a removed one cannot be told
  return onPage.length === 1 && !regridded && cards.filter((c) => titleOf(c) === name).length === 1 ? onPage[0] : null;
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
    const photo = photoNamedBy(card, used, cards);
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

let unpairedCards = 0; // cards of the grid last paired that no photo of ours could be paired with

/**
 * The photos still on the page: all but those whose card is gone (the user removed them). A photo
 * whose card Lablr never paired counts as on the page, and so does every one while a card is left
 * unpaired: the page may have drawn its grid anew, and that card may be the photo's (two files of one
 * name cannot be told apart). Fresh after editTarget() has paired the cards.
 */
const photosOnPage = () => state.photos.filter((p) => !p.card || p.card.isConnected || unpairedCards > 0);

function commitPairs(found) {
  unpairedCards = found.cards.length - found.pairs.size;
  for (const [card, id] of found.pairs) {
    cardPhoto.set(card, id);
    const photo = state.photos.find((p) => p.id === id);
    if (photo) photo.card = card; // its card: once gone from the page, the photo was removed
  }
}

function isSelected(card, how) {
  if (how === "built-in") return all(S.selectedCard).includes(card);
  if (matchesAny(card, S.selectedLoose)) return true;
  const marker = first(S.selectedMarker, card);
  return Boolean(marker && visible(marker));
}

/**
 * Which photo the edit panel shows: {photo} when Lablr can tell; {photo: null, group, why: "several"} when
 * several photos are selected (group: those photos, when each is known); else {photo: null, why}.
 * why: "select" (no card selected), "several" (more than one selected), "unknown" (cannot tell).
 */
function editTarget() {
  const photos = state.photos;
  if (!photos.length) return { photo: null, why: "none" };
  const found = grid();
  commitPairs(found);
  const onPage = photosOnPage();
  if (onPage.length === 1 && found.cards.length <= 1) return { photo: onPage[0] }; // one photo: no other to mix up
  const selected = found.cards.filter((card) => isSelected(card, found.how));
  const byId = (id) => photos.find((p) => p.id === id) || null;
  if (selected.length > 1) {
    const group = selected.map((card) => byId(found.pairs.get(card)));
    return { photo: null, why: "several", group: group.every(Boolean) ? group : null };
  }
  if (selected.length === 1) {
    const photo = byId(found.pairs.get(selected[0]));
    return photo ? { photo } : { photo: null, why: "unknown" };
  }
  if (found.pairs.size) return { photo: null, why: "select" };
  return { photo: null, why: "unknown" };
}

/**
 * What a click on a chip edits: {photos, batch} for the photo the visible panel shows, or for the
 * selected photos when the visible tag field is the batch editor's; null when Lablr cannot be sure.
 */
function typingTarget(target, parts) {
  if (!parts) return null;
  const inBatch = Boolean(closestAny(parts.input, S.batchPanel));
  if (target.photo && !(inBatch && photosOnPage().length > 1)) return { photos: [target.photo], batch: false };
  if (target.group) return { photos: target.group, batch: true };
  return null;
}

const sameTarget = (a, b) => Boolean(a && b && a.batch === b.batch && a.photos.length === b.photos.length &&
  a.photos.every((p, i) => p === b.photos[i]));

/** A text input or textarea on screen that names tags, in the edit panel if there is one; never the site's search. */
function looseTagInput() {
  const word = S.tagWord.toLowerCase();
  const names = (input) => S.tagWordAttributes.some((a) => norm(input.getAttribute(a)).includes(word));
  const inPanel = (input) => Boolean(closestAny(input, S.editPanel));
  const candidates = all(S.textEntry).filter(
    (input) => names(input) && !input.disabled && !input.readOnly && onScreen(input) && (inPanel(input) || !closestAny(input, S.searchBox))
  );
  candidates.sort((a, b) => Number(inPanel(b)) - Number(inPanel(a)));
  return candidates[0] || null;
}

function pickedInput() {
  if (!state.picked) return null;
  const matches = everyMatch([state.picked]).filter((e) => e.tagName === "INPUT" || e.tagName === "TEXTAREA");
  return matches.find(onScreen) || null;
}

/**
 * Where tags are typed: {input, field, how} with how "picked", "built-in" or "loose"; or null.
 * Only a field on screen counts: never the off-screen twin that edits every photo at once.
 */
function tagFieldParts() {
  let how = "picked";
  let input = pickedInput();
  if (!input) [how, input] = ["built-in", everyMatch(S.tagInput).find((e) => onScreen(e) && !e.disabled && !e.readOnly)];
  if (!input) [how, input] = ["loose", looseTagInput()];
  if (!input) return null;
  const field = closestAny(input, S.tagField) || input.parentElement;
  return { input, field, how, spaces: matchesAny(input, S.spaceSeparatedInput) };
}

/** The page's own tag counter near the field ("Tags 3/75"): {count, most}, or null where there is none. */
function tagCounter(parts) {
  const pattern = new RegExp(S.tagCounterText, "i");
  let root = parts.field || parts.input;
  for (let i = 0; i < S.tagCounterLevels && root.parentElement; i++) {
    root = root.parentElement;
    for (const element of root.getElementsByTagName("*")) {
      const match = pattern.exec(element.textContent); // the whole text: "Tags 3/75", nothing around it
      if (!match || !onScreen(element)) continue;
      return { count: Number(match[1]), most: Number(match[2]) };
    }
  }
  return null;
}

/** How many more tags the photos may take: the counter's word where there is one, else Flickr's maximum. */
function tagRoom(editing, parts) {
  const counter = tagCounter(parts);
  if (counter) return counter.most - counter.count;
  const have = Math.max(0, ...editing.photos.map((p) => tagsOf(p, editing.batch ? null : parts).length));
  return S.maxTagsPerPhoto - have;
}

/** Tags already on the photo being edited, as the tag widget shows them; null when its tokens cannot be read. */
function currentTags(parts) {
  const tokens = all(S.tagToken, parts.field && parts.field.isConnected ? parts.field : document);
  // No token in a widget whose markup Lablr knows means no tags; elsewhere it means Lablr cannot read them.
  if (!tokens.length && !(parts.how === "built-in" && closestAny(parts.input, S.tagField))) return null;
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

/** The tags every photo of a batch has, as far as Lablr knows them. */
function tagsOfAll(editing, parts) {
  if (!editing.batch) return tagsOf(editing.photos[0], parts);
  const [head, ...rest] = editing.photos.map((p) => tagsOf(p, null));
  return head.filter((tag) => rest.every((tags) => tags.some((t) => tagKey(t) === tagKey(tag))));
}
