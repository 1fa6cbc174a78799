// A packet's path: `podnet trace` drawn hop by hop, each hop's decisions and the packet's
// headers as it leaves, layer by layer (L2, L3, L4; VXLAN's outer headers on top).
import { el, getJSON, postJSON, status } from "./app.js";

const FAMILY = { 4: "IPv4", 6: "IPv6" };
const port = (p, what = "ephemeral") => (p === null || p === undefined ? `(${what})` : String(p));

function layers(h, outer = false) {
  const pre = outer ? "outer " : "";
  const ttl = h.l3.family === 4 ? "ttl" : "hop limit";
  return [
    el("div", { class: `layer l2${outer ? " outer" : ""}`, text: `${pre}L2` }), el("div", { class: `l2${outer ? " outer" : ""}`, text: `Ethernet ${h.l2.src} → ${h.l2.dst}` }),
    el("div", { class: `layer l3${outer ? " outer" : ""}`, text: `${pre}L3` }), el("div", { class: `l3${outer ? " outer" : ""}`, text: `${FAMILY[h.l3.family]} ${h.l3.src} → ${h.l3.dst}, ${ttl} ${h.l3.ttl}` }),
    el("div", { class: `layer l4${outer ? " outer" : ""}`, text: `${pre}L4` }), el("div", { class: `l4${outer ? " outer" : ""}`, text: `${h.l4.proto} sport ${port(h.l4.sport, outer ? "flow hash" : "ephemeral")} dport ${port(h.l4.dport)}` }),
  ];
}

function packet(h, leaving) {
  const parts = [];
  if (h.outer) parts.push(...layers(h.outer, true), el("div", { class: "layer outer", text: "VXLAN" }), el("div", { class: "outer", text: `VNI ${h.vni}` }));
  parts.push(...layers(h));
  return el("figure", {}, el("figcaption", { text: `headers as it ${leaving ? "leaves" : "arrives"}` }),
    el("div", { class: "packet", role: "table", "aria-label": "packet headers by layer" }, parts));
}

function hop(h, i) {
  const ifs = [h.iif ? `in ${h.iif}` : "", h.oif ? `out ${h.oif}` : ""].filter(Boolean).join(", ");
  return el("li", { class: "hop", "data-where": h.where, "data-kind": h.kind, tabindex: "0",
    "aria-label": `hop ${i + 1}: ${h.where}` },
    el("h4", { text: `${i + 1}. ${h.where}` }),
    el("div", { class: "hint", text: `netns ${h.netns}${ifs ? "; " + ifs : ""}` }),
    el("ul", { class: "steps" }, h.steps.map((s) => el("li", { "data-step": s.kind, text: s.text }))),
    h.headers ? packet(h.headers, Boolean(h.oif)) : null);
}

function path(p) {
  return el("section", { class: "path", "data-direction": p.direction },
    el("h3", { text: p.direction === "request" ? "Request" : "Reply" }),
    el("ol", { class: "hops" }, p.hops.map(hop)),
    el("p", { class: `outcome-${p.outcome}`, text: `⇒ ${p.outcome.toUpperCase()}${p.why ? ": " + p.why : ""}` }));
}

function render(t) {
  const c = t.confirmation;
  const conf = !c ? null : el("p", { class: c.ok ? "outcome-delivered" : c.ok === false ? "outcome-dropped" : "hint",
    text: c.ok ? "The kernel's own trace of a real packet confirmed this path." :
      c.ok === false ? "The kernel's trace DIFFERS from the prediction (see the text below)." : `Not confirmed: ${c.why || ""}` });
  document.getElementById("trace-drawing").replaceChildren(
    el("p", {}, el("strong", { text: `${t.src} → ${t.target} ${t.port}/${t.proto} ${FAMILY[t.family]}` })),
    el("ul", {}, t.notes.map((n) => el("li", { text: n }))),
    t.service ? el("p", { text: `Service ${t.service}: endpoints ${t.endpoints.map((e) => `${e.ip}:${e.port} (${e.pod || "not a pod"})`).join(", ") || "none"}` }) : null,
    el("p", { text: `NetworkPolicy: ${t.verdict.toUpperCase()} (${t.verdict_reason})` }),
    conf, path(t.request), t.reply ? path(t.reply) : null,
    el("details", {}, el("summary", { text: "as `podnet trace` prints it" }), el("pre", { text: t.text })));
}

let asked = 0;  // only the latest answer is drawn

async function run(confirm) {
  const mine = ++asked;
  const f = Object.fromEntries(new FormData(document.getElementById("trace-form")).entries());
  const q = { src: f.src, dst: f.dst, ipv6: f.ipv6 ? "1" : "" };
  status("trace-status", confirm ? "sending a real packet and reading the kernel's trace…" : "predicting…");
  try {
    const t = confirm ? await postJSON("/api/trace", q) : await getJSON("/api/trace", q);
    if (mine !== asked) return;
    render(t);
    status("trace-status", `${t.request.hops.length} hops, ${t.request.outcome}`);
  } catch (e) { if (mine === asked) status("trace-status", e.message, true); }
}

export function pickSource(label) {
  const sel = document.querySelector("#trace-form select[name=src]");
  sel.value = label;
  sel.focus();
}

export function setPods(topo) {
  const sel = document.querySelector("#trace-form select[name=src]");
  const keep = sel.value;
  const pods = topo.nodes.flatMap((n) => n.pods).filter((p) => !p.hostNetwork).map((p) => `${p.namespace}/${p.name}`).sort();
  sel.replaceChildren(...pods.map((p) => el("option", { value: p, text: p })));
  if (pods.includes(keep)) sel.value = keep;
  // suggestions for the destination: Services by name and VIP, pods, the outside world
  const opts = [];
  for (const sv of topo.services) {
    const port = sv.ports.length ? `:${sv.ports[0].port}/${sv.ports[0].protocol}` : "";
    opts.push([`${sv.name}.${sv.namespace}${port}`, `Service ${sv.namespace}/${sv.name}`]);
    for (const ip of sv.clusterIPs) opts.push([ip.includes(":") ? `[${ip}]${port}` : `${ip}${port}`, `Service ${sv.namespace}/${sv.name}`]);
  }
  for (const p of topo.nodes.flatMap((n) => n.pods)) opts.push([`${p.namespace}/${p.name}`, `pod ${p.ipv4.join(" ")}`]);
  if (topo.lab) for (const ip of topo.lab.outside.echo) opts.push([ip.includes(":") ? `[${ip}]:80` : `${ip}:80`, "the outside world's echo server"]);
  document.getElementById("trace-dests").replaceChildren(...opts.map(([v, l]) => el("option", { value: v, label: l })));
}

export function initTrace() {
  document.getElementById("trace-form").addEventListener("submit", (ev) => { ev.preventDefault(); run(false); });
  document.getElementById("confirm-btn").addEventListener("click", () => run(true));
}
