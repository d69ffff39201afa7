"use strict";
// Zones, lines, rules and alerts. Uses $, el, api, withKey and state from app.js.
// Coordinates are normalised (0–1 of the frame): the overlay canvas covers the snapshot exactly.

const geo = { camera: "", points: [], zones: [], lines: [], alertsFeed: null };

function geoCanvas() { return $("#geo-canvas"); }

function drawGeo() {
  const c = geoCanvas();
  if (c.clientWidth && c.width !== c.clientWidth) { c.width = c.clientWidth; c.height = c.clientHeight; }
  const ctx = c.getContext("2d"), W = c.width, H = c.height;
  ctx.clearRect(0, 0, W, H);
  ctx.lineWidth = 2; ctx.font = "12px system-ui";
  geo.zones.forEach((z) => {
    ctx.beginPath();
    z.polygon.forEach(([x, y], i) => (i ? ctx.lineTo(x * W, y * H) : ctx.moveTo(x * W, y * H)));
    ctx.closePath();
    ctx.fillStyle = "rgba(240,165,0,.25)"; ctx.fill(); ctx.strokeStyle = "#f0a500"; ctx.stroke();
    ctx.fillStyle = "#fff"; ctx.fillText(z.id, z.polygon[0][0] * W + 3, z.polygon[0][1] * H + 14);
  });
  geo.lines.forEach((l) => {
    const [[x0, y0], [x1, y1]] = l.points;
    ctx.beginPath(); ctx.moveTo(x0 * W, y0 * H); ctx.lineTo(x1 * W, y1 * H);
    ctx.strokeStyle = "#2e7dd7"; ctx.stroke();
    ctx.fillStyle = "#2e7dd7"; ctx.beginPath(); ctx.arc(l.inside[0] * W, l.inside[1] * H, 4, 0, 7); ctx.fill();
    ctx.fillStyle = "#fff"; ctx.fillText(l.id, x0 * W + 4, y0 * H + 14);
  });
  ctx.strokeStyle = "#2e9d5b"; ctx.fillStyle = "#2e9d5b";
  ctx.beginPath();
  geo.points.forEach(([x, y], i) => (i ? ctx.lineTo(x * W, y * H) : ctx.moveTo(x * W, y * H)));
  ctx.stroke();
  geo.points.forEach(([x, y]) => { ctx.beginPath(); ctx.arc(x * W, y * H, 3, 0, 7); ctx.fill(); });
  c.dataset.points = String(geo.points.length);
}

async function loadGeo() {
  const sel = $("#geo-camera");
  const current = sel.value || geo.camera;
  sel.replaceChildren(...state.cameras.map((c) => el("option", { value: c.id }, c.name || c.id)));
  if (current && state.cameras.some((c) => c.id === current)) sel.value = current;
  const cam = sel.value;
  if (!cam) return;
  const img = $("#geo-img");
  if (cam !== geo.camera || !img.naturalWidth) {  // a new camera, or no snapshot yet last time
    if (cam !== geo.camera) geo.points = [];
    geo.camera = cam;
    img.src = withKey(`/api/cameras/${encodeURIComponent(cam)}/snapshot?t=${Date.now()}`);
  }
  try {
    geo.zones = await api(`/api/zones?camera_id=${encodeURIComponent(cam)}`);
    geo.lines = await api(`/api/lines?camera_id=${encodeURIComponent(cam)}`);
  } catch (_) { return; }
  const target = $("#rule-target"), was = target.value;
  target.replaceChildren(...geo.zones.map((z) => el("option", { value: "zone:" + z.id }, "zone " + z.id)),
    ...geo.lines.map((l) => el("option", { value: "line:" + l.id }, "line " + l.id)));
  if (was) target.value = was;
  drawGeo();
}

async function loadRules() {
  try {
    const [rules, queries] = await Promise.all([api("/api/rules"), api("/api/queries")]);
    const qsel = $("#rule-query"), was = qsel.value;
    qsel.replaceChildren(...queries.filter((q) => q.kind === "grounding").map((q) => el("option", { value: q.id }, q.id)));
    if (was) qsel.value = was;
    $("#rules").replaceChildren(...rules.map(({ rule, disabled_reason }) => el("li", { "data-rule": rule.id },
      el("strong", {}, rule.id), " ", el("span", { class: "muted" }, JSON.stringify(rule.when)),
      disabled_reason ? el("div", { class: "msg err" }, "disabled: " + disabled_reason) : "")));
  } catch (_) { /* keep the old list */ }
}

