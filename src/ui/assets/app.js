// logbook ui: one page, routed by its URL (history API). Every view reads its state from the
// URL and asks the server's JSON endpoints (/api/...); nothing here queries the log itself.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const view = () => document.getElementById("view");
const SVGNS = "http://www.w3.org/2000/svg";
const KINDS = ["event", "plan", "action", "outcome", "marker"];

function el(tag, attrs = {}, ...children) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVGNS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

async function api(path, options) {
  let res;
  try {
    res = await fetch(path, options);
  } catch (e) {
    throw new Error("logbook ui is not answering (" + e.message + "); is it still running?");
  }
  let body;
  try { body = await res.json(); } catch (e) { body = { error: "the server answered " + res.status + " with no JSON" }; }
  if (!res.ok) throw new Error(body.error || ("HTTP " + res.status));
  return body;
}

// replaceChildren without the nulls of optional parts.
function put(where, ...children) {
  where.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

function showError(where, e) {
  where.replaceChildren(el("div", { class: "error", role: "alert", id: "api-error", text: e.message }));
}

// ---------------------------------------------------------------------------------------------
// Theme: prefers-color-scheme, unless the toggle chose one (kept in localStorage).

function currentTheme() {
  const set = document.documentElement.dataset.theme;
  if (set) return set;
  return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}
function applyTheme(theme) {
  if (theme) document.documentElement.dataset.theme = theme;
  const b = document.getElementById("theme-toggle");
  const dark = currentTheme() === "dark";
  b.setAttribute("aria-pressed", String(dark));
  b.textContent = dark ? "Light theme" : "Dark theme";
}
function initTheme() {
  let saved = null;
  try { saved = localStorage.getItem("logbook-theme"); } catch (e) { /* private mode */ }
  applyTheme(saved);
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => applyTheme(null));
  document.getElementById("theme-toggle").addEventListener("click", () => {
    const next = currentTheme() === "dark" ? "light" : "dark";
    try { localStorage.setItem("logbook-theme", next); } catch (e) { /* private mode */ }
    applyTheme(next);
  });
}

// ---------------------------------------------------------------------------------------------
// Routing

function go(url, replace) {
  if (replace) history.replaceState(null, "", url); else history.pushState(null, "", url);
  route();
}

