"use strict";
// The SafeCity Stream console: one page, plain JS. Every read and action goes to /console/api
// (the console passes it to the alert API as the signed-in user); live changes arrive as
// server-sent events naming the alert that changed, whose record is then read from the store.

const SEVERITY_RANK = {critical: 0, high: 1, warning: 2, maintenance: 3, info: 4};
const OPEN = new Set(["firing", "acknowledged"]);
const STATE_COLOUR = {alarm: "#d7263d", offline: "#7a7a7a", faulty: "#f08a24", "low-battery": "#e0c422",
                      online: "#2e9e44", unknown: "#b0b0b0"};
const ACTIONS = {  // what each role may do; the API checks again
  operator: ["ack", "comment"],
  supervisor: ["ack", "comment", "assign", "resolve", "confirm", "reject"],
  admin: ["ack", "comment", "assign", "resolve", "confirm", "reject"],
};
const LEAD_TYPES = new Set(["watchlist-vehicle", "watchlist-person", "watchlist-retro-hit"]);

const state = {me: null, rows: new Map(), filters: {district: "", type: "", status: "firing,acknowledged"},
               seen: new Set(), page: "board", alertId: null};

// ---------------------------------------------------------------- small helpers
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "style") node.style.cssText = v;  // CSSOM: allowed by the page's CSP, unlike a style attribute
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

async function call(method, path, body) {
  const headers = {};
  if (method !== "GET") headers["X-CSRF-Token"] = state.me ? state.me.csrf : "";
  if (body !== undefined && !(body instanceof Blob) && !(body instanceof File)) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(body);
  }
  const resp = await fetch(path, {method, headers, body, credentials: "same-origin"});
  const data = await resp.json().catch(() => ({error: `the console answered ${resp.status}`}));
  if (resp.status === 401 && data.signin) { window.location.replace("/login"); throw new Error("signed out"); }
  return {ok: resp.ok, status: resp.status, data};
}

