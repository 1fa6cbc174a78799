// podnet ui: tabs, the live event stream, and the small helpers every view uses.
import { renderTopology } from "./topology.js";
import { initMatrix, setNamespaces } from "./matrix.js";
import { initTrace, setPods } from "./trace.js";
import { initFlows } from "./flows.js";

const TOKEN = document.querySelector('meta[name="podnet-token"]').content;

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else if (v !== null && v !== undefined) e.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c);
  return e;
}

async function answer(r) {
  const body = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

export async function getJSON(path, params = {}) {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v !== undefined));
  return answer(await fetch(`${path}?${q}`, { headers: { Accept: "application/json" } }));
}

// Actions that send real packets: POST with the page's token (the server refuses others).
export async function postJSON(path, body) {
  return answer(await fetch(path, { method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json", "X-Podnet-Token": TOKEN } }));
}

export function status(id, text, isError = false) {
  const p = document.getElementById(id);
  p.textContent = text;
  p.classList.toggle("error", isError);
}

function showTab(name) {
  for (const a of document.querySelectorAll('[role="tab"]')) {
    const on = a.getAttribute("aria-controls") === name;
    a.setAttribute("aria-selected", on ? "true" : "false");
    document.getElementById(a.getAttribute("aria-controls")).hidden = !on;
  }
  document.dispatchEvent(new CustomEvent("podnet-tab", { detail: name }));
}

export function goTo(name) { location.hash = name; }

function connect() {
  const live = document.getElementById("live");
  const es = new EventSource("/api/events");
  let drawn = "";
  es.addEventListener("topology", (ev) => {
    const topo = JSON.parse(ev.data);
    window.podnetTopology = topo;  // for the browser tests and the curious
    // a new revision that changes nothing drawn (a status heartbeat) redraws nothing
    const key = JSON.stringify({ ...topo, revision: 0 });
    if (key !== drawn) {
      drawn = key;
      document.getElementById("lab-name").textContent = topo.lab ? `lab ${topo.lab.name}` : "";
      renderTopology(topo);
      setNamespaces(topo);
      setPods(topo);
    }
    live.textContent = `live: store revision ${topo.revision}, updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.revision = topo.revision;
  });
  es.onerror = () => { live.textContent = "disconnected: retrying…"; };
}

window.addEventListener("hashchange", () => showTab(location.hash.slice(1) || "topology"));
document.addEventListener("DOMContentLoaded", () => {
  showTab(location.hash.slice(1) || "topology");
  initMatrix();
  initTrace();
  initFlows();
  connect();
});