document.addEventListener("click", (ev) => {
  const a = ev.target.closest && ev.target.closest("a");
  if (!a || a.target || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/")) return;
  ev.preventDefault();
  go(url.pathname + url.search);
});
window.addEventListener("popstate", () => route());

let stopLive = null;

function route() {
  if (stopLive) { stopLive(); stopLive = null; }
  const path = location.pathname;
  const q = new URLSearchParams(location.search);
  let m;
  if (path === "/" || path === "/timeline") return timelineView(q);
  if ((m = path.match(/^\/entry\/(\d+)$/))) return entryView(m[1]);
  if (path.startsWith("/object/")) return objectView(path.slice("/object/".length), q);
  if (path === "/state") return stateView(q);
  if (path === "/verify") return verifyView();
  if (path === "/what-if") return whatIfView();
  view().replaceChildren(el("div", { class: "error", role: "alert", text: "There is no view at " + path + "." }));
}

// ---------------------------------------------------------------------------------------------
// Timeline

const T = { from: null, to: null, data: null, filters: null, summary: null };

function iso(ms) { return new Date(ms).toISOString(); }
function fmtTime(ms, span) {
  const d = new Date(ms);
  const s = d.toISOString();
  if (span < 2000) return s.slice(11, 23);
  if (span < 86400000) return s.slice(11, 19);
  return s.slice(0, 16).replace("T", " ");
}

async function timelineView(q) {
  const v = view();
  v.replaceChildren();
  let summary;
  try { summary = await api("/api/summary"); } catch (e) { return showError(v, e); }
  T.summary = summary;
  $("#logpath").textContent = summary.path + " · " + summary.last_seq + " entries";
  const f = {
    ns: q.get("ns") || "", app: q.get("app") || "", kind: q.get("kind") || "",
    entry: (q.get("entry") || "").split(",").filter(Boolean),
    live: q.get("live") !== "0",
  };
  T.filters = f;
  T.from = q.get("from") ? Date.parse(q.get("from")) : null;
  T.to = q.get("to") ? Date.parse(q.get("to")) : null;
  const form = el("form", { class: "filters", id: "filters", "aria-label": "Filters" },
    el("label", {}, "Namespace", el("input", { name: "ns", value: f.ns, size: 10 })),
    el("label", {}, "Application", el("input", { name: "app", value: f.app, size: 14, placeholder: "ns/name" })),
    el("label", {}, "Object kind", el("input", { name: "kind", value: f.kind, size: 12, placeholder: "Deployment" })),
    el("fieldset", {}, el("legend", { class: "muted", text: "Entries" }),
      KINDS.map((k) => el("label", {}, el("input", { type: "checkbox", name: "entry", value: k,
        checked: f.entry.length === 0 || f.entry.includes(k) }), " " + k))),
    el("label", {}, "From", el("input", { name: "from", value: T.from ? iso(T.from) : "", size: 24, placeholder: "RFC 3339" })),
    el("label", {}, "To", el("input", { name: "to", value: T.to ? iso(T.to) : "", size: 24, placeholder: "RFC 3339" })),
    el("label", {}, "Live", el("input", { type: "checkbox", name: "live", checked: f.live })),
    el("button", { type: "submit" }, "Apply"),
    el("button", { type: "button", id: "reset", onclick: () => go("/timeline") }, "Reset"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const fd = new FormData(form);
    const p = new URLSearchParams();
    for (const k of ["ns", "app", "kind"]) if (fd.get(k)) p.set(k, fd.get(k).trim());
    const entries = fd.getAll("entry");
    if (entries.length && entries.length < KINDS.length) p.set("entry", entries.join(","));
    for (const k of ["from", "to"]) {
      const t = (fd.get(k) || "").trim();
      if (t) {
        const ms = Date.parse(t);
        if (isNaN(ms)) return showError($("#tl-status"), new Error(k + ": " + JSON.stringify(t) + " is not a time; write RFC 3339, e.g. 2025-03-14T03:12:00Z"));
        p.set(k, iso(ms));
      }
    }
    if (!fd.get("live")) p.set("live", "0");
    go("/timeline" + (p.toString() ? "?" + p : ""));
  });
  const legend = el("div", { class: "legend", "aria-hidden": "true" },
    KINDS.map((k) => el("span", {}, el("i", { class: "kind-" + k, style: "background: var(--" + k + ")" }), k)));
  const help = el("p", { class: "muted status-line" },
    "Wheel or +/− zooms, drag or ←/→ pans (with the timeline focused); Tab reaches the marks, arrow keys move between them, Enter opens one.");
  v.append(el("h1", { text: "Timeline" }), form, legend, help,
    el("div", { id: "tl-status", class: "status-line", role: "status" }),
    el("div", { id: "timeline" }));
  await loadTimeline();
  if (f.live) {
    let last = summary.last_seq;
    const timer = setInterval(async () => {
      try {
        const s = await api("/api/summary");
        if (s.last_seq > last) {
          last = s.last_seq;
          $("#logpath").textContent = s.path + " · " + s.last_seq + " entries";
          const cur = new URLSearchParams(location.search);
          if (!cur.get("to")) { if (!cur.get("from")) T.from = null; T.to = null; await loadTimeline(); }
        }
      } catch (e) { /* shown on the next load */ }
    }, 2000);
    stopLive = () => clearInterval(timer);
  }
}

function timelineParams() {
  const p = new URLSearchParams();
  const f = T.filters;
  if (f.ns) p.set("ns", f.ns);
  if (f.app) p.set("app", f.app);
  if (f.kind) p.set("kind", f.kind);
  if (f.entry.length) p.set("entry", f.entry.join(","));
  if (T.from !== null) p.set("from", iso(T.from));
  if (T.to !== null) p.set("to", iso(T.to));
  return p;
}

let loadSeq = 0;
async function loadTimeline() {
  const mine = ++loadSeq;
  const status = $("#tl-status");
  const p = timelineParams();
  let data;
  try { data = await api("/api/timeline?" + p); } catch (e) { return showError(status, e); }
  if (mine !== loadSeq || !$("#timeline")) return;
  T.data = data;
  if (data.from_ms !== null) {
    if (T.from === null) T.from = data.from_ms;
    if (T.to === null) T.to = data.to_ms;
  }
  status.textContent = data.total + " entries in this window" +
    (data.mode === "buckets" ? " — too many to draw one by one: counts per bucket (zoom in to see marks)" : "") +
    (data.total === 0 ? " — nothing matches; loosen the filters or widen the window" : "");
  drawTimeline(data);
}

function updateUrl() {
  const p = timelineParams();
  if (!T.filters.live) p.set("live", "0");
  history.replaceState(null, "", "/timeline?" + p);
  const from = $("#filters input[name=from]"), to = $("#filters input[name=to]");
  if (from) from.value = iso(T.from);
  if (to) to.value = iso(T.to);
}

let reloadTimer = null;
function setWindow(from, to) {
  if (to - from < 1) to = from + 1;
  T.from = from; T.to = to;
  updateUrl();
  if (T.data) drawTimeline(T.data, true);
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(loadTimeline, 150);
}
function zoom(factor, centerMs) {
  const c = centerMs === undefined ? (T.from + T.to) / 2 : centerMs;
  setWindow(c - (c - T.from) * factor, c + (T.to - c) * factor);
}
function pan(fraction) {
  const d = (T.to - T.from) * fraction;
  setWindow(T.from + d, T.to + d);
}

const LANE_H = 28, LEFT = 190, TOP = 24;

function laneKey(l) { return l.kind + " " + l.name; }

function drawTimeline(data, quick) {
  const box = $("#timeline");
  if (!box) return;
  const width = Math.max(box.clientWidth || 900, 400);
  const lanes = data.lanes || [];
  const height = TOP + Math.max(lanes.length, 1) * LANE_H + 8;
  const svg = el("svg:svg", { viewBox: `0 0 ${width} ${height}`, height, role: "group", tabindex: 0,
    "aria-label": "Timeline: " + lanes.length + " lanes; +/− zoom, ←/→ pan" });
  const from = T.from, to = T.to, span = Math.max(to - from, 1);
  const x = (ms) => LEFT + ((ms - from) / span) * (width - LEFT - 10);
  const laneIndex = new Map(lanes.map((l, i) => [laneKey(l), i]));
  // Lanes
  lanes.forEach((l, i) => {
    const y = TOP + i * LANE_H;
    if (i % 2 === 0) svg.append(el("svg:rect", { class: "lane-bg", x: 0, y, width, height: LANE_H }));
    const label = l.kind === "Log" ? "log (markers, whole-world plans)" : (l.kind + " " + l.name);
    svg.append(el("svg:text", { class: "lane-label", x: 6, y: y + LANE_H / 2 + 4 }, label.length > 30 ? label.slice(0, 29) + "…" : label));
  });
  // Axis
  const axis = el("svg:g", { class: "axis" });
  for (let i = 0; i <= 6; i++) {
    const ms = from + (span * i) / 6;
    const xx = x(ms);
    axis.append(el("svg:line", { x1: xx, x2: xx, y1: TOP - 4, y2: height }),
      el("svg:text", { x: i === 6 ? xx - 2 : xx + 2, y: 14, "text-anchor": i === 6 ? "end" : "start" }, fmtTime(ms, span)));
  }
  svg.append(axis);
  // Marks or buckets
  if (data.mode === "marks") {
    const offsets = { event: -7, plan: -2, action: 3, outcome: 8, marker: 0 };
    for (const m of data.marks) {
      const i = laneIndex.get(laneKey(m.lane));
      if (i === undefined) continue;
      const cx = x(m.ms);
      if (cx < LEFT - 4 || cx > width) continue;
      const c = el("svg:circle", { class: "mark kind-" + m.kind, cx, cy: TOP + i * LANE_H + LANE_H / 2 + (offsets[m.kind] || 0) * 0.5,
        r: 5, tabindex: 0, role: "link", "data-seq": m.seq, "data-kind": m.kind, "data-lane": i,
        "aria-label": "entry " + m.seq + ", " + m.kind + ": " + m.text });
      c.append(el("svg:title", { text: "#" + m.seq + " " + m.at + "\n" + m.text }));
      svg.append(c);
    }
  } else {
    const bw = data.bucket_ms;
    const kindsPerLane = KINDS.length;
    for (const b of data.buckets) {
      const i = laneIndex.get(laneKey(b.lane));
      if (i === undefined) continue;
      const x0 = x(b.start_ms), x1 = x(b.start_ms + bw);
      if (x1 < LEFT || x0 > width) continue;
      const k = KINDS.indexOf(b.kind);
      const h = (LANE_H - 6) / kindsPerLane;
      const r = el("svg:rect", { class: "bucket kind-" + b.kind, x: Math.max(x0, LEFT), y: TOP + i * LANE_H + 3 + k * h,
        width: Math.max(x1 - Math.max(x0, LEFT) - 1, 1), height: Math.max(h - 0.5, 1), tabindex: 0, role: "button",
        "data-count": b.count, "data-start": b.start_ms, "data-kind": b.kind,
        "aria-label": b.count + " " + b.kind + " entries from " + iso(b.start_ms) + "; Enter zooms in" });
      r.append(el("svg:title", { text: b.count + " " + b.kind + "(s) from " + iso(b.start_ms) }));
      svg.append(r);
    }
  }
  box.replaceChildren(svg);
  wireTimeline(svg, x, width);
}

function wireTimeline(svg, x, width) {
  const toMs = (clientX) => {
    const rect = svg.getBoundingClientRect();
    const px = ((clientX - rect.left) / rect.width) * width;
    return T.from + ((px - LEFT) / (width - LEFT - 10)) * (T.to - T.from);
  };
  svg.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    zoom(ev.deltaY > 0 ? 1.25 : 0.8, toMs(ev.clientX));
  }, { passive: false });
  let drag = null;
  svg.addEventListener("pointerdown", (ev) => {
    if (ev.target.classList.contains("mark") || ev.target.classList.contains("bucket")) return;
    drag = { x: ev.clientX, from: T.from, to: T.to };
    svg.classList.add("dragging");
    svg.setPointerCapture(ev.pointerId);
  });
  svg.addEventListener("pointermove", (ev) => {
    if (!drag) return;
    const rect = svg.getBoundingClientRect();
    const frac = (ev.clientX - drag.x) / rect.width * (width / (width - LEFT - 10));
    const d = (drag.to - drag.from) * frac;
    T.from = drag.from - d; T.to = drag.to - d;
    drawTimeline(T.data, true);
    drag.moved = true;
  });
  const end = () => {
    if (!drag) return;
    const moved = drag.moved;
    drag = null;
    svg.classList.remove("dragging");
    if (moved) setWindow(T.from, T.to);
  };
  svg.addEventListener("pointerup", end);
  svg.addEventListener("pointercancel", end);
  svg.addEventListener("click", (ev) => {
    const t = ev.target;
    if (t.classList.contains("mark")) go("/entry/" + t.dataset.seq);
    else if (t.classList.contains("bucket")) zoomToBucket(t);
  });
  svg.addEventListener("keydown", (ev) => {
    const t = ev.target;
    const onMark = t.classList && (t.classList.contains("mark") || t.classList.contains("bucket"));
    if (ev.key === "Enter" && onMark) {
      ev.preventDefault();
      if (t.classList.contains("mark")) go("/entry/" + t.dataset.seq); else zoomToBucket(t);
    } else if (ev.key === "+" || ev.key === "=") { ev.preventDefault(); zoom(0.5); }
    else if (ev.key === "-" || ev.key === "_") { ev.preventDefault(); zoom(2); }
    else if (onMark && ["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown"].includes(ev.key)) {
      ev.preventDefault();
      moveFocus(svg, t, ev.key);
    } else if (ev.key === "ArrowLeft") { ev.preventDefault(); pan(-0.2); }
    else if (ev.key === "ArrowRight") { ev.preventDefault(); pan(0.2); }
  });
}