function ago(iso) {
  if (!iso) return "–";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

function when(iso) { return iso ? new Date(iso).toLocaleString() : "–"; }
function enc(id) { return encodeURIComponent(id); }
function badge(severity) { return el("span", {class: `sev sev-${severity}`}, severity); }
function statusTag(status) { return el("span", {class: `status st-${status}`}, status); }

// ---------------------------------------------------------------- the live feed
function connectLive() {
  const live = document.getElementById("live");
  const source = new EventSource("/console/api/events");
  source.onopen = () => { live.classList.remove("off"); if (state.page === "board") loadBoard(); };
  source.onerror = () => live.classList.add("off");
  source.addEventListener("signout", () => window.location.replace("/login"));
  source.onmessage = async (msg) => {
    const event = JSON.parse(msg.data);
    if (event.resync) { if (state.page === "board") loadBoard(); return; }
    const known = state.rows.get(event.alert_id);
    if (known && known.version >= event.version) return;
    const {ok, data} = await call("GET", `/console/api/alerts/${enc(event.alert_id)}`);
    if (!ok) return;
    upsert(data.current);
    if (state.page === "board") renderRows();
    if (state.page === "alert" && state.alertId === event.alert_id) renderAlert(data);
  };
}

function upsert(row) {
  const isNew = !state.seen.has(row.alert_id + "|" + row.since);
  state.seen.add(row.alert_id + "|" + row.since);
  if (matches(row)) state.rows.set(row.alert_id, row); else state.rows.delete(row.alert_id);
  if (isNew && row.status === "firing" && row.severity === "critical") cue(row);
}

function matches(row) {
  const f = state.filters;
  if (f.status && !f.status.split(",").includes(row.status)) return false;
  if (f.district && row.district !== f.district) return false;
  if (f.type && !row.type.startsWith(f.type.replace(/\*$/, ""))) return false;
  return true;
}

let audio = null;
function cue(row) {
  const banner = document.getElementById("cue");
  banner.textContent = `NEW CRITICAL: ${row.type} at ${row.site || row.device_id} (${row.district || "–"}) · ${row.summary}`;
  banner.classList.remove("hidden");
  banner.classList.add("flash");
  banner.onclick = () => { banner.classList.add("hidden"); location.hash = `#/alert/${enc(row.alert_id)}`; };
  setTimeout(() => banner.classList.remove("flash"), 6000);
  try {  // a short tone; browsers allow it once the user has interacted with the page
    audio = audio || new AudioContext();
    const osc = audio.createOscillator(), gain = audio.createGain();
    osc.frequency.value = 880; gain.gain.value = 0.08;
    osc.connect(gain).connect(audio.destination);
    osc.start(); osc.stop(audio.currentTime + 0.35);
  } catch (e) { /* no sound: the banner is the cue */ }
}

// ---------------------------------------------------------------- the board
async function loadBoard() {
  const q = new URLSearchParams({status: state.filters.status, limit: "500"});
  if (state.filters.district) q.set("district", state.filters.district);
  if (state.filters.type) q.set("type", state.filters.type.endsWith("*") ? state.filters.type : state.filters.type + "*");
  const {ok, data} = await call("GET", `/console/api/alerts?${q}`);
  if (!ok) { showError(data.error); return; }
  state.rows = new Map(data.map((r) => [r.alert_id, r]));
  for (const r of data) state.seen.add(r.alert_id + "|" + r.since);
  renderRows();
}

function boardPage() {
  const main = document.getElementById("main");
  const district = el("select", {id: "filter-district", onchange: (e) => { state.filters.district = e.target.value; loadBoard(); }},
    el("option", {value: ""}, "all districts"));
  const type = el("select", {id: "filter-type", onchange: (e) => { state.filters.type = e.target.value; loadBoard(); }},
    el("option", {value: ""}, "all types"), el("option", {value: "gas-"}, "gas"), el("option", {value: "co-"}, "carbon monoxide"),
    el("option", {value: "watchlist-"}, "watch-list leads"), el("option", {value: "camera-"}, "cameras"),
    el("option", {value: "sensor-"}, "sensors"), el("option", {value: "hotel-"}, "hotels"),
    el("option", {value: "low-battery"}, "batteries"));
  const status = el("select", {id: "filter-status", onchange: (e) => { state.filters.status = e.target.value; loadBoard(); }},
    el("option", {value: "firing,acknowledged"}, "open"), el("option", {value: "firing"}, "not acknowledged"),
    el("option", {value: "acknowledged"}, "acknowledged"),
    el("option", {value: "cleared,resolved,confirmed,rejected"}, "closed"), el("option", {value: ""}, "all"));
  for (const [sel, v] of [[district, state.filters.district], [type, state.filters.type], [status, state.filters.status]]) sel.value = v;
  main.replaceChildren(
    el("section", {class: "toolbar"}, el("h2", {}, "Alerts"), district, type, status,
       el("span", {id: "board-count", class: "muted"})),
    el("table", {class: "board"},
       el("thead", {}, el("tr", {}, ["severity", "status", "type", "where", "district", "age", "count",
                                      "acknowledged by", "assignee", "summary"].map((h) => el("th", {}, h)))),
       el("tbody", {id: "board-rows"})));
  call("GET", "/console/api/devices").then(({ok, data}) => {
    if (!ok) return;
    const names = [...new Set(data.devices.map((d) => d.district).filter(Boolean))].sort();
    for (const n of names) district.append(el("option", {value: n}, n));
    district.value = state.filters.district;
  });
  loadBoard();
}

function renderRows() {
  const body = document.getElementById("board-rows");
  if (!body) return;
  const rows = [...state.rows.values()].filter(matches).sort((a, b) =>
    (SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity]) || (Date.parse(b.first_seen) - Date.parse(a.first_seen)));
  body.replaceChildren(...rows.map((r) => el("tr", {class: `row-${r.status}`, "data-alert": r.alert_id,
      onclick: () => { location.hash = `#/alert/${enc(r.alert_id)}`; }},
    el("td", {}, badge(r.severity)), el("td", {}, statusTag(r.status)), el("td", {}, r.type),
    el("td", {}, r.site || r.device_id), el("td", {}, r.district || "–"), el("td", {title: when(r.first_seen)}, ago(r.first_seen)),
    el("td", {class: "num"}, r.count), el("td", {}, r.acknowledged_by || "–"), el("td", {}, r.assignee || "–"),
    el("td", {class: "summary"}, r.summary))));
  if (!rows.length) body.append(el("tr", {}, el("td", {colspan: 10, class: "muted"}, "no alerts match")));
  document.getElementById("board-count").textContent = `${rows.length} shown`;
}

