// Flows: the recent flow records of every node (as `podnet flows`), fetched every 2 s
// while this tab is open; drops are highlighted with the policy that decided.
import { el, getJSON, status } from "./app.js";

let timer = null, records = [];

const end = (e) => (e.pod || e.ip) + (e.port ? `:${e.port}` : "");

const dropped = (r) => r.verdict === "dropped" || r.verdict === "rejected";

function render() {
  const f = Object.fromEntries(new FormData(document.getElementById("flows-form")).entries());
  const q = (f.q || "").toLowerCase();
  const rows = records.filter((r) => (!f.drops || dropped(r))
    && (!q || JSON.stringify(r).toLowerCase().includes(q)));
  document.querySelector("#flows-table tbody").replaceChildren(...rows.slice(-200).reverse().map((r) =>
    el("tr", { class: dropped(r) ? "drop" : "" },
      el("td", { text: new Date(r.time * 1000).toLocaleTimeString() }), el("td", { text: r.node }),
      el("td", { text: r.protocol }), el("td", { text: end(r.source) }),
      el("td", { text: end(r.destination) + (r.service ? ` (svc ${r.service})` : "") }),
      el("td", { text: r.verdict }), el("td", { text: r.why }))));
}

async function poll() {
  try {
    const got = await getJSON("/api/flows", { since: Math.floor(Date.now() / 1000) - 300 });
    records = got.records;
    status("flows-status", `${records.length} records in the last 5 minutes` + (got.missing.length ? `; no answer from ${got.missing.join(", ")}` : ""));
    render();
  } catch (e) { status("flows-status", e.message, true); }
}

export function initFlows() {
  document.getElementById("flows-form").addEventListener("input", render);
  document.addEventListener("podnet-tab", (ev) => {
    clearInterval(timer);
    timer = null;
    if (ev.detail === "flows") { poll(); timer = setInterval(poll, 2000); }
  });
}