function zoomToBucket(r) {
  const start = Number(r.dataset.start);
  setWindow(start, start + T.data.bucket_ms);
}

function moveFocus(svg, t, key) {
  const all = [...svg.querySelectorAll(".mark, .bucket")];
  const cx = (e) => Number(e.getAttribute("cx") || e.getAttribute("x"));
  const cy = (e) => Number(e.getAttribute("cy") || e.getAttribute("y"));
  let best = null, bestD = Infinity;
  for (const e of all) {
    if (e === t) continue;
    const dx = cx(e) - cx(t), dy = cy(e) - cy(t);
    let ok, d;
    if (key === "ArrowRight") { ok = dx > 0 || (dx === 0 && Number(e.dataset.seq) > Number(t.dataset.seq)); d = Math.abs(dx) + Math.abs(dy) * 4; }
    else if (key === "ArrowLeft") { ok = dx < 0 || (dx === 0 && Number(e.dataset.seq) < Number(t.dataset.seq)); d = Math.abs(dx) + Math.abs(dy) * 4; }
    else if (key === "ArrowDown") { ok = dy > 4; d = Math.abs(dy) + Math.abs(dx) / 4; }
    else { ok = dy < -4; d = Math.abs(dy) + Math.abs(dx) / 4; }
    if (ok && d < bestD) { best = e; bestD = d; }
  }
  if (best) best.focus();
}

