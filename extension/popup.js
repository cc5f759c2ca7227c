/* The toolbar popup: is the Lablr server reachable, which model it serves, what waits for it; pick the tag field; report a problem. */
"use strict";

const api = globalThis.browser ?? globalThis.chrome;
const $ = (id) => document.getElementById(id);

async function health() {
  try {
    return (await api.runtime.sendMessage({ type: "health" })) || { ok: false };
  } catch (_) {
    return { ok: false, message: "Lablr's worker did not answer." };
  }
}

async function refresh() {
  $("status").textContent = "Checking the server…";
  $("status").className = "status";
  const answer = await health();
  const ok = Boolean(answer.ok);
  $("model").hidden = !ok;
  $("hint").hidden = ok || answer.kind !== "unreachable";
  $("allow-row").hidden = answer.kind !== "permission";
  allowing = answer.kind === "permission" ? lablrParseServer(answer.server) : null;
  if (ok) {
    const m = answer.model || {};
    $("status").textContent = `Server reachable at ${answer.server}`;
    $("model-name").textContent = m.name ?? "?";
    $("model-tags").textContent = m.tags ?? "?";
    $("model-encoder").textContent = m.encoder ?? "?";
    $("model-scorer").textContent = m.scorer ?? "?";
  } else if (answer.kind === "unreachable") {
    $("status").textContent = `Server not reachable at ${answer.server}`;
  } else {
    $("status").textContent = answer.message || "Lablr could not check the server.";
  }
  $("status").className = `status ${ok ? "ok" : "bad"}`;
}

/** How many published photos wait for the server, said only when some do. */
async function showKept() {
  const answer = await api.runtime.sendMessage({ type: "kept" }).catch(() => null);
  const count = (answer && answer.count) || 0;
  $("kept").hidden = !count;
  $("kept").textContent = count === 1 ? "1 published photo waits for the Lablr server."
    : `${count} published photos wait for the Lablr server.`;
}

const say = (text) => {
  $("page-message").textContent = text;
};

/** Sends a message to Lablr on the tab the user is looking at; null when Lablr is not running there. */
async function askPage(message) {
  // In the toolbar this page is no tab; opened in a tab of its own, it skips itself.
  const own = await api.tabs.getCurrent();
  const others = (tabs) => tabs.filter((t) => !own || t.id !== own.id);
  let [tab] = others(await api.tabs.query({ active: true, lastFocusedWindow: true }));
  if (!tab) [tab] = others(await api.tabs.query({ active: true }));
  if (!tab) return null;
  try {
    return (await api.tabs.sendMessage(tab.id, message)) || null;
  } catch (_) {
    return null; // no Lablr content script there: not Flickr's upload page
  }
}

async function pick() {
  const answer = await askPage({ type: "pickTagField" });
  if (!answer) {
    say("Open Flickr's upload page in this tab first, then pick its tag field.");
    return;
  }
  say("Now click Flickr's tag field once.");
  window.close(); // a real popup closes, so the page gets the click
}

async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (_) {
    const area = $("report-text");
    area.hidden = false;
    area.select();
    try {
      return document.execCommand("copy");
    } catch (_) {
      return false;
    }
  }
}

async function report() {
  say("Collecting…");
  const [server, page] = await Promise.all([health(), askPage({ type: "diagnose" })]);
  const manifest = api.runtime.getManifest();
  const diagnostic = {
    lablr_extension: manifest.version,
    lablr_server: server.ok ? server.version || "unknown" : `not reachable (${server.message || server.kind || "?"})`,
    model: server.ok && server.model ? server.model.name : null,
    browser: navigator.userAgent,
    page: page && page.ok ? page : "Lablr is not running on this tab (not Flickr's upload page?)",
  };
  const text = `Lablr diagnostic (no photos, titles or tags in it)\n${JSON.stringify(diagnostic, null, 2)}\n`;
  $("report-text").value = text;
  $("report-text").hidden = false;
  const copied = await copy(text);
  say(copied
    ? "Copied. Paste it into a new issue on Lablr's issue tracker (see docs/extension.md)."
    : "Could not copy: select the text below and copy it yourself.");
}

// The server that needs the user's permission, while the popup says so.
let allowing = null;

function allow() {
  if (!allowing || allowing.error) return;
  lablrAllowServer(api, allowing).then(refresh); // asks at once, inside the click
}

$("retry").addEventListener("click", refresh);
api.storage.onChanged.addListener((changes, area) => {
  if (area === "local" && LABLR_KEPT.key in changes) showKept();
});
$("allow").addEventListener("click", allow);
$("options").addEventListener("click", () => api.runtime.openOptionsPage());
$("pick").addEventListener("click", pick);
$("report").addEventListener("click", report);
refresh();
showKept();
