// The topology: an SVG drawing (outside world, router, underlay, nodes, pods) whose pods
// are focusable, plus the same facts as text (lists and tables) for screen readers and search.
import { el, goTo } from "./app.js";
import { pickSource } from "./trace.js";

const NS = "http://www.w3.org/2000/svg";
const NODE_W = 280, POD_H = 50, GAP = 20;

function s(tag, attrs = {}, ...children) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}
const text = (x, y, t, cls) => s("text", { x, y, class: cls }, t);
const short = (t, n) => (t.length > n ? t.slice(0, n - 1) + "…" : t);
export const podLabel = (p) => `${p.namespace}/${p.name}`;
const addrs = (p) => [...p.ipv4, ...p.ipv6];

function podText(p) {
  const st = p.terminating ? "terminating" : p.ready ? "ready" : p.phase.toLowerCase();
  return `pod ${podLabel(p)} on node ${p.node || "none"}, ${st}, addresses ${addrs(p).join(", ") || "none yet"}`;
}

function drawPod(p, x, y) {
  const g = s("g", { class: "pod" + (p.terminating ? " terminating" : ""), tabindex: "0", role: "button",
    "aria-label": podText(p), "data-pod": podLabel(p) });
  g.append(s("title", {}, podText(p)));
  g.append(s("rect", { x, y, width: NODE_W - 20, height: POD_H - 6, rx: 6 }));
  g.append(text(x + 6, y + 14, short(podLabel(p), 36)));
  g.append(text(x + 6, y + 28, p.ipv4.join(" ") || "(no IPv4)"));
  if (p.ipv6.length) g.append(text(x + 6, y + 41, short(p.ipv6.join(" "), 37)));
  const pick = () => { pickSource(podLabel(p)); goTo("trace"); };
  g.addEventListener("click", pick);
  g.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); pick(); } });
  return g;
}

function drawing(topo) {
  const nodes = topo.nodes, n = Math.max(nodes.length, 1);
  const width = Math.max(n * (NODE_W + GAP) + GAP, 3 * NODE_W);
  const maxPods = Math.max(1, ...nodes.map((x) => x.pods.length));
  const top = 150, height = top + 74 + maxPods * POD_H + 20;
  const lab = topo.lab;
  const desc = `${nodes.length} nodes on the underlay ${lab ? lab.underlay.ipv4 : ""}, behind a router to the outside world` +
    (lab ? ` ${lab.outside.ipv4}` : "") + `; ${nodes.reduce((a, x) => a + x.pods.length, 0)} pods. The same facts are listed as text below.`;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "group", "aria-labelledby": "topo-title topo-desc" });
  svg.append(s("title", { id: "topo-title" }, "The cluster's network"), s("desc", { id: "topo-desc" }, desc));
  const mid = width / 2;
  const box = (x, y, w, h, title, sub) => s("g", { class: "infra" }, s("rect", { x, y, width: w, height: h, rx: 6 }),
    text(x + 8, y + 16, title, "title"), text(x + 8, y + 32, sub));
  svg.append(box(mid - 160, 8, 320, 40, "outside world", lab ? `${lab.outside.ipv4}  echo ${lab.outside.echo.join(" ")}` : ""));
  svg.append(s("line", { x1: mid, y1: 48, x2: mid, y2: 66 }));
  svg.append(box(mid - 160, 66, 320, 40, "router (NAT to the outside)", lab ? lab.router.ipv4.join(" ") : ""));
  svg.append(s("line", { x1: mid, y1: 106, x2: mid, y2: 124 }));
  svg.append(s("line", { x1: GAP, y1: 124, x2: width - GAP, y2: 124 }));
  svg.append(text(GAP, 118, `underlay ${lab ? lab.underlay.ipv4 + (lab.underlay.ipv6 ? " " + lab.underlay.ipv6 : "") : ""}${lab && lab.encap !== "none" ? " (" + lab.encap + ")" : ""}`));
  nodes.forEach((node, i) => {
    const x = GAP + i * (NODE_W + GAP), h = 62 + node.pods.length * POD_H;
    const g = s("g", { class: "node", "aria-label": `node ${node.name} ${node.ips.join(" ")}` });
    g.append(s("line", { x1: x + NODE_W / 2, y1: 124, x2: x + NODE_W / 2, y2: top }));
    g.append(s("rect", { x, y: top, width: NODE_W, height: h, rx: 8 }));
    g.append(text(x + 8, top + 17, `node ${node.name}`, "title"));
    g.append(text(x + 8, top + 32, short(node.ips.join(" "), 38)));
    g.append(text(x + 8, top + 46, short("blocks " + node.blocks.map((b) => b.cidr).join(" "), 38)));
    node.pods.forEach((p, j) => g.append(drawPod(p, x + 10, top + 56 + j * POD_H)));
    svg.append(g);
  });
  return svg;
}

function fillList(topo) {
  const ul = document.getElementById("pod-list");
  ul.replaceChildren(...topo.nodes.map((n) => el("li", { "data-node": n.name },
    el("strong", { text: `node ${n.name}` }), " ", el("span", { class: "ip", text: n.ips.join(" ") }),
    el("ul", {}, n.pods.map((p) => el("li", { "data-pod": podLabel(p), "data-ips": addrs(p).join(" ") },
      `${podLabel(p)} `, el("span", { class: "ip", text: addrs(p).join(" ") }),
      p.terminating ? " (terminating)" : p.ready ? "" : ` (${p.phase})`))))));
  if (topo.unscheduled.length) ul.append(el("li", {}, "not on a node: " + topo.unscheduled.map(podLabel).join(", ")));
}

function fillTables(topo) {
  document.querySelector("#services tbody").replaceChildren(...topo.services.map((sv) => el("tr", { "data-service": `${sv.namespace}/${sv.name}` },
    el("th", { scope: "row", text: `${sv.namespace}/${sv.name}` }), el("td", { text: sv.type }),
    el("td", { class: "ip", text: [...sv.clusterIPs, ...sv.externalIPs, ...sv.loadBalancerIPs].join(" ") || "none" }),
    el("td", { text: sv.ports.map((p) => `${p.port}/${p.protocol} → ${p.targetPort}${p.nodePort ? " node " + p.nodePort : ""}`).join(", ") }),
    el("td", {}, sv.endpoints.length ? el("ul", {}, sv.endpoints.map((e) => el("li", {}, el("span", { class: "ip", text: e.address }),
      ` ${e.pod || ""}${e.ready ? "" : " (not ready)"}${e.terminating ? " (terminating)" : ""}`))) : "none"))));
  document.querySelector("#pools tbody").replaceChildren(...topo.pools.map((p) => el("tr", {},
    el("th", { scope: "row", text: p.name }), el("td", { class: "ip", text: p.cidr }), el("td", { text: `/${p.blockSize}` }),
    el("td", { text: p.natOutgoing ? "yes" : "no" }),
    el("td", { text: topo.nodes.flatMap((n) => n.blocks.filter((b) => b.pool === p.name).map((b) => `${n.name}: ${b.cidr} ${b.used}/${b.size}`)).join("; ") || "none" }))));
}

export function renderTopology(topo) {
  const box = document.getElementById("topo-drawing");
  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.pod : null;
  box.replaceChildren(drawing(topo));
  if (focused) { const g = box.querySelector(`[data-pod="${CSS.escape(focused)}"]`); if (g) g.focus(); }
  fillList(topo);
  fillTables(topo);
}
