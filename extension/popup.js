/* The toolbar popup: is the Lablr server reachable, and which model does it serve? */
"use strict";

const api = globalThis.browser ?? globalThis.chrome;
const $ = (id) => document.getElementById(id);

async function refresh() {
  $("status").textContent = "Checking the server…";
  $("status").className = "status";
  let answer;
  try {
    answer = await api.runtime.sendMessage({ type: "health" });
  } catch (_) {
    answer = { ok: false, message: "Lablr's worker did not answer." };
  }
  answer = answer || { ok: false };
  const ok = Boolean(answer.ok);
  $("model").hidden = !ok;
  $("hint").hidden = ok || answer.kind !== "unreachable";
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

$("retry").addEventListener("click", refresh);
$("options").addEventListener("click", () => api.runtime.openOptionsPage());
refresh();
