"use strict";
// The Lablr web page: a photo goes to /api/v1/suggest and /api/v1/plot on this same server.

const $ = (id) => document.getElementById(id);
let lastTags = [];
let lastSuggestions = [];
let current = null; // the photo shown
let calibrated = false; // whether scores are probabilities (health says); only then does the threshold apply
const THRESHOLD_KEY = "lablr.minProbability";

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
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = s.tag;
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
    item.append(name, bar, score);
    list.append(item);
  }
  lastTags = suggestions.map((s) => s.tag);
}

async function handle(file) {
  if (!file) return;
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
      fetch(`/api/v1/suggest?k=${k}`, { method: "POST", body: form() }),
      fetch(`/api/v1/plot?k=${k}`, { method: "POST", body: form() }),
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
    $("status").textContent = `${lastTags.length} tags in ${Math.round(answer.elapsed_ms)} ms.`;
  } catch (error) {
    $("results").hidden = true;
    $("status").textContent = "";
    showError(error.message === "Failed to fetch" ? "The Lablr server cannot be reached." : error.message);
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
    await navigator.clipboard.writeText(flickrTags(lastTags));
    $("status").textContent = "Tags copied: paste them into Flickr's tag field.";
  });
  try {
    const health = await (await fetch("/api/v1/health")).json();
    const m = health.model;
    $("model").textContent = `Model ${m.name}: ${m.tags} tags, ${m.encoder} encoder, ${m.scorer} scorer.`;
    calibrated = Boolean(m.calibrated);
    $("threshold-label").hidden = !calibrated; // raw scores are no probabilities: nothing to hide by
    const chosen = localStorage.getItem(THRESHOLD_KEY);
    $("threshold").value = chosen ?? String(m.min_probability ?? 0);
    if (lastSuggestions.length) renderTags(lastSuggestions);
  } catch {
    $("model").textContent = "The Lablr server cannot be reached.";
  }
});