// ---------------------------------------------------------------- one alert
async function alertPage(alertId) {
  state.alertId = alertId;
  document.getElementById("main").replaceChildren(el("p", {class: "muted"}, "loading …"));
  const {ok, data} = await call("GET", `/console/api/alerts/${enc(alertId)}`);
  if (!ok) { showError(data.error); return; }
  renderAlert(data);
}

function evidence(row, record) {
  const d = record.details || {};
  const parts = [];
  if ("value" in d && "threshold" in d) {
    const share = Math.min(1, Number(d.value) / Math.max(Number(d.threshold) * 1.5, 1e-6));
    parts.push(el("div", {class: "gauge", id: "evidence-reading"},
      el("div", {class: "gauge-label"}, `reading ${d.value} ${d.unit || ""} · alarm level ${d.threshold} ${d.unit || ""}`),
      el("div", {class: "gauge-bar"}, el("div", {class: "gauge-fill", style: `width:${(share * 100).toFixed(0)}%`}),
        el("div", {class: "gauge-mark", style: `left:${(100 / 1.5).toFixed(0)}%`}))));
  }
  if (LEAD_TYPES.has(row.type)) {
    const facts = [["list entry", d.entry_id], ["category", d.category], ["match", d.match], ["score", d.score],
                   ["explanation", d.explanation], ["seen", when(d.seen_at)], ["sightings", d.sightings]];
    if (d.plate_read !== undefined) facts.push(["plate as read", d.plate_read], ["plate as listed", d.plate_listed]);
    if (d.registration_id !== undefined) facts.push(["registration", d.registration_id], ["subject (pseudonym)", d.subject]);
    parts.push(el("dl", {class: "facts", id: "evidence-lead"}, facts.filter(([, v]) => v !== undefined && v !== "")
      .map(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))])));
    parts.push(el("p", {class: "note"}, "A lead for a person to verify against the picture and the record, never an instruction to act."));
  } else {
    const rows = Object.entries(d).filter(([k]) => !["value", "threshold", "unit"].includes(k));
    if (rows.length) parts.push(el("dl", {class: "facts", id: "evidence-details"},
      rows.map(([k, v]) => [el("dt", {}, k), el("dd", {}, typeof v === "number" ? Number(v.toFixed ? v.toFixed(3) : v) : String(v))])));
  }
  if (row.image) {
    parts.push(el("figure", {}, el("img", {id: "evidence-image", alt: "evidence picture",
      src: `/console/api/alerts/${enc(row.alert_id)}/image`,
      onerror: (e) => { e.target.replaceWith(el("p", {class: "muted"}, "picture not available (no longer kept)")); }}),
      el("figcaption", {class: "muted"}, row.type.startsWith("camera-") ? "the camera's frame at the alert" : "checkpoint snapshot")));
  }
  return parts;
}

