/*
 * Every Flickr selector Lablr uses, in one place.
 *
 * Flickr changes its upload page now and then. When it does, this is the only file to edit:
 * each entry is a list of CSS selectors tried in order, the first that matches wins.
 *
 * What is attested about the real uploader (flickr.com/photos/upload, "editr", a YUI 3 app):
 * the ids in `realUploader` and `publish*`, a grid called editr-grid with a `.selected-wrapper`,
 * a left edit panel whose tag part is Flickr's autocomplete widget. The exact markup of the tag
 * field and of the photo cards is NOT known, so they are found by the looser rules below
 * (attribute words and class fragments), and a user can point at the tag field once ("Pick the
 * tag field" in the popup). When no tag field is found, or Lablr cannot tell which photo the
 * edit panel shows, the content scripts list every photo in a floating panel instead of typing anywhere.
 */
"use strict";

// eslint-disable-next-line no-unused-vars
const LABLR_SELECTORS = Object.freeze({
  // Attested on the real uploader: any one of them means "this is Flickr's editr".
  realUploader: [
    "#choose-photos-and-videos",
    "#button-add-photos",
    "#action-publish",
    "#editr-publish-dialog",
    ".browse-button-choose-files",
  ],

  // One card per added photo in the grid: known markup first, then class fragments (guessed).
  photoCard: [
    ".uploadr-photo-card",
    "[data-uploadr-item]",
    ".photo-card",
    "li.upload-item",
  ],
  photoCardLoose: [
    "[class*='editr-grid'] li",
    "[class*='grid'] [class*='item']",
    "[class*='grid'] [class*='photo']",
    "[class*='grid'] [class*='card']",
    "[class*='grid'] [class*='tile']",
  ],
  // The card(s) currently selected: their details show in the editing panel.
  selectedCard: [
    ".uploadr-photo-card.is-selected",
    ".uploadr-photo-card[aria-selected='true']",
    "[data-uploadr-item][aria-selected='true']",
    ".photo-card.selected",
    "li.upload-item.selected",
  ],
  // A loose card is selected when it matches one of these, or holds a visible `selectedMarker`.
  selectedLoose: [
    ".selected-wrapper",
    "[aria-selected='true']",
    "[class*='selected']",
    "[class*='active']",
  ],
  selectedMarker: [".selected-wrapper"], // attested on the real grid; guessed to show on the chosen card
  // Inside a card: the element that names the photo (Flickr titles a new photo after its file).
  cardName: [
    "[data-uploadr-filename]",
    ".uploadr-photo-card-title input",
    ".uploadr-photo-card-title",
    ".photo-title",
    "[class*='title'] input",
    "[class*='title'] textarea",
    "[class*='title']",
    "input[type='text']",
    "img[alt]:not([alt=''])",
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
    "input[placeholder='Separate tags with a space']", // attested (2026 field report)
    ".uploadr-edit-tags input[type='text']",
    "[data-uploadr-field='tags'] input",
    "input[aria-label='Add tags']",
    "input[placeholder='Add tags']",
  ],
  // A tag input that takes tags separated by spaces (a multi-word tag in double quotes), as Flickr's
  // does (attested); on other inputs a comma ends a tag too.
  spaceSeparatedInput: ["[placeholder*='space' i]"],
  // The batch editor's panel, which edits several photos at once (guessed: the page mounts it, off
  // screen, beside the one-photo editor). A tag field inside it is used only for the selected photos.
  batchPanel: ["[class*='batch' i]", "[id*='batch' i]"],
  // The tag counter beside the field, "Tags 3/75" (attested text, unknown markup): found by its text
  // within a few levels above the field. Flickr takes at most 75 tags on a photo (attested).
  tagCounterText: "^\\s*Tags\\s+(\\d+)\\s*/\\s*(\\d+)\\s*$",
  tagCounterLevels: 4,
  maxTagsPerPhoto: 75,
  // The loose rule: a text input or textarea whose placeholder, aria-label or name contains this
  // word (any case), preferring one inside the edit panel, never one in the site's search.
  textEntry: ["input:not([type]), input[type='text'], textarea"],
  tagWord: "tag",
  tagWordAttributes: ["placeholder", "aria-label", "name"],
  editPanel: [
    ".uploadr-edit-panel",
    "[class*='edit-panel']",
    "[class*='edit'][class*='panel']",
    "[class*='sidebar']",
    "[role='complementary']",
  ],
  searchBox: [
    "[role='search']",
    "form[action*='search']",
    "[class*='search']",
    "[id*='search']",
    "input[type='search']",
  ],
  tagToken: [
    ".uploadr-edit-tags .uploadr-tag-token",
    "[data-uploadr-field='tags'] [data-tag]",
    ".tag-token",
  ],
  // On a token, where the tag's text is (an attribute is preferred over visible text).
  tagTokenAttribute: ["data-tag"],
  tagTokenText: [".uploadr-tag-text", ".tag-text"],
  // How far up from the tag input a new token is looked for, to tell that a typed tag was taken.
  tokenSearchLevels: 3,

  // Publishing. A click on `publishStart` publishes at once, unless one of `publishConfirm` is
  // on the page: then the click on it does (attested: #action-publish opens #editr-publish-dialog).
  publishStart: ["#action-publish", ".uploadr-upload-button"],
  publishConfirm: ["#confirm-publish"],
});
