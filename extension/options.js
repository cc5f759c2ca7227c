/* Lablr's options page: server address, number of tags, threshold, "add top N", auto-suggest, teaching, the picked tag field. */
"use strict";

const api = globalThis.browser ?? globalThis.chrome;
const form = document.getElementById("options");
const field = (name) => document.getElementById(name);
const message = field("message");

function say(text, kind = "") {
  message.textContent = text;
  message.className = kind;
}

field("server").placeholder = LABLR_DEFAULTS.server;

function show(settings) {
  field("server").value = settings.server;
  field("count").value = settings.count;
  field("addTop").value = settings.addTop;
  field("autoSuggest").checked = settings.autoSuggest;
  field("minScore").value = settings.minScore ?? "";
  field("teach").checked = settings.teach;
}

function showPicked(selector) {
  field("picked-status").textContent = selector
    ? `Lablr uses the tag field you picked: ${selector}`
    : "Lablr finds Flickr's tag field by itself.";
  field("forget").disabled = !selector;
}

// What the user typed before the stored settings arrived stays: loading must not undo it.
let touched = false;
form.addEventListener("input", () => {
  touched = true;
});

async function load() {
  const stored = await api.storage.local.get(null);
  if (!touched) show(lablrNormalizeSettings(stored));
  showPicked(stored[LABLR_PICKED_FIELD]);
  const answer = await api.runtime.sendMessage({ type: "health" }).catch(() => null);
  const most = answer && answer.ok && answer.limits && answer.limits.max_k;
  if (most) for (const name of ["count", "addTop"]) field(name).max = most; // the server's own limit
}

async function checkConnection() {
  say("Checking…");
  const answer = await api.runtime.sendMessage({ type: "health" });
  if (answer && answer.ok) {
    const m = answer.model || {};
    say(`Connected to ${answer.server}: model ${m.name || "?"} with ${m.tags ?? "?"} tags.`, "ok");
  } else if (answer && answer.kind === "unreachable") {
    say(`No Lablr server answers at ${answer.server}. Start it with “lablr serve”.`, "bad");
  } else {
    say((answer && answer.message) || "Lablr could not check the connection.", "bad");
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const parsed = lablrParseServer(field("server").value);
  if (parsed.error) {
    say(parsed.error, "bad");
    field("server").focus();
    return;
  }
  if (!(await lablrAllowServer(api, parsed))) {
    say(`Not saved: Lablr needs your permission to reach ${parsed.base}.`, "bad");
    return;
  }
  const settings = lablrNormalizeSettings({
    server: parsed.base,
    count: field("count").value,
    addTop: field("addTop").value,
    autoSuggest: field("autoSuggest").checked,
    minScore: field("minScore").value,
    teach: field("teach").checked,
  });
  await api.storage.local.set(settings);
  if (!settings.teach) await api.runtime.sendMessage({ type: "forgetKept" }).catch(() => null); // nothing kept to teach
  show(settings);
  say("Saved.", "ok");
});

field("check").addEventListener("click", checkConnection);
field("reset").addEventListener("click", async () => {
  await api.storage.local.set({ ...LABLR_DEFAULTS });
  show(lablrNormalizeSettings(LABLR_DEFAULTS));
  say("Defaults restored.", "ok");
});

field("forget").addEventListener("click", async () => {
  await api.storage.local.remove(LABLR_PICKED_FIELD);
  showPicked(null);
  say("Lablr forgot the tag field you picked.", "ok");
});
api.storage.onChanged.addListener((changes, area) => {
  if (area === "local" && LABLR_PICKED_FIELD in changes) showPicked(changes[LABLR_PICKED_FIELD].newValue);
});

load();