function renderAlert(data) {
  const row = data.current, record = data.episodes[data.episodes.length - 1];
  const role = state.me.role, allowed = new Set(ACTIONS[role] || []);
  const reason = el("textarea", {id: "action-reason", placeholder: "comment or reason (no names or ID numbers)", maxlength: 500});
  const assignee = el("input", {id: "action-assignee", placeholder: "assign to (user)", maxlength: 64});
  const result = el("p", {id: "action-result", role: "status"});
  const button = (action, label) => el("button", {id: `action-${action}`, "data-action": action,
    disabled: !allowed.has(action) || (!OPEN.has(row.status) && action !== "comment"),
    title: allowed.has(action) ? "" : `a ${role} may not ${action}`,
    onclick: async () => {
      const body = {action, reason: reason.value, assignee: assignee.value, action_id: crypto.randomUUID()};
      const {ok, data: out} = await call("POST", `/console/api/alerts/${enc(row.alert_id)}/actions`, body);
      result.textContent = ok ? `${action}: done` : out.error;
      result.className = ok ? "ok" : "error";
      if (ok) { reason.value = ""; const fresh = await call("GET", `/console/api/alerts/${enc(row.alert_id)}`);
                if (fresh.ok) { upsert(fresh.data.current); renderAlert(fresh.data);
                  document.getElementById("action-result").textContent = `${action}: done`; } }
    }}, label);
  const actions = el("div", {class: "actions"}, reason, assignee,
    el("div", {}, button("ack", "Acknowledge"), button("comment", "Comment"), button("assign", "Assign"),
       button("resolve", "Resolve"), button("confirm", "Confirm lead"), button("reject", "Reject lead")), result);
  let subject = null;
  if (row.type === "watchlist-person" || (row.type === "watchlist-retro-hit" && (record.details || {}).registration_id)) {
    subject = el("button", {id: "open-subject", disabled: !(role === "supervisor" || role === "admin"),
      onclick: () => openSubject(row.alert_id)}, "Show the guest's record (supervisor, audited)");
  }
  const timeline = el("ol", {id: "alert-timeline", class: "timeline"});
  for (const ep of data.episodes) {
    for (const s of ep.steps || []) {
      timeline.append(el("li", {}, el("time", {}, when(s.at)), " ", el("b", {}, s.change), ` by ${s.by}`,
        s.assignee ? ` → ${s.assignee}` : "", s.comment ? el("q", {}, s.comment) : ""));
    }
  }
  document.getElementById("main").replaceChildren(
    el("p", {}, el("a", {href: "#/board"}, "← alerts")),
    el("section", {class: "alert-head", id: "alert-head"}, badge(row.severity), " ", statusTag(row.status),
       el("h2", {}, `${row.type} · ${row.site || row.device_id}`),
       el("p", {class: "summary", id: "alert-summary"}, row.summary),
       el("p", {class: "muted"}, `device ${row.device_id} · district ${row.district || "–"} · grid ${row.grid || "–"} · `,
          `first ${when(row.first_seen)} · last ${when(row.last_seen)} · ${row.count}× · `,
          row.acknowledged_by ? `acknowledged by ${row.acknowledged_by}` : "not acknowledged",
          row.assignee ? ` · assigned to ${row.assignee}` : "")),
    el("div", {class: "columns"},
       el("section", {class: "card"}, el("h3", {}, "Evidence"), evidence(row, record), subject),
       el("section", {class: "card"}, el("h3", {}, "Actions"), actions, el("h3", {}, "Timeline"), timeline)));
}

function openSubject(alertId) {
  const reason = el("textarea", {id: "subject-reason", placeholder: "why you open it (kept in the audit trail)", maxlength: 500});
  const out = el("div", {id: "subject-out"});
  modal(el("h3", {}, "Open the guest's record"),
    el("p", {class: "muted"}, "Your name, the lead and your reason are written to the audit trail before the record is shown."),
    reason, el("div", {},
      el("button", {id: "subject-go", onclick: async () => {
        const {ok, data} = await call("POST", `/console/api/alerts/${enc(alertId)}/subject`, {reason: reason.value});
        out.replaceChildren(ok ? el("dl", {class: "facts"}, Object.entries(data).map(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v ?? "–"))]))
                               : el("p", {class: "error"}, data.error));
      }}, "Open"),
      el("button", {class: "link", onclick: closeModal}, "Close")), out);
}

function modal(...children) {
  document.getElementById("modal-body").replaceChildren(...children);
  document.getElementById("modal").classList.remove("hidden");
}
function closeModal() {  // the record leaves the page with the dialog
  document.getElementById("modal-body").replaceChildren();
  document.getElementById("modal").classList.add("hidden");
}

// ---------------------------------------------------------------- map
async function mapPage() {
  const main = document.getElementById("main");
  main.replaceChildren(el("section", {class: "toolbar"}, el("h2", {}, "Map")), el("div", {id: "map-wrap"}));
  const {ok, data} = await call("GET", "/console/api/map");
  if (!ok) { showError(data.error); return; }
  drawMap(document.getElementById("map-wrap"), data);
}

function mercator(lat, lon) {
  const s = Math.sin(lat * Math.PI / 180);
  return [(lon + 180) / 360, 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)];
}