// ---------------------------------------------------------------------------------------------
// An entry and its chain

function node(kind, title, lines, seq, current) {
  const n = el("div", { class: "node " + kind + (current ? " current" : ""), "data-seq": seq },
    seq ? el("a", { href: "/entry/" + seq }, title) : el("strong", { text: title }));
  for (const l of lines.filter(Boolean)) n.append(el("div", { text: l }));
  return n;
}

async function entryView(seq) {
  const v = view();
  v.replaceChildren(el("p", { class: "muted", text: "Loading entry " + seq + "…" }));
  let d;
  try { d = await api("/api/entry/" + seq); } catch (e) { return showError(v, e); }
  document.title = "Entry " + d.seq + " · logbook";
  const c = d.chain;
  const cur = Number(d.seq);
  const cols = [];
  const events = el("div", { class: "col", id: "chain-events" }, el("h3", { text: "Events read" }));
  for (const b of c.events) {
    if (b.event) events.append(node("event", "event #" + b.event.seq, [b.key, "rv " + b.event.resource_version + " · " + b.event.change, b.event.at], b.event.seq, b.event.seq === cur));
    else if (b.pending_action) events.append(node("action", "pending action", [b.pending_action.action_id], b.pending_action.seq, false));
    else events.append(node("event", b.key, ["rv " + (b.resource_version || "?") + ": no such event found"], null, false));
  }
  if (c.events.length === 0) events.append(el("p", { class: "muted", text: "none recorded" }));
  cols.push(events);
  const plan = el("div", { class: "col", id: "chain-plan" }, el("h3", { text: "Plan" }));
  if (c.plan) plan.append(node("plan", "plan #" + c.plan.seq, ["read up to #" + c.plan.upto_seq, "reconciler " + c.plan.reconciler,
    "scope " + (c.plan.scope.length ? c.plan.scope.join(", ") : "the whole world"), c.plan.action_count + " action(s)", c.plan.at], c.plan.seq, c.plan.seq === cur));
  else plan.append(el("p", { class: "muted", text: "no plan" }));
  cols.push(plan);
  const actions = el("div", { class: "col", id: "chain-actions" }, el("h3", { text: "Actions" }));
  const outcomes = el("div", { class: "col", id: "chain-outcomes" }, el("h3", { text: "Outcomes" }));
  const next = el("div", { class: "col", id: "chain-next" }, el("h3", { text: "Next observed" }));
  for (const a of c.actions) {
    actions.append(node("action", "action #" + a.seq, [a.verb + " " + a.target, a.reason, "id " + a.action_id], a.seq, a.seq === cur));
    for (const o of a.outcomes) {
      outcomes.append(node("outcome", "outcome #" + o.seq, [o.result + " by " + o.executor + " (attempt " + o.attempt + ")",
        o.resource_version ? "resourceVersion " + o.resource_version : null, "Audit-ID " + o.audit_id, o.message], o.seq, o.seq === cur));
    }
    if (a.outcomes.length === 0) outcomes.append(el("p", { class: "muted", text: "no outcome for " + a.action_id }));
    if (a.next_observed) next.append(node("event", "event #" + a.next_observed.seq, [a.target, "rv " + a.next_observed.resource_version + " · " + a.next_observed.change], a.next_observed.seq, a.next_observed.seq === cur));
    else next.append(el("p", { class: "muted", text: a.target + ": not observed since" }));
  }
  if (c.actions.length === 0) actions.append(el("p", { class: "muted", text: "no action" }));
  cols.push(actions, outcomes, next);
  const graph = el("div", { class: "chain", id: "chain", role: "list", "aria-label": "The entry's chain" });
  cols.forEach((col, i) => { if (i) graph.append(el("span", { class: "arrow", "aria-hidden": "true", text: "→" })); graph.append(col); });
  const nav = el("p", {},
    cur > 1 ? el("a", { href: "/entry/" + (cur - 1), id: "prev" }, "← #" + (cur - 1)) : null, " ",
    cur < d.last_seq ? el("a", { href: "/entry/" + (cur + 1), id: "next" }, "#" + (cur + 1) + " →") : null, " · ",
    d.object ? el("a", { href: d.object, id: "object-link" }, "object history") : null, " · ",
    el("a", { href: "/state?at=" + d.seq }, "state at this entry"), " · ",
    el("a", { href: "/timeline?from=" + encodeURIComponent(new Date(Date.parse(d.at) - 5000).toISOString()) + "&to=" + encodeURIComponent(new Date(Date.parse(d.at) + 5000).toISOString()) }, "timeline around it"));
  put(v,
    el("h1", { id: "entry-title", text: "Entry " + d.seq + " · " + d.kind }),
    el("p", {}, el("code", { id: "entry-line", text: d.line }), el("span", { class: "muted", text: "  " + d.at })),
    nav, graph,
    c.notes.length ? el("ul", { id: "chain-notes" }, c.notes.map((n) => el("li", { text: n }))) : null,
    el("h2", { text: "Why (as logbook audit why)" }),
    d.why.length ? el("pre", { id: "why", text: d.why.join("\n") }) : el("p", { class: "muted", text: "This entry is about no object." }),
    el("details", {}, el("summary", { text: "The entry as recorded" }), el("pre", { id: "entry-body", text: JSON.stringify(d.body, null, 2) })));
  v.focus();
}

