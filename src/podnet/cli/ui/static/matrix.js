// Reachability: the predicted table (GET, `podnet analyze`'s code) and, on request, the
// measured one (POST, real connections as `podnet probe`), side by side in each cell.
import { el, getJSON, postJSON, status } from "./app.js";

let predicted = null, measured = null, params = {}, asked = 0;  // asked: only the latest answer counts

const mark = (v) => (v === true ? "✔" : v === false ? "✘" : v === null ? "?" : "·");
const word = (v) => (v === true ? "allowed" : v === false ? "denied" : v === null ? "untestable" : "not measured");
const cls = (v) => (v === true ? "allowed" : v === false ? "denied" : "");

function cellsOf(doc) {
  const m = new Map();
  if (doc) for (const t of doc.tables) for (const c of t.cells) m.set(`${t.port}|${c.from}|${c.to}`, c);
  return m;
}

function render() {
  const box = document.getElementById("matrix-table");
  if (!predicted) { box.replaceChildren(); return; }
  const got = cellsOf(measured);
  box.replaceChildren(...predicted.tables.map((t) => {
    const caption = el("caption", { text: `${t.protocol}/${t.port} IPv${t.family}: rows connect to columns` });
    const head = el("tr", {}, el("th", { scope: "col", text: "from \\ to" }), t.to.map((c) => el("th", { scope: "col", text: c })));
    const rows = t.from.map((r) => el("tr", {}, el("th", { scope: "row", text: r }), t.to.map((c) => {
      const p = t.cells.find((x) => x.from === r && x.to === c);
      const m = got.get(`${t.port}|${r}|${c}`);
      // refused: the connection reached the pod and nothing listens there; policy drops,
      // it never resets, so the policy let it through (`podnet probe` prints R)
      const reached = m === undefined ? undefined : m.outcome === "refused" ? true : m.allowed;
      const differs = reached !== undefined && reached !== null && p.allowed !== null && reached !== p.allowed;
      const seen = m ? (m.outcome === "refused" ? "reached, refused (nothing listens)" : word(m.allowed) + (m.outcome ? " (" + m.outcome + ")" : "")) : "not yet";
      const label = `${r} to ${c}: predicted ${word(p.allowed)}, measured ${seen}${differs ? ", they differ" : ""}`;
      return el("td", { class: "cell" + (differs ? " differs" : ""), "data-from": r, "data-to": c,
        "data-predicted": String(p.allowed), "data-measured": m ? String(reached) : "" },
        el("button", { type: "button", "aria-label": label, title: label, onclick: () => explain(r, c, t.port) },
          el("span", { class: cls(p.allowed), text: mark(p.allowed) }), " / ",
          el("span", { class: m ? cls(reached) : "", text: m ? (m.outcome === "refused" ? "R" : mark(m.allowed)) : "·" })));
    })));
    return el("table", { "data-port": t.port }, caption, el("thead", {}, head), el("tbody", {}, rows));
  }));
}

async function explain(from, to, port) {
  const box = document.getElementById("explain");
  box.replaceChildren(el("p", { text: "…" }));
  try {
    const x = await getJSON("/api/explain", { ...params, port, from, to });
    const side = (v) => el("li", {}, el("strong", { text: `${v.direction}: ` }),
      v.isolated ? `isolated by ${v.policies.join(", ")}; ` : "not isolated; ",
      v.allowed ? (v.rule ? `allowed by rule ${v.rule}` : "allowed") : "nothing allows it", ` (${v.reason})`);
    box.replaceChildren(el("h3", { text: `${from} → ${to} ${x.protocol}/${x.port} IPv${x.family}: ${x.allowed ? "allowed" : "denied"}` }),
      el("ul", {}, side(x.egress), side(x.ingress)),
      el("h4", { text: `Policies of ${from}` }), el("pre", { text: x.sourcePolicies.join("\n") }),
      x.targetPolicies ? el("h4", { text: `Policies of ${to}` }) : null,
      x.targetPolicies ? el("pre", { text: x.targetPolicies.join("\n") }) : null);
  } catch (e) { box.replaceChildren(el("p", { class: "error", text: e.message })); }
}

function formParams() {
  return Object.fromEntries(new FormData(document.getElementById("matrix-form")).entries());
}

async function predict() {
  const mine = ++asked;
  params = formParams();
  measured = null;
  status("matrix-status", "predicting…");
  try {
    const got = await getJSON("/api/matrix", params);
    if (mine !== asked) return;
    predicted = got;
    render();
    status("matrix-status", `predicted ${predicted.tables.map((t) => t.from.length + " × " + t.to.length).join(", ")} (analyze)`);
  } catch (e) { if (mine === asked) { predicted = null; render(); status("matrix-status", e.message, true); } }
}

async function probe() {
  // measure what the form asks, beside its prediction
  if (!predicted || JSON.stringify(formParams()) !== JSON.stringify(params)) await predict();
  const mine = ++asked;
  status("matrix-status", "probing with real connections…");
  try {
    const got = await postJSON("/api/probe", params);
    if (mine !== asked) return;
    measured = got;
    render();
    const n = document.querySelectorAll("#matrix-table td.differs").length;
    status("matrix-status", n ? `measured: ${n} cell(s) differ from the prediction` : "measured: every cell as predicted");
  } catch (e) { if (mine === asked) status("matrix-status", e.message, true); }
}

export function setNamespaces(topo) {
  const sel = document.querySelector("#matrix-form select[name=namespace]");
  const have = new Set([...sel.options].map((o) => o.value));
  const nss = new Set(topo.nodes.flatMap((n) => n.pods.map((p) => p.namespace)));
  for (const ns of [...nss].sort()) if (!have.has(ns)) sel.append(el("option", { value: ns, text: ns }));
}

export function initMatrix() {
  document.getElementById("matrix-form").addEventListener("submit", (ev) => { ev.preventDefault(); predict(); });
  document.getElementById("probe-btn").addEventListener("click", probe);
  document.addEventListener("podnet-tab", (ev) => { if (ev.detail === "matrix" && !predicted) predict(); });
}