function drawMap(wrap, data) {
  const W = Math.min(wrap.clientWidth || 1100, 1400), H = 640, NS = "http://www.w3.org/2000/svg";
  const devices = data.devices;
  const pts = devices.map((d) => mercator(d.lat, d.lon));
  const outline = (data.districts && data.districts.features) || [];
  const outlinePts = outline.flatMap((f) => rings(f.geometry).flat().map(([lon, lat]) => mercator(lat, lon)));
  const all = pts.concat(outlinePts);
  if (!all.length) { wrap.replaceChildren(el("p", {class: "muted", id: "map-ready"}, "no device in the registry has coordinates")); return; }
  let [x0, y0, x1, y1] = [Math.min(...all.map((p) => p[0])), Math.min(...all.map((p) => p[1])),
                          Math.max(...all.map((p) => p[0])), Math.max(...all.map((p) => p[1]))];
  const pad = Math.max(x1 - x0, y1 - y0, 1e-5) * 0.08;
  x0 -= pad; y0 -= pad; x1 += pad; y1 += pad;
  const scale = Math.min(W / (x1 - x0), H / (y1 - y0));
  const px = ([x, y]) => [(x - x0) * scale, (y - y0) * scale];
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("width", W); svg.setAttribute("height", H); svg.setAttribute("id", "map-svg"); svg.classList.add("map");
  const add = (tag, attrs, parent = svg) => { const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v); parent.append(n); return n; };
  if (data.tile_url) {  // the command center's own tiles, at the zoom that fits
    const z = Math.max(0, Math.min(19, Math.floor(Math.log2(scale / 256))));
    const n = 2 ** z, size = scale / n;
    for (let tx = Math.floor(x0 * n); tx <= Math.floor(x1 * n); tx++) {
      for (let ty = Math.floor(y0 * n); ty <= Math.floor(y1 * n); ty++) {
        const [left, top] = px([tx / n, ty / n]);
        add("image", {href: data.tile_url.replace("{z}", z).replace("{x}", tx).replace("{y}", ty),
                      x: left, y: top, width: size, height: size});
      }
    }
  } else {
    add("rect", {x: 0, y: 0, width: W, height: H, class: "map-bg"});
  }
  for (const f of outline) {
    for (const ring of rings(f.geometry)) {
      add("polygon", {points: ring.map(([lon, lat]) => px(mercator(lat, lon)).join(",")).join(" "), class: "district"});
    }
  }
  // grouped: one mark per grid cell (or per device when there are few), coloured by its worst state
  const groups = new Map();
  const grouped = devices.length > 1500;
  devices.forEach((d, i) => {
    const key = grouped ? `${d.district}|${d.grid || d.site}` : d.id;
    const g = groups.get(key) || {members: [], xy: [0, 0], district: d.district, grid: d.grid};
    g.members.push(d); g.xy[0] += pts[i][0]; g.xy[1] += pts[i][1]; groups.set(key, g);
  });
  const rank = (s) => ["alarm", "offline", "faulty", "low-battery", "online", "unknown"].indexOf(s);
  for (const [key, g] of groups) {
    const worst = g.members.reduce((a, d) => (rank(d.state) < rank(a) ? d.state : a), "unknown");
    const [cx, cy] = px([g.xy[0] / g.members.length, g.xy[1] / g.members.length]);
    const alerts = g.members.reduce((n, d) => n + d.alerts.length, 0);
    const r = grouped ? 4 + Math.sqrt(g.members.length) : 6;
    if (alerts) add("circle", {cx, cy, r: r + 6, class: "alert-ring"});
    const dot = add("circle", {cx, cy, r, fill: STATE_COLOUR[worst] || "#999", class: "device", "data-device": key,
                               "data-state": worst});
    const title = document.createElementNS(NS, "title");
    title.textContent = grouped ? `${g.district} ${g.grid}: ${g.members.length} devices, ${alerts} open alerts`
      : `${g.members[0].id} (${g.members[0].kind}) · ${worst} · ${g.members[0].site} · ${g.members[0].district}` +
        (alerts ? ` · ${alerts} open alert(s)` : "");
    dot.append(title);
    if (!grouped && alerts) dot.addEventListener("click", () => { location.hash = `#/alert/${enc(g.members[0].alerts[0].alert_id)}`; });
  }
  const centres = new Map();  // each district's name at the middle of its devices
  devices.forEach((d, i) => { const c = centres.get(d.district) || [0, 0, 0];
    c[0] += pts[i][0]; c[1] += pts[i][1]; c[2]++; centres.set(d.district, c); });
  for (const [name, [sx, sy, n]] of centres) {
    if (!name) continue;
    const [tx, ty] = px([sx / n, sy / n]);
    add("text", {x: tx, y: ty - 14, class: "district-label", "text-anchor": "middle"}).textContent = name;
  }
  const byDistrict = new Map();
  for (const d of devices) {
    const s = byDistrict.get(d.district || "–") || {devices: 0, alerts: 0, problems: 0};
    s.devices++; s.alerts += d.alerts.length; if (d.state !== "online") s.problems++;
    byDistrict.set(d.district || "–", s);
  }
  const legend = el("div", {class: "legend"}, Object.entries(STATE_COLOUR).map(([s, c]) =>
    el("span", {}, el("i", {class: "swatch", style: `background:${c}`}), s)), el("span", {}, el("i", {class: "swatch ring"}), "open alert"));
  const districts = el("table", {class: "small"}, el("thead", {}, el("tr", {}, ["district", "devices", "not healthy", "open alerts"].map((h) => el("th", {}, h)))),
    el("tbody", {}, [...byDistrict].sort().map(([n, s]) => el("tr", {}, el("td", {}, n), el("td", {class: "num"}, s.devices),
      el("td", {class: "num"}, s.problems), el("td", {class: "num"}, s.alerts)))));
  wrap.replaceChildren(legend, svg, el("p", {class: "muted"}, `${devices.length} devices placed` +
    (data.unplaced ? `, ${data.unplaced} without coordinates` : "") + (grouped ? " · grouped by grid cell" : "")),
    districts, el("span", {id: "map-ready"}));
}

