// hub console: polls the admin REST API and renders tables and SVG charts.
// Credential: a token from the URL fragment (#token=...) as Bearer, else the
// browser's Basic login for this origin.
"use strict";
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("token")) sessionStorage.setItem("hubToken", fragment.get("token"));
const token = sessionStorage.getItem("hubToken");

async function api(path, opts = {}) {
  const headers = Object.assign({ "Content-Type": "application/json" }, opts.headers || {});
  if (token) headers["Authorization"] = "Bearer " + token;
  // location.origin: a page opened as http://user:pass@host/ must not put
  // the credentials into fetch URLs (fetch rejects that).
  const r = await fetch(location.origin + path, Object.assign({}, opts, { headers, credentials: "same-origin" }));
  if (r.status === 204) return null;
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((body.error || r.status) + ": " + (body.message || ""));
  return body;
}

const $ = (s) => document.querySelector(s);
const esc = (v) => String(v ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
const fmtTime = (ms) => (ms ? new Date(ms).toISOString().replace("T", " ").replace("Z", "") : "");
function rows(sel, items, fn) {
  $(sel + " tbody").innerHTML = items.map(fn).join("") || '<tr><td colspan="10"><i>none</i></td></tr>';
}

// ---- tabs ----
let current = "dashboard";
document.querySelectorAll("nav a").forEach((a) =>
  a.addEventListener("click", (e) => {
    e.preventDefault();
    current = a.dataset.tab;
    document.querySelectorAll("nav a").forEach((x) => x.classList.toggle("active", x === a));
    document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.id === current));
    refreshTab();
  })
);

// ---- dashboard ----
const history = []; // {t, in, out, drop, conns}
let last = null;
function line(points, max, w, h, cls) {
  if (points.length < 2) return "";
  const step = w / (60 - 1);
  const pts = points.map((v, i) => `${(i + 60 - points.length) * step},${h - (v / (max || 1)) * (h - 10) - 2}`);
  return `<polyline class="${cls}" stroke="currentColor" points="${pts.join(" ")}"/>`;
}
function drawCharts() {
  const h = history.slice(-60);
  const max = Math.max(1, ...h.map((p) => Math.max(p.in, p.out, p.drop)));
  $("#chart-rates").innerHTML =
    line(h.map((p) => p.in), max, 600, 160, "in") + line(h.map((p) => p.out), max, 600, 160, "out") +
    line(h.map((p) => p.drop), max, 600, 160, "drop") + `<text x="4" y="12" font-size="10">${max.toFixed(1)}/s</text>`;
  const cmax = Math.max(1, ...h.map((p) => p.conns));
  $("#chart-conns").innerHTML = line(h.map((p) => p.conns), cmax, 600, 100, "in") + `<text x="4" y="12" font-size="10">${cmax}</text>`;
}
async function dashboard() {
  const s = await api("/api/v1/stats");
  const dropped = Object.values(s.dropped).reduce((a, b) => a + b, 0);
  const now = Date.now();
  if (last) {
    const dt = Math.max(0.001, (now - last.t) / 1000);
    history.push({ in: (s.messages_in - last.in) / dt, out: (s.messages_out - last.out) / dt, drop: (dropped - last.drop) / dt, conns: s.connections });
    if (history.length > 120) history.shift();
    const p = history[history.length - 1];
    $("#rate-in").textContent = p.in.toFixed(1);
    $("#rate-out").textContent = p.out.toFixed(1);
  }
  last = { t: now, in: s.messages_in, out: s.messages_out, drop: dropped };
  $("#connections").textContent = s.connections;
  $("#sessions").textContent = s.sessions;
  $("#subscriptions").textContent = s.subscriptions;
  $("#retained").textContent = s.retained;
  $("#dropped").textContent = dropped;
  $("#queue-lag").textContent = s.queue.enabled ? s.queue.total_lag : "off";
  const badge = $("#alert-count");
  badge.textContent = s.alerts;
  badge.classList.toggle("zero", s.alerts === 0);
  drawCharts();
}

