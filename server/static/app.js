"use strict";
// The Lablr web page: a photo goes to /api/v1/suggest and /api/v1/plot on this same server;
// "Download with tags" sends it to /api/v1/embed with the ticked tags and saves what comes back.

const $ = (id) => document.getElementById(id);
let lastSuggestions = [];
let current = null; // the photo shown
let calibrated = false; // whether scores are probabilities (health says); only then does the threshold apply
const THRESHOLD_KEY = "lablr.minProbability";
const UNREACHABLE = "The Lablr server cannot be reached.";

async function apiError(response) {
  try {
    const body = await response.json();
    return body.error.message;
  } catch {
    return `The server answered ${response.status}.`;
  }
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

/** fetch, whose one way to fail (no answer at all) each browser words its own way: said plainly here. */
async function request(url, options) {
  try {
    return await fetch(url, options);
  } catch {
    throw new Error(UNREACHABLE);
  }
}

function threshold() {
  const value = Number.parseFloat($("threshold").value);
  return calibrated && Number.isFinite(value) ? Math.min(Math.max(value, 0), 1) : 0;
}

function renderTags(all) {
  lastSuggestions = all;
  const limit = threshold();
  const suggestions = all.filter((s) => s.score >= limit);
  const hidden = all.length - suggestions.length;
  const note = $("hidden-note");
  note.hidden = hidden === 0;
  note.textContent = suggestions.length === 0
    ? `No tag reaches a probability of ${limit} for this photo: lower "Hide tags below" to see all ${all.length}.`
    : `${hidden} more below a probability of ${limit} (set "Hide tags below" to 0 to show them).`;
  const list = $("tags");
  list.replaceChildren();
  const top = Math.max(...suggestions.map((s) => s.score), 1e-9);
  for (const s of suggestions) {
    const item = document.createElement("li");
    item.className = "tag";
    const pick = document.createElement("input");
    pick.type = "checkbox";
    pick.className = "pick";
    pick.checked = true;
    pick.value = s.tag;
    pick.setAttribute("aria-label", `Use ${s.tag}`);
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = s.tag;
    name.title = "Add to the tags you gave this photo";
    name.addEventListener("click", () => addMyTag(s.tag));
    const bar = document.createElement("span");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = `${Math.max(0, (100 * s.score) / top).toFixed(1)}%`;
    bar.append(fill);
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = s.score.toFixed(calibrated ? 2 : 3);
    const meaning = calibrated ? `probability that "${s.tag}" applies to this photo` : "score";
    score.title = s.distance === undefined ? meaning : `${meaning}; distance ${s.distance}`;
    item.append(pick, name, bar, score);
    list.append(item);
  }
}

async function handle(file) {
  if (!file) return;
  if (file !== current) $("my-tags").value = "";
  current = file;
  showError("");
  const preview = $("preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  $("drop-text").textContent = file.name;
  $("status").textContent = "Looking at your photo…";
  const k = $("k").value;
  const form = () => {
    const data = new FormData();
    data.append("image", file, file.name);
    return data;
  };
  try {
    const [tags, plot] = await Promise.all([
      request(`/api/v1/suggest?k=${k}`, { method: "POST", body: form() }),
      request(`/api/v1/plot?k=${k}`, { method: "POST", body: form() }),
    ]);
    if (!tags.ok) throw new Error(await apiError(tags));
    const answer = await tags.json();
    renderTags(answer.results[0].suggestions);
    if (plot.ok) {
      const old = $("plot").src;
      $("plot").src = URL.createObjectURL(await plot.blob());
      if (old) URL.revokeObjectURL(old);
    }
    $("results").hidden = false;
    $("status").textContent = `${chosenTags().length} tags in ${Math.round(answer.elapsed_ms)} ms.`;
  } catch (error) {
    $("results").hidden = true;
    $("status").textContent = "";
    showError(error.message);
  }
}

function myTags() {
  return $("my-tags").value.split(",").map((t) => t.trim()).filter((t) => t);
}

function addMyTag(tag) {
  const tags = myTags();
  if (!tags.includes(tag)) $("my-tags").value = [...tags, tag].join(", ");
}

function showLearned(personal) {
  const line = $("learned");
  if (!personal.enabled) {
    line.textContent = "Not learning from your photos (this server runs with --no-personal).";
    $("mine-form").hidden = true;
    return;
  }
  const photos = personal.photos === 1 ? "1 of your photos" : `${personal.photos} of your photos`;
  const added = personal.added_tags.length ? `tags added: ${personal.added_tags.join(", ")}` : "no new tags yet";
  const [waiting, full] = byRoom(personal.pending_tags, personal.held_back_tags);
  line.textContent = `Learned from ${photos}; ${added}.`
    + (waiting.length ? ` Waiting for more photos: ${waiting.map(([t, n]) => `${t} (${n} of ${personal.min_photos})`).join(", ")}.` : "")
    + (full.length ? ` ${FULL} ${full.map(([t, n]) => `${t} (${n})`).join(", ")}.` : "");
}

// A new tag with enough photos that still waits does so because the model holds as many new tags as it may.
const FULL = "Not added, as the model holds its limit of new tags (LABLR_PERSONAL_MAX_LEARNED_TAGS):";

/** [waiting for photos, waiting for room] of the new tags not suggested yet. */
function byRoom(pending, heldBack) {
  const entries = Object.entries(pending);
  return [entries.filter(([t]) => !Object.hasOwn(heldBack, t)), entries.filter(([t]) => Object.hasOwn(heldBack, t))];
}

async function sendMyTags(event) {
  event.preventDefault();
  showError("");
  const tags = myTags();
  if (!current) return showError("Choose a photo first.");
  if (!tags.length) return showError("Write the tags you gave this photo first, comma-separated.");
  const data = new FormData();
  data.append("image", current, current.name);
  data.append("tags", tags.join(","));
  // Only the suggestions shown (those above the threshold) are sent: a hidden one was never passed over.
  data.append("suggested", [...document.querySelectorAll("#tags .pick")].map((box) => box.value).join(","));
  try {
    const response = await request("/api/v1/feedback", { method: "POST", body: data, headers: { "X-Lablr-Client": "web" } });
    if (!response.ok) throw new Error(await apiError(response));
    const answer = await response.json();
    const [waiting, full] = byRoom(answer.pending, answer.held_back);
    $("status").textContent = !answer.recorded ? answer.message
      : `Learned from this photo for ${answer.learning.join(", ") || "no tag yet"}.`
        + (waiting.length ? ` Suggested once ${answer.min_photos} photos carry it: ${waiting.map(([t]) => t).join(", ")}.` : "")
        + (full.length ? ` ${FULL} ${full.map(([t]) => t).join(", ")}.` : "");
    await showModel(); // the tag count and what was learned, as the server now has them
  } catch (error) {
    showError(error.message);
  }
}

function chosenTags() {
  return [...document.querySelectorAll("#tags .pick:checked")].map((box) => box.value);
}

async function downloadWithTags() {
  const tags = chosenTags();
  if (!current || tags.length === 0) {
    showError("Tick at least one tag to write into the photo.");
    return;
  }
  showError("");
  const data = new FormData();
  data.append("image", current, current.name);
  try {
    const response = await request(`/api/v1/embed?tags=${encodeURIComponent(tags.join(","))}`, { method: "POST", body: data });
    if (!response.ok) throw new Error(await apiError(response));
    const header = response.headers.get("Lablr-Added-Tags") || "";
    const added = header ? header.split(",").map(decodeURIComponent) : [];
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = current.name;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
    const already = tags.length - added.length;
    $("status").textContent = (added.length ? `Saved ${current.name} with ${added.length} new tags in it: ${added.join(", ")}.`
      : `Saved ${current.name}: it already had these tags, or they were removed after Lablr added them.`)
      + (added.length && already ? ` ${already} left out: already there, or removed after Lablr added them.` : "");
  } catch (error) {
    showError(error.message);
  }
}

function flickrTags(tags) {
  // Flickr reads a tag with spaces when it is quoted.
  return tags.map((t) => (t.includes(" ") ? `"${t}"` : t)).join(" ");
}

document.addEventListener("DOMContentLoaded", async () => {
  const drop = $("drop");
  $("photo").addEventListener("change", (event) => handle(event.target.files[0]));
  $("k").addEventListener("change", () => handle(current));
  $("threshold").addEventListener("input", () => {
    localStorage.setItem(THRESHOLD_KEY, $("threshold").value);
    if (lastSuggestions.length) renderTags(lastSuggestions);
  });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    handle(event.dataTransfer.files[0]);
  });
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); $("photo").click(); }
  });
  $("copy").addEventListener("click", async () => {
    await navigator.clipboard.writeText(flickrTags(chosenTags()));
    $("status").textContent = "Tags copied: paste them into Flickr's tag field.";
  });
  $("download").addEventListener("click", downloadWithTags);
  $("mine-form").addEventListener("submit", sendMyTags);
  await showModel(true);
});

async function showModel(first = false) {
  try {
    const health = await (await fetch("/api/v1/health")).json();
    const m = health.model;
    $("model").textContent = `Model ${m.name}: ${m.tags} tags, ${m.encoder} encoder, ${m.scorer} scorer.`;
    if (first) {
      calibrated = Boolean(m.calibrated);
      $("threshold-label").hidden = !calibrated; // raw scores are no probabilities: nothing to hide by
      const chosen = localStorage.getItem(THRESHOLD_KEY);
      $("threshold").value = chosen ?? String(m.min_probability ?? 0);
      if (lastSuggestions.length) renderTags(lastSuggestions);
    }
    showLearned(await (await fetch("/api/v1/personal")).json());
  } catch {
    $("model").textContent = UNREACHABLE;
  }
}
