"use strict";
// The Lablr web page: a photo goes to /api/v1/suggest and /api/v1/plot on this same server.

const $ = (id) => document.getElementById(id);
let lastTags = [];
let current = null; // the photo shown

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

function renderTags(suggestions) {
  const list = $("tags");
  list.replaceChildren();
  const top = Math.max(...suggestions.map((s) => s.score), 1e-9);
  for (const s of suggestions) {
    const item = document.createElement("li");
    item.className = "tag";
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
    score.textContent = s.score.toFixed(3);
    score.title = s.distance === undefined ? "score" : `score; distance ${s.distance}`;
    item.append(name, bar, score);
    list.append(item);
  }
  lastTags = suggestions.map((s) => s.tag);
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
    $("status").textContent = `${answer.results[0].suggestions.length} tags in ${Math.round(answer.elapsed_ms)} ms.`;
  } catch (error) {
    $("results").hidden = true;
    $("status").textContent = "";
    showError(error.message === "Failed to fetch" ? "The Lablr server cannot be reached." : error.message);
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
  const waiting = Object.entries(personal.pending_tags).map(([t, n]) => `${t} (${n} of ${personal.min_photos})`);
  line.textContent = `Learned from ${photos}; ${added}.` + (waiting.length ? ` Waiting for more photos: ${waiting.join(", ")}.` : "");
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
  data.append("suggested", lastTags.join(","));
  try {
    const response = await fetch("/api/v1/feedback", { method: "POST", body: data });
    if (!response.ok) throw new Error(await apiError(response));
    const answer = await response.json();
    await showModel();
    const waiting = Object.keys(answer.pending);
    $("status").textContent = !answer.recorded ? answer.message
      : `Learned from this photo for ${answer.learning.join(", ") || "no tag yet"}.`
        + (waiting.length ? ` Suggested once ${answer.min_photos} photos carry it: ${waiting.join(", ")}.` : "");
  } catch (error) {
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
  $("mine-form").addEventListener("submit", sendMyTags);
  await showModel();
});

async function showModel() {
  try {
    const health = await (await fetch("/api/v1/health")).json();
    const m = health.model;
    $("model").textContent = `Model ${m.name}: ${m.tags} tags, ${m.encoder} encoder, ${m.scorer} scorer.`;
    showLearned(await (await fetch("/api/v1/personal")).json());
  } catch {
    $("model").textContent = "The Lablr server cannot be reached.";
  }
}