geoCanvas().addEventListener("click", (e) => {
  const c = geoCanvas();
  const x = Math.min(1, Math.max(0, e.offsetX / c.clientWidth));
  const y = Math.min(1, Math.max(0, e.offsetY / c.clientHeight));
  if ($("#geo-kind").value === "line" && geo.points.length >= 3) geo.points = [];
  geo.points.push([Number(x.toFixed(4)), Number(y.toFixed(4))]);
  drawGeo();
});

$("#geo-clear").addEventListener("click", () => { geo.points = []; drawGeo(); });
$("#geo-camera").addEventListener("change", () => loadGeo());

$("#geo-save").addEventListener("click", async () => {
  const out = $("#geo-msg"); out.className = "msg"; out.textContent = "…";
  const id = $("#geo-id").value.trim(), kind = $("#geo-kind").value, p = geo.points;
  const body = kind === "zone" ? { id, camera: geo.camera, polygon: p }
    : { id, camera: geo.camera, points: p.slice(0, 2), inside: p[2] };
  try {
    await api(kind === "zone" ? "/api/zones" : "/api/lines", { method: "POST", body: JSON.stringify(body) });
    out.textContent = `${kind} ${id} saved`; geo.points = [];
    loadGeo();
  } catch (err) { out.className = "msg err"; out.textContent = err.message; }
});

$("#rule-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const d = formData(e.target);
  const [, target] = (d.target || ":").split(":");
  const when = {
    enter: { zone: target }, leave: { zone: target }, dwell: { zone: target, seconds: Number(d.seconds) },
    cross: { line: target, direction: d.direction }, count: { zone: target, min: Number(d.min), seconds: Number(d.seconds) },
    absent: { zone: target, seconds: Number(d.seconds) },
  }[d.condition];
  const body = { id: d.id, query: d.query, when: { [d.condition]: when }, severity: d.severity };
  submitJson(e.target, "/api/rules", body, loadRules);
});

// ---- alerts: the latest from the list, then live from the stream ---------------------------

function alertRow(a, fresh) {
  const what = a.condition + (a.zone_id ? " " + a.zone_id : "") + (a.line_id ? " " + a.line_id : "") +
    (a.direction ? " " + a.direction : "") + (a.seconds != null ? ` (${a.seconds} s)` : "");
  const snap = a.snapshot ? el("img", { alt: "snapshot", src: withKey(`/api/alerts/${encodeURIComponent(a.alert_id)}/snapshot`) }) : "";
  return el("tr", { class: fresh ? "fresh" : "", "data-alert": a.alert_id, "data-event": a.event_id || "" },
    el("td", {}, new Date(a.wall_ts).toLocaleTimeString()), el("td", {}, a.camera_id), el("td", {}, a.rule_id),
    el("td", {}, what), el("td", { class: "sev-" + a.severity }, a.severity), el("td", {}, snap));
}

async function startAlerts() {
  if (geo.alertsFeed) geo.alertsFeed.close();
  const body = $("#alerts tbody");
  try {
    const page = await api("/api/alerts?limit=20");
    body.replaceChildren(...page.items.map((a) => alertRow(a, false)));
  } catch (_) { /* the stream still works */ }
  const source = new EventSource(withKey("/api/alerts/stream"));
  geo.alertsFeed = source;
  source.addEventListener("alert", (msg) => {
    const a = JSON.parse(msg.data);
    if (document.querySelector(`#alerts tr[data-alert="${CSS.escape(a.alert_id)}"]`)) return;
    body.prepend(alertRow(a, true));
    while (body.children.length > FEED_MAX) body.lastChild.remove();
  });
}

$("#key-form").addEventListener("submit", () => { startAlerts(); });
setTimeout(() => { loadGeo(); loadRules(); }, 300);
setInterval(() => { loadGeo(); loadRules(); }, 2000);
startAlerts();