// ---------------------------------------------------------------------------------------------
// Object history

async function objectView(key, q) {
  const v = view();
  v.replaceChildren(el("p", { class: "muted", text: "Loading…" }));
  let d;
  try { d = await api("/api/object/" + key); } catch (e) { return showError(v, e); }
  document.title = d.object + " · logbook";
  const vs = d.versions;
  let a = q.get("a") || (vs.length > 1 ? vs[vs.length - 2].seq : vs[0].seq);
  let b = q.get("b") || vs[vs.length - 1].seq;
  const rows = vs.map((x) => el("tr", { "data-seq": x.seq },
    el("td", {}, el("input", { type: "radio", name: "a", value: x.seq, "aria-label": "compare from #" + x.seq, checked: String(x.seq) === String(a) })),
    el("td", {}, el("input", { type: "radio", name: "b", value: x.seq, "aria-label": "compare to #" + x.seq, checked: String(x.seq) === String(b) })),
    el("td", {}, el("a", { href: "/entry/" + x.seq }, "#" + x.seq)),
    el("td", { text: x.at }), el("td", { text: x.change + (x.synthesized ? " (vanished)" : "") }), el("td", { text: x.resource_version })));
  const form = el("form", { id: "versions" },
    el("table", {}, el("thead", {}, el("tr", {}, ["A", "B", "entry", "recorded", "change", "resourceVersion"].map((h) => el("th", { text: h })))), el("tbody", {}, rows)),
    el("p", {}, el("button", { type: "submit", id: "compare" }, "Compare A → B")));
  const out = el("div", { id: "diff-out" });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const fd = new FormData(form);
    a = fd.get("a"); b = fd.get("b");
    history.replaceState(null, "", location.pathname + "?a=" + a + "&b=" + b);
    showDiff(key, a, b, out);
  });
  v.replaceChildren(el("h1", { id: "object-title", text: d.object }),
    el("p", { class: "muted", text: d.total + " observed version(s)" + (d.total > vs.length ? ", the newest " + vs.length + " listed" : "") +
      ". Pick two and compare: resourceVersion, managedFields, timestamps, uid and generation are left out." }),
    form, out);
  if (vs.length > 1 || q.get("a")) showDiff(key, a, b, out);
}

