// Flows: the recent flow records of every node, filtered by the server as `podnet flows`
// filters them, fetched every 2 s while this tab is open; drops are highlighted and say
// which policy isolated the pod (a click on it shows the policy's pods in the matrix).
import { el, getJSON, status, goTo } from "./app.js";

let timer = null, asked = 0;

const end = (e) => (e.pod || e.ip) + (e.port ? `:${e.port}` : "");
const dropped = (r) => r.verdict === "dropped" || r.verdict === "rejected";

function policyLinks(r) {
  const full = (d, n) => (n.includes("/") || !d.namespace ? n : `${d.namespace}/${n}`);
  const names = new Set((r.decisions || []).flatMap((d) => (d.policy ? [full(d, d.policy)] : (d.policies || []).map((n) => full(d, n)))));
  if (!names.size) return [];
  return [" (", ...[...names].flatMap((n, i) => [i ? ", " : "", el("a", { href: "#matrix", "data-policy": n, text: n,
    onclick: (ev) => { ev.preventDefault(); showPolicy(n); } })]), ")"];
}

function showPolicy(name) {
  const sel = document.querySelector("#matrix-form select[name=namespace]");
  sel.value = name.split("/")[0];
  goTo("matrix");
  document.getElementById("matrix-form").requestSubmit();
}

function render(records) {
  document.querySelector("#flows-table tbody").replaceChildren(...records.slice(-200).reverse().map((r) =>
    el("tr", { class: dropped(r) ? "drop" : "" },
      el("td", { text: new Date(r.time * 1000).toLocaleTimeString() }), el("td", { text: r.node }),
      el("td", { text: r.protocol }), el("td", { text: end(r.source) }),
      el("td", { text: end(r.destination) + (r.service ? ` (svc ${r.service}${r.endpoint ? " → " + end(r.endpoint) : ""})` : "") }),
      el("td", { text: r.verdict }), el("td", {}, r.why, dropped(r) ? policyLinks(r) : []))));
}

async function poll() {
  const mine = ++asked;
  const q = Object.fromEntries(new FormData(document.getElementById("flows-form")).entries());
  try {
    const got = await getJSON("/api/flows", q);
    if (mine !== asked) return;
    render(got.records);
    status("flows-status", `${got.records.length} record(s)` + (got.missing.length ? `; no answer from ${got.missing.join(", ")}` : ""));
  } catch (e) { if (mine === asked) status("flows-status", e.message, true); }
}

export function initFlows() {
  const form = document.getElementById("flows-form");
  form.addEventListener("submit", (ev) => { ev.preventDefault(); poll(); });
  form.addEventListener("change", poll);
  document.addEventListener("podnet-tab", (ev) => {
    clearInterval(timer);
    timer = null;
    if (ev.detail === "flows") { poll(); timer = setInterval(poll, 2000); }
  });
}