function rings(geometry) {
  if (!geometry) return [];
  if (geometry.type === "Polygon") return geometry.coordinates;
  if (geometry.type === "MultiPolygon") return geometry.coordinates.flat();
  return [];
}

// ---------------------------------------------------------------- devices
async function devicesPage() {
  const main = document.getElementById("main");
  main.replaceChildren(el("p", {class: "muted"}, "loading …"));
  const {ok, data} = await call("GET", "/console/api/devices");
  if (!ok) { showError(data.error); return; }
  const kinds = [...new Set(data.devices.map((d) => d.kind))].sort();
  const summary = el("table", {class: "small", id: "device-summary"},
    el("thead", {}, el("tr", {}, el("th", {}, "kind"), data.states.map((s) => el("th", {}, s)), el("th", {}, "total"))),
    el("tbody", {}, kinds.map((k) => { const of = data.devices.filter((d) => d.kind === k);
      return el("tr", {}, el("td", {}, k), data.states.map((s) => el("td", {class: `num state-${s}`}, of.filter((d) => d.state === s).length)),
                el("td", {class: "num"}, of.length)); })));
  const stateSel = el("select", {id: "device-state"}, el("option", {value: ""}, "every state"), data.states.map((s) => el("option", {value: s}, s)));
  const kindSel = el("select", {id: "device-kind"}, el("option", {value: ""}, "every kind"), kinds.map((k) => el("option", {value: k}, k)));
  const body = el("tbody", {id: "device-rows"});
  const render = () => body.replaceChildren(...data.devices.filter((d) => (!stateSel.value || d.state === stateSel.value) &&
      (!kindSel.value || d.kind === kindSel.value)).slice(0, 2000).map((d) =>
    el("tr", {"data-device": d.id}, el("td", {}, d.id), el("td", {}, d.kind),
       el("td", {}, el("span", {class: `state state-${d.state}`}, d.state)), el("td", {}, d.district || "–"), el("td", {}, d.site),
       el("td", {title: when(d.last_seen)}, d.last_seen ? ago(d.last_seen) + " ago" : "never"),
       el("td", {class: "num"}, d.battery == null ? "–" : `${Math.round(d.battery)} %`),
       el("td", {class: "num"}, d.on_time_share == null ? "–" : `${Math.round(d.on_time_share * 100)} % of ${d.registrations_24h}`),
       el("td", {}, d.alerts.map((a) => el("a", {href: `#/alert/${enc(a.alert_id)}`, class: `sev sev-${a.severity}`}, a.type))))));
  stateSel.onchange = render; kindSel.onchange = render;
  render();
  main.replaceChildren(el("section", {class: "toolbar"}, el("h2", {}, "Devices"), kindSel, stateSel), summary,
    el("table", {class: "board"}, el("thead", {}, el("tr", {}, ["device", "kind", "state", "district", "site", "last seen",
      "battery", "hotel uploads on time (24 h)", "open alerts"].map((h) => el("th", {}, h)))), body),
    el("span", {id: "devices-ready"}));
}