async function showDiff(key, a, b, out) {
  let d;
  try { d = await api("/api/diff/" + key + "?a=" + encodeURIComponent(a) + "&b=" + encodeURIComponent(b)); } catch (e) { return showError(out, e); }
  const show = (x) => x === null || x === undefined ? "(absent)" : JSON.stringify(x);
  out.replaceChildren(el("h2", { text: "#" + a + " → #" + b }),
    d.changes.length === 0 ? el("p", { id: "diff-empty", text: "No field changed (server noise aside)." }) :
      el("table", { id: "diff" }, el("thead", {}, el("tr", {}, el("th", { text: "field" }), el("th", { text: "#" + a }), el("th", { text: "#" + b }))),
        el("tbody", {}, d.changes.map((c) => el("tr", { class: "change", "data-path": c.path },
          el("td", { class: "path", text: c.path }), el("td", { class: "from", text: show(c.from) }), el("td", { class: "to", text: show(c.to) }))))));
}

// ---------------------------------------------------------------------------------------------
// State at a point

async function stateView(q) {
  const v = view();
  const form = el("form", { class: "filters", id: "state-form" },
    el("label", {}, "At (seq or RFC 3339 time)", el("input", { name: "at", value: q.get("at") || "", size: 26, placeholder: "end of the log" })),
    el("label", {}, "Namespace", el("input", { name: "ns", value: q.get("ns") || "", size: 10 })),
    el("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const fd = new FormData(form), p = new URLSearchParams();
    for (const k of ["at", "ns"]) if ((fd.get(k) || "").trim()) p.set(k, fd.get(k).trim());
    go("/state" + (p.toString() ? "?" + p : ""));
  });
  const out = el("div", { id: "state-out" }, el("p", { class: "muted", text: "Folding the log…" }));
  v.replaceChildren(el("h1", { text: "State at a point" }), form, out);
  const p = new URLSearchParams();
  if (q.get("at")) p.set("at", q.get("at"));
  if (q.get("ns")) p.set("ns", q.get("ns"));
  let d;
  try { d = await api("/api/state?" + p); } catch (e) { return showError(out, e); }
  const items = d.document.items || [];
  put(out,
    el("p", {}, "As of entry ", el("a", { href: "/entry/" + d.seq }, "#" + d.seq), " (" + (d.at || "") + "): " + d.total + " object(s)" +
      (d.shown < d.total ? ", the first " + d.shown + " shown" : "") + (d.started_from ? "; folded from the checkpoint at #" + d.started_from : "")),
    d.notes.length ? el("ul", {}, d.notes.map((n) => el("li", { text: n }))) : null,
    el("table", { id: "state-items" }, el("thead", {}, el("tr", {}, ["kind", "namespace", "name", "note", ""].map((h) => el("th", { text: h })))),
      el("tbody", {}, items.map((o) => {
        const md = o.metadata || {}, ann = md.annotations || {};
        const note = ann["logbook.dev/pending-action"] || ann["logbook.dev/replay-state"] || "";
        return el("tr", {}, el("td", { text: o.kind }), el("td", { text: md.namespace || "" }),
          el("td", {}, el("a", { href: "/object/" + o.apiVersion + "/" + o.kind + "/" + (md.namespace || "") + "/" + md.name }, md.name)),
          el("td", { text: note }), el("td", {}, el("details", {}, el("summary", { text: "object" }), el("pre", { text: JSON.stringify(o, null, 2) }))));
      }))));
}