// ---- clients ----
async function clients() {
  const f = new FormData($("#client-filter"));
  let q = "?limit=500";
  if (f.get("like")) q += "&like=" + encodeURIComponent(f.get("like"));
  if (f.get("offline")) q += "&online=false";
  const r = await api("/api/v1/sessions" + q);
  rows("#sessions-table", r.data, (c) =>
    `<tr><td>${esc(c.client_id)}</td><td>${c.online ? "yes" : "no"}</td><td>${esc(c.protocol)}</td><td>${esc(c.listener)}</td><td>${esc(c.remote)}</td><td>${c.subscriptions}</td><td>${c.queued}</td><td>${c.inflight}</td><td>${c.expiry_secs}</td>` +
    `<td>${c.online ? `<button class="small" data-kick="${esc(c.client_id)}">kick</button>` : `<button class="small" data-discard="${esc(c.client_id)}">discard</button>`}</td></tr>`);
}
$("#client-filter").addEventListener("submit", (e) => { e.preventDefault(); clients(); });
$("#sessions-table").addEventListener("click", async (e) => {
  const k = e.target.dataset.kick, d = e.target.dataset.discard;
  if (k) await api("/api/v1/clients/" + encodeURIComponent(k), { method: "DELETE" });
  if (d) await api("/api/v1/sessions/" + encodeURIComponent(d), { method: "DELETE" });
  if (k || d) clients();
});

// ---- topics ----
async function topics() {
  const t = await api("/api/v1/topics");
  $("#topic-stats").innerHTML = ["subscriptions", "filters", "wildcard_filters", "shared_filters", "retained", "retained_bytes"]
    .map((k) => `<div class="card"><div class="label">${k.replace("_", " ")}</div><div class="value">${t[k]}</div></div>`).join("");
  rows("#topics-table", t.top_filters, (f) => `<tr><td>${esc(f.filter)}</td><td>${f.subscribers}</td></tr>`);
}

// ---- retained ----
async function retained() {
  const f = new FormData($("#retained-filter"));
  const r = await api("/api/v1/retained?filter=" + encodeURIComponent(f.get("filter") || "#"));
  rows("#retained-table", r.data, (m) =>
    `<tr><td>${esc(m.topic)}</td><td>${m.qos}</td><td>${m.payload_bytes}</td><td>${esc(String(m.payload).slice(0, 80))}</td><td><button class="small" data-del="${esc(m.topic)}">delete</button></td></tr>`);
}
$("#retained-filter").addEventListener("submit", (e) => { e.preventDefault(); retained(); });
$("#retained-table").addEventListener("click", async (e) => {
  const t = e.target.dataset.del;
  if (t) { await api("/api/v1/retained/" + t.split("/").map(encodeURIComponent).join("/"), { method: "DELETE" }); retained(); }
});

// ---- queue ----
async function queue() {
  let t, g;
  try { t = await api("/api/v1/queue/topics"); g = await api("/api/v1/queue/groups"); } catch (e) { $("#qtopics-table tbody").innerHTML = `<tr><td>${esc(e.message)}</td></tr>`; return; }
  rows("#qtopics-table", t.data, (x) => `<tr><td>${esc(x.name)}</td><td>${x.partitions}</td><td>${x.messages}</td><td>${x.size_bytes}</td></tr>`);
  rows("#groups-table", g.data, (x) => `<tr><td><a href="#" data-group="${esc(x.group)}">${esc(x.group)}</a></td><td>${esc(x.state)}</td><td>${x.members}</td><td>${x.total_lag}</td></tr>`);
}
$("#groups-table").addEventListener("click", async (e) => {
  const g = e.target.dataset.group;
  if (!g) return;
  e.preventDefault();
  const d = await api("/api/v1/queue/groups/" + encodeURIComponent(g));
  $("#group-detail").innerHTML = `<h3>${esc(g)} (${esc(d.state)})</h3><table><tr><th>Topic</th><th>Partition</th><th>Committed</th><th>High watermark</th><th>Lag</th></tr>` +
    d.partitions.map((p) => `<tr><td>${esc(p.topic)}</td><td>${p.partition}</td><td>${p.committed}</td><td>${p.high_watermark}</td><td>${p.lag}</td></tr>`).join("") +
    `</table><table><tr><th>Member</th><th>Client</th><th>Host</th><th>Assignment</th></tr>` +
    d.members.map((m) => `<tr><td>${esc(m.member_id)}</td><td>${esc(m.client_id)}</td><td>${esc(m.client_host)}</td><td>${esc(m.assignment.map((a) => a.topic + ":" + a.partitions.join(",")).join(" "))}</td></tr>`).join("") + "</table>";
});
$("#lookup").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = new FormData(e.target), t = encodeURIComponent(f.get("topic"));
  try {
    const r = f.get("key")
      ? await api(`/api/v1/queue/topics/${t}/messages?key=${encodeURIComponent(f.get("key"))}`)
      : f.get("message_id")
      ? await api(`/api/v1/queue/topics/${t}/messages?message_id=${encodeURIComponent(f.get("message_id"))}`)
      : await api(`/api/v1/queue/topics/${t}/partitions/${encodeURIComponent(f.get("partition") || 0)}/messages?offset=${encodeURIComponent(f.get("offset") || 0)}`);
    $("#lookup-result").textContent = JSON.stringify(r.data, null, 2);
  } catch (err) { $("#lookup-result").textContent = err.message; }
});