// ---------------------------------------------------------------- admin
async function usersPage() {
  const main = document.getElementById("main");
  const {ok, data} = await call("GET", "/console/api/users");
  if (!ok) { showError(data.error); return; }
  const name = el("input", {id: "user-name", placeholder: "name", maxlength: 64});
  const role = el("select", {id: "user-role"}, ["operator", "supervisor", "admin"].map((r) => el("option", {value: r}, r)));
  const password = el("input", {id: "user-password", type: "password", placeholder: "initial password (12+ characters)", autocomplete: "new-password"});
  const result = el("p", {id: "user-result"});
  main.replaceChildren(el("h2", {}, "Users"),
    el("table", {class: "small"}, el("thead", {}, el("tr", {}, ["name", "role", "console password", "since"].map((h) => el("th", {}, h)))),
      el("tbody", {}, data.map((u) => el("tr", {}, el("td", {}, u.name), el("td", {}, u.role), el("td", {}, u.password ? "yes" : "no (API only)"),
        el("td", {}, when(u.created_at)))))),
    el("h3", {}, "Add a user, or change one's role and password (audited)"), name, role, password,
    el("button", {id: "user-save", onclick: async () => {
      const r = await call("POST", "/console/api/users", {name: name.value, role: role.value, password: password.value});
      password.value = "";
      result.textContent = r.ok ? `${r.data.name}: ${r.data.role}` : r.data.error;
      result.className = r.ok ? "ok" : "error";
      if (r.ok) setTimeout(usersPage, 800);
    }}, "Save"), result);
}

function listsPage() {
  const kind = el("select", {id: "list-kind"}, el("option", {value: "vehicles"}, "vehicles"), el("option", {value: "persons"}, "persons"));
  const file = el("input", {id: "list-file", type: "file", accept: ".csv,text/csv"});
  const result = el("p", {id: "list-result"});
  document.getElementById("main").replaceChildren(el("h2", {}, "Import a watch list (audited)"),
    el("p", {class: "muted"}, "The CSV file is checked whole; entries new or changed since the last import are listed and hunted for in recent events."),
    kind, file, el("button", {id: "list-import", onclick: async () => {
      if (!file.files.length) { result.textContent = "choose a file"; return; }
      result.textContent = "importing …";
      const r = await call("POST", `/console/api/watchlists/${kind.value}?source=${enc(file.files[0].name)}`, file.files[0]);
      result.textContent = r.ok ? `${r.data.count} entries listed (${r.data.detail || ""})` : r.data.error;
      result.className = r.ok ? "ok" : "error";
    }}, "Import"), result);
}

// ---------------------------------------------------------------- routing and start
function showError(message) {
  document.getElementById("main").replaceChildren(el("p", {class: "error"}, message || "something went wrong"));
}

function route() {
  const hash = location.hash || "#/board";
  const [, page, ...rest] = hash.split("/");
  state.page = page || "board";
  state.alertId = null;
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === state.page));
  if (state.page === "alert") alertPage(decodeURIComponent(rest.join("/")));
  else if (state.page === "map") mapPage();
  else if (state.page === "devices") devicesPage();
  else if (state.page === "users") usersPage();
  else if (state.page === "lists") listsPage();
  else { state.page = "board"; boardPage(); }
}

async function start() {
  const {ok, data} = await call("GET", "/console/api/me");
  if (!ok) return;
  state.me = data;
  document.getElementById("who").textContent = `${data.name} · ${data.role}`;
  document.body.classList.toggle("is-admin", data.role === "admin");
  document.getElementById("signout").onclick = async () => {
    await call("POST", "/console/api/signout"); window.location.replace("/login");
  };
  document.getElementById("modal").addEventListener("click", (e) => { if (e.target.id === "modal") closeModal(); });
  window.addEventListener("hashchange", route);
  route();
  connectLive();
  setInterval(() => { if (state.page === "board") renderRows(); }, 30000);  // ages move on
}

start();