// ---------------------------------------------------------------------------------------------
// Replay results

async function verifyView() {
  const v = view();
  const out = el("div", { id: "verify-out" }, el("p", { class: "muted", text: "Replaying every plan and checking the hash chain…" }));
  v.replaceChildren(el("h1", { text: "Verify" }), el("p", { class: "muted", text: "logbook-replay verify: every recorded plan recomputed from the prefix it read, and the hash chain checked." }), out);
  let d;
  try { d = await api("/api/verify"); } catch (e) { return showError(out, e); }
  const r = d.report;
  const parts = [el("p", { id: "verify-verdict", class: d.ok ? "" : "error", text: d.ok ?
    "OK: " + r.plans_identical + " of " + r.plans + " plans recomputed identically; hash chain intact (" + r.entries + " entries, digest " + r.digest + ")" :
    "Problem found" + (r.chain_problem ? ": " + r.chain_problem : "") + (r.stopped ? ": " + r.stopped : "") })];
  if (r.divergence) {
    const dv = r.divergence;
    parts.push(el("h2", { text: "First divergence: " + dv.kind + " at " }, el("a", { href: "/entry/" + dv.plan_seq }, "#" + dv.plan_seq)),
      el("p", { text: dv.why }), el("pre", { id: "divergence-diff", text: dv.diff }),
      el("ul", {}, dv.last_events.map(([s, t]) => el("li", {}, el("a", { href: "/entry/" + s }, "#" + s), " " + t))));
  }
  for (const n of r.notes || []) parts.push(el("p", { class: "muted", text: n }));
  out.replaceChildren(...parts);
}