// ---- trace ----
async function trace() {
  const rules = await api("/api/v1/trace/rules");
  rows("#rules-table", rules.data, (r) => {
    const kind = ["client_id", "topic", "message_id"].find((k) => r[k] !== undefined);
    return `<tr><td>${r.id}</td><td>${kind} = ${esc(r[kind])}</td><td><button class="small" data-rule="${r.id}">stop</button></td></tr>`;
  });
  const t = await api("/api/v1/traces?limit=50");
  rows("#traces-table", t.data, (r) => `<tr><td><a href="#" data-trace="${r.trace_id}">${r.trace_id}</a></td><td>${esc(r.topic)}</td><td>${esc(r.publisher)}</td><td>${r.hops.length}</td></tr>`);
  if (!$("#trace-path").dataset.shown && t.data.length) showTrace(t.data[0].trace_id);
}
async function showTrace(id) {
  const r = await api("/api/v1/traces/" + id);
  const el = $("#trace-path");
  el.dataset.shown = id;
  el.innerHTML = `<h3 id="trace-title">Trace ${r.trace_id}: ${esc(r.topic)} from ${esc(r.publisher || "(hub)")}</h3><ol class="path">` +
    r.hops.map((h) => `<li class="hop"><span class="hop-kind">${esc(h.kind)}</span> ${fmtTime(h.at_ms)} ` +
      [h.client_id && "client " + esc(h.client_id), h.qos !== undefined && "QoS " + h.qos, h.queue_topic && `queue ${esc(h.queue_topic)}/${h.partition}@${h.offset}`, h.group && "group " + esc(h.group), h.detail && esc(h.detail)]
        .filter(Boolean).join(", ") + "</li>").join("") + "</ol>";
}
$("#trace-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  await api("/api/v1/trace/rules", { method: "POST", body: JSON.stringify({ [f.get("kind")]: f.get("value") }) });
  trace();
});
$("#rules-table").addEventListener("click", async (e) => {
  if (e.target.dataset.rule) { await api("/api/v1/trace/rules/" + e.target.dataset.rule, { method: "DELETE" }); trace(); }
});
$("#traces-table").addEventListener("click", (e) => {
  if (e.target.dataset.trace) { e.preventDefault(); showTrace(e.target.dataset.trace); }
});

// ---- alerts ----
async function alerts() {
  const a = await api("/api/v1/alerts");
  rows("#alerts-table", a.active, (x) => `<tr><td>${esc(x.key)}</td><td>${esc(x.message)}</td><td>${fmtTime(x.raised_ms)}</td></tr>`);
  rows("#alert-history", a.history, (x) => `<tr><td>${fmtTime(x.at_ms)}</td><td>${x.state}</td><td>${esc(x.key)}</td><td>${esc(x.message)}</td></tr>`);
}

const views = { dashboard, clients, topics, retained, queue, trace, alerts };
async function refreshTab() {
  try {
    await views[current]();
    if (current !== "dashboard") await dashboard();
    $("#status").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    $("#status").textContent = "error: " + e.message;
  }
}
if (fragment.get("tab") && views[fragment.get("tab")]) {
  document.querySelector(`nav a[data-tab="${fragment.get("tab")}"]`).click();
} else {
  refreshTab();
}
setInterval(refreshTab, 2000);
