/*
 * Every Flickr selector Lablr uses, in one place.
 *
 * Flickr changes its upload page now and then. When it does, this is the only file to edit:
 * each entry is a list of CSS selectors tried in order, the first that matches wins. If the tag
 * field cannot be found at all, content.js falls back to a floating panel, so the user still
 * gets suggestions (with copy buttons) while this file waits for an update.
 */
"use strict";

// eslint-disable-next-line no-unused-vars
const LABLR_SELECTORS = Object.freeze({
  // Where photos come in: the "Choose photos and videos" file input and the page-wide drop zone.
  // (content.js listens to change/drop on the whole document, so these are only hints.)
  fileInput: ['input[type="file"]'],

  // One card per added photo in the grid.
  photoCard: [
    ".uploadr-photo-card",
    "[data-uploadr-item]",
    ".photo-card",
    "li.upload-item",
  ],
  // The card(s) currently selected: their details show in the editing panel.
  selectedCard: [
    ".uploadr-photo-card.is-selected",
    ".uploadr-photo-card[aria-selected='true']",
    "[data-uploadr-item][aria-selected='true']",
    ".photo-card.selected",
    "li.upload-item.selected",
  ],
  // Inside a card: the element that names the photo (Flickr titles a new photo after its file).
  cardName: [
    "[data-uploadr-filename]",
    ".uploadr-photo-card-title input",
    ".uploadr-photo-card-title",
    ".photo-title",
    "img[alt]",
  ],
  // The attribute on cardName that holds the name, when it is not a value or text.
  cardNameAttribute: ["data-uploadr-filename", "alt"],

  // The editing panel's tag widget: its wrapper, the text input a person types into, and the
  // tokens for tags already added.
  tagField: [
    ".uploadr-edit-tags",
    "[data-uploadr-field='tags']",
    ".tags-field",
  ],
  tagInput: [
    ".uploadr-edit-tags input[type='text']",
    "[data-uploadr-field='tags'] input",
    "input[aria-label='Add tags']",
    "input[placeholder='Add tags']",
  ],
  tagToken: [
    ".uploadr-edit-tags .uploadr-tag-token",
    "[data-uploadr-field='tags'] [data-tag]",
    ".tag-token",
  ],
  // On a token, where the tag's text is (an attribute is preferred over visible text).
  tagTokenAttribute: ["data-tag"],
  tagTokenText: [".uploadr-tag-text", ".tag-text"],
});