function whatIfView() {
  const v = view();
  const text = el("textarea", { id: "config", rows: 6, cols: 60, "aria-label": "Configuration (YAML or JSON)",
    placeholder: "ingressClass: nginx\ndefaultRequests: {cpu: 100m, memory: 128Mi}" });
  const file = el("input", { type: "file", id: "config-file", accept: ".yaml,.yml,.json", "aria-label": "Upload a configuration file" });
  file.addEventListener("change", async () => { if (file.files[0]) text.value = await file.files[0].text(); });
  const out = el("div", { id: "whatif-out" });
  const form = el("form", { id: "whatif-form" }, el("p", {}, file), el("p", {}, text),
    el("p", {}, el("button", { type: "submit" }, "Run what-if")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    out.replaceChildren(el("p", { class: "muted", text: "Recomputing every plan…" }));
    let d;
    try { d = await api("/api/what-if", { method: "POST", body: text.value, headers: { "content-type": "text/plain" } }); } catch (e) { return showError(out, e); }
    put(out, el("p", { id: "whatif-verdict", text: d.plans_differing + " of " + d.plans + " plans would have differed" }),
      el("ul", {}, d.plan_changes.map((pc) => el("li", {}, el("a", { href: "/entry/" + pc.plan_seq }, "plan #" + pc.plan_seq), " ",
        el("pre", { text: JSON.stringify(pc, null, 2) })))),
      d.applications.length ? el("p", { text: "Applications affected: " + d.applications.join(", ") }) : null);
  });
  v.replaceChildren(el("h1", { text: "What-if" }),
    el("p", { class: "muted", text: "Upload or write a configuration (the format logbook-replay what-if --config takes: any of ingressClass, pathType, containerName, defaultRequests, livenessProbes). Empty: this build's planner under the log's own configuration." }),
    form, out);
}

initTheme();
api("/api/summary").then((s) => { $("#logpath").textContent = s.path + " · " + s.last_seq + " entries"; }, () => {});
route();
