"use strict";
// Sightline dashboard: plain JS, no build step. Everything it shows comes from the public API.

const $ = (sel, root = document) => root.querySelector(sel);
const state = {
  key: localStorage.getItem("sightline.key") || "", token: "", cameras: [], feed: null,
  visible: new Set(), dirty: new Set(), refreshMs: 5000, failures: 0,
};
const FEED_MAX = 100;
const REFRESH_MS = 5000, REFRESH_MAX_MS = 60000, BATCH = 100;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}

// Event streams and <img> cannot send a header: their URLs carry a short-lived signed token from
// /api/media-token (never the key itself), renewed before it expires.
function withKey(url) {
  if (!state.token) return url;
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(state.token);
}

async function renewToken() {
  if (!state.key) { state.token = ""; return; }
  try {
    const t = await api("/api/media-token");
    state.token = t.token || "";
    setTimeout(renewToken, Math.max(10, t.expires_in_s / 2) * 1000);
  } catch (_) { setTimeout(renewToken, 10000); }
}

async function api(path, opts = {}) {
  const headers = { ...(opts.body ? { "Content-Type": "application/json" } : {}), ...(opts.headers || {}) };
  if (state.key) headers.Authorization = "Bearer " + state.key;
  let res;
  try { res = await fetch(path, { ...opts, headers }); } catch (err) { state.failures += 1; throw err; }
  if (res.status === 401) $("#key-form").hidden = false;
  if (res.status === 429 || res.status >= 500) state.failures += 1;  // the server is busy: back off
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = JSON.stringify((await res.json()).detail); } catch (_) { /* not JSON */ }
    throw new Error(`${res.status}: ${detail}`);
  }
  return res.status === 204 ? null : res.json();
}

// ---- cameras, status, snapshots, timelines -----------------------------------------------

function statusPill(status) {
  if (!status) return el("span", { class: "pill muted" }, "no status yet");
  const good = status.state === "streaming" || status.state === "running";
  const bad = status.state === "failed" || status.state === "reconnecting";
  const fps = status.fps_out ? ` · ${status.fps_out.toFixed(1)} fps` : "";
  return el("span", { class: "pill " + (good ? "ok" : bad ? "bad" : ""), title: status.reason || "" }, status.state + fps);
}

function budgetBadge(b) {
  // The analyzer's `budget` status of the camera: degraded (longer interval, smaller images, regions only, paused)
  // until the budget's period rolls over. Hidden while within budget.
  const on = !!b && b.state === "budget";
  return el("span", { class: "budget", title: on ? b.reason : "", hidden: !on }, on ? `budget: ${b.reason}` : "");
}

function cameraCard(cam) {
  const img = el("img", { alt: `latest snapshot of ${cam.id}`, hidden: true });
  const noimg = el("div", { class: "noimg" }, "no snapshot yet");
  img.onload = () => { img.hidden = false; noimg.hidden = true; };
  img.onerror = () => { img.hidden = true; noimg.hidden = false; };
  // No src yet: the observer sets it once the card is on screen (a thousand cameras are a long page).
  const canvas = el("canvas", { class: "timeline", "data-camera": cam.id, "data-segments": "0", width: 600, height: 70 });
  const del = el("button", { class: "link", type: "button", title: "remove camera" }, "remove");
  del.onclick = async () => {
    if (!confirm(`Remove camera ${cam.id}?`)) return;
    try { await api(`/api/cameras/${encodeURIComponent(cam.id)}`, { method: "DELETE" }); loadCameras(); }
    catch (err) { alert(err.message); }
  };
  return el("div", { class: "card", "data-camera": cam.id },
    el("div", { class: "row between" }, el("strong", {}, cam.name || cam.id), statusPill(cam.status)),
    el("div", { class: "url" }, cam.url),
    budgetBadge(cam.budget_status),
    img, noimg, canvas,
    el("div", { class: "row between" }, el("span", { class: "muted" }, cam.enabled ? "enabled" : "disabled"), del));
}

async function loadCameras() {
  try {
    state.cameras = await api("/api/cameras");
  } catch (err) { return; }
  const box = $("#cameras");
  if (!state.cameras.length) {
    state.signature = "";
    box.replaceChildren(el("p", { class: "muted" }, "No cameras yet: add one below."));
  } else {
    // Rebuild cards only when the cameras changed; otherwise update status in place (no image flicker).
    const signature = JSON.stringify(state.cameras.map(({ status, budget_status, ...spec }) => spec));
    if (signature !== state.signature) {
      state.signature = signature;
      box.replaceChildren(...state.cameras.map(cameraCard));
      watchCards(box);
    } else {
      state.cameras.forEach((c) => {
        const pill = document.querySelector(`.card[data-camera="${CSS.escape(c.id)}"] .pill`);
        if (pill) pill.replaceWith(statusPill(c.status));
        const badge = document.querySelector(`.card[data-camera="${CSS.escape(c.id)}"] .budget`);
        if (badge) badge.replaceWith(budgetBadge(c.budget_status));
      });
    }
    drawTimelines([...state.visible]);
  }
  const sel = $("#ask-camera");
  const current = sel.value;
  sel.replaceChildren(...state.cameras.map((c) => el("option", { value: c.id }, c.name || c.id)));
  if (current) sel.value = current;
}

function rangeSeconds() { return Number($("#range").value); }

// Which cards are on screen: only those get timelines, in batches of BATCH cameras per request.
const observer = new IntersectionObserver((entries) => {
  const appeared = [];
  entries.forEach((e) => {
    const id = e.target.dataset.camera;
    if (e.isIntersecting) {
      if (!state.visible.has(id)) appeared.push(id);
      state.visible.add(id);
      const img = e.target.querySelector("img");
      if (img && !img.getAttribute("src")) loadSnapshot(img, id);
    }
    else state.visible.delete(id);
  });
  if (appeared.length) drawTimelines(appeared);
});

function loadSnapshot(img, cameraId) {
  img.src = withKey(`/api/cameras/${encodeURIComponent(cameraId)}/snapshot?t=${Date.now()}`);
}

function watchCards(box) {
  observer.disconnect();
  state.visible.clear();
  box.querySelectorAll(".card[data-camera]").forEach((card) => observer.observe(card));
}

async function drawTimelines(ids) {
  const span = rangeSeconds();
  const now = Date.now();
  const since = span ? `&since=${new Date(now - span * 1000).toISOString()}` : "";
  for (let i = 0; i < ids.length; i += BATCH) {
    const qs = ids.slice(i, i + BATCH).map((id) => "camera_id=" + encodeURIComponent(id)).join("&");
    let tls;
    try { tls = await api(`/api/timelines?${qs}${since}`); } catch (_) { return; }
    tls.forEach((tl) => drawTimeline(tl, span, now));
  }
}

function drawTimeline(tl, span, now) {
  const canvas = document.querySelector(`canvas.timeline[data-camera="${CSS.escape(tl.camera_id)}"]`);
  if (!canvas) return;
  const segs = tl.segments.map((s) => ({ ...s, t0: Date.parse(s.start), t1: Date.parse(s.end) }));
  const wins = tl.summaries.map((w) => ({ ...w, t0: Date.parse(w.start), t1: Date.parse(w.end) }));
  let lo = span ? now - span * 1000 : Math.min(now - 60000, ...segs.map((s) => s.t0), ...wins.map((w) => w.t0));
  let hi = span ? now : Math.max(now, ...segs.map((s) => s.t1), ...wins.map((w) => w.t1));
  if (canvas.clientWidth && canvas.width !== canvas.clientWidth) canvas.width = canvas.clientWidth;  // crisp text
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height;
  ctx.clearRect(0, 0, W, H);
  ctx.fillStyle = "#f6f7f9"; ctx.fillRect(0, 0, W, H);
  const x = (t) => ((t - lo) / (hi - lo)) * W;
  const queries = [...new Set(segs.map((s) => s.query_id))];
  const lane = (H - 24) / Math.max(1, queries.length);
  const palette = ["#f0a500", "#2e7dd7", "#2e9d5b", "#c8413a", "#8e44ad"];
  queries.forEach((q, i) => {
    // Overlapping objects go on separate rows (greedy interval packing) so each one stays visible.
    const rowsEnd = [];
    const mine = segs.filter((s) => s.query_id === q).sort((a, b) => a.t0 - b.t0);
    mine.forEach((s) => {
      let r = rowsEnd.findIndex((end) => end < s.t0);
      if (r < 0) { r = rowsEnd.length; rowsEnd.push(0); }
      rowsEnd[r] = s.t1;
      s.row = r;
    });
    const rowH = lane / Math.max(1, rowsEnd.length);
    ctx.fillStyle = palette[i % palette.length];
    mine.forEach((s) => ctx.fillRect(x(s.t0), 4 + i * lane + s.row * rowH, Math.max(2, x(s.t1) - x(s.t0)),
      Math.max(1, rowH - 1)));
  });
  ctx.fillStyle = "#9aa3b5";
  wins.forEach((w) => ctx.fillRect(x(w.t0) + 1, H - 18, Math.max(2, x(w.t1) - x(w.t0) - 2), 4));
  ctx.fillStyle = "#6b7385"; ctx.font = "10px system-ui";
  ctx.fillText(new Date(lo).toLocaleTimeString(), 2, H - 3);
  const end = new Date(hi).toLocaleTimeString();
  ctx.fillText(end, W - ctx.measureText(end).width - 2, H - 3);
  canvas.dataset.segments = String(segs.length);
  canvas.dataset.summaries = String(wins.length);
  canvas.title = `${segs.length} tracked object(s), ${wins.length} summary window(s)`;
}

// Events mark their camera's timeline dirty; dirty ones on screen are redrawn together, at most
// once a second, however many events arrive.
function scheduleTimeline(cameraId) {
  if (!state.visible.has(cameraId)) return;
  state.dirty.add(cameraId);
  if (state.dirtyTimer) return;
  state.dirtyTimer = setTimeout(() => {
    const ids = [...state.dirty];
    state.dirty.clear();
    state.dirtyTimer = null;
    drawTimelines(ids);
  }, 1000);
}

// ---- live feed (SSE) ---------------------------------------------------------------------

function feedRow(ev, fresh) {
  return el("tr", { class: fresh ? "fresh" : "", "data-event": ev.event_id },
    el("td", {}, new Date(ev.wall_ts).toLocaleTimeString()), el("td", {}, ev.camera_id), el("td", {}, ev.query_id),
    el("td", {}, ev.phase), el("td", {}, ev.label), el("td", {}, ev.bbox.map((v) => Math.round(v)).join(", ")),
    el("td", {}, ev.engine));
}

function addToFeed(ev, fresh) {
  const body = $("#feed tbody");
  body.prepend(feedRow(ev, fresh));
  while (body.children.length > FEED_MAX) body.lastChild.remove();
}

function startFeed() {
  if (state.feed) state.feed.close();
  $("#feed tbody").replaceChildren();
  // backlog: the latest events and the live ones come from one cursor, so none fall in between.
  const source = new EventSource(withKey("/api/events/stream?backlog=30"));
  source.addEventListener("error", () => {
    // The browser retries by itself; once it gives up (a refused or expired token) start anew.
    if (source.readyState === EventSource.CLOSED && state.feed === source) setTimeout(startFeed, 3000);
  });
  state.feed = source;
  state.live = false;
  setTimeout(() => { state.live = true; }, 1000);  // rows after the backlog flash as new
  source.onopen = () => { $("#conn").textContent = "live"; $("#conn").className = "pill ok"; };
  source.onerror = () => { $("#conn").textContent = "reconnecting…"; $("#conn").className = "pill bad"; };
  source.addEventListener("object_event", (msg) => {
    const ev = JSON.parse(msg.data);
    addToFeed(ev, state.live);
    scheduleTimeline(ev.camera_id);
    if (ev.snapshot) {
      const img = document.querySelector(`.card[data-camera="${CSS.escape(ev.camera_id)}"] img`);
      if (img && state.visible.has(ev.camera_id)) loadSnapshot(img, ev.camera_id);
    }
  });
}

// ---- queries, summaries, forms, ask ------------------------------------------------------

async function loadQueries() {
  try {
    const qs = await api("/api/queries");
    $("#queries").replaceChildren(...qs.map((q) => el("li", { "data-query": q.id },
      el("strong", {}, q.id), " ", el("span", { class: "muted" }, `${q.kind} · ${q.cameras.join(", ")}`),
      el("div", {}, q.text))));
  } catch (_) { /* keep the old list */ }
}

async function loadSummaries() {
  try {
    const items = await api("/api/summaries?limit=10");
    $("#summaries").replaceChildren(...items.map((s) => el("li", {},
      el("span", { class: "muted" }, `${s.camera_id} · ${new Date(s.window_start_wall).toLocaleTimeString()}–` +
        `${new Date(s.window_end_wall).toLocaleTimeString()} · ${s.engine}`),
      el("div", {}, s.text))));
    if (!items.length) $("#summaries").replaceChildren(el("li", { class: "muted" }, "No summaries yet."));
  } catch (_) { /* keep the old list */ }
}

function formData(form) {
  return Object.fromEntries(new FormData(form).entries());
}

async function submitJson(form, path, body, onOk) {
  const out = $(".msg", form);
  out.className = "msg"; out.textContent = "…";
  try {
    const res = await api(path, { method: "POST", body: JSON.stringify(body) });
    out.textContent = "";
    form.reset();
    onOk(res);
  } catch (err) { out.className = "msg err"; out.textContent = err.message; }
}

$("#camera-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const d = formData(e.target);
  const body = { id: d.id, url: d.url, name: d.name || "", loop: d.loop === "on" };
  if (d.record) body.record = d.record;  // empty: the deployment's recording.mode
  submitJson(e.target, "/api/cameras", body, loadCameras);
});

$("#query-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const d = formData(e.target);
  const cameras = d.cameras ? d.cameras.split(",").map((s) => s.trim()).filter(Boolean) : ["*"];
  submitJson(e.target, "/api/queries", { id: d.id, text: d.text, kind: d.kind, cameras }, loadQueries);
});

$("#ask-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const d = formData(e.target);
  const out = $("#ask-answer");
  out.className = "msg"; out.textContent = "asking…";
  const body = { camera_id: d.camera_id, question: d.question, thinking: d.thinking === "on" };
  if (Number(d.seconds) > 0) body.seconds = Number(d.seconds);
  try {
    const a = await api("/api/ask", { method: "POST", body: JSON.stringify(body) });
    out.textContent = `${a.answer}\n(${a.engine} · ${Math.round(a.latency_ms)} ms · ${a.boxes.length} box(es))`;
  } catch (err) { out.className = "msg err"; out.textContent = err.message; }
});

$("#key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  state.key = $("#key-input").value.trim();
  localStorage.setItem("sightline.key", state.key);
  $("#key-form").hidden = true;
  renewToken().then(() => { refreshAll(); startFeed(); });
});

$("#range").addEventListener("change", () => drawTimelines([...state.visible]));

async function loadWorkers() {
  try {
    const all = await api("/api/status");
    const workers = all.filter((s) => s.component !== "camera" && s.component !== "budget" && s.state !== "stopped");
    $("#workers").replaceChildren(...workers.map((s) => {
      const pill = statusPill(s);
      pill.textContent = `${s.component} ${s.state}`;
      pill.title = s.id + (s.reason ? `: ${s.reason}` : "");
      return pill;
    }));
  } catch (_) { /* keep the old pills */ }
}

function refreshAll() { loadCameras(); loadQueries(); loadSummaries(); loadWorkers(); }

// Every REFRESH_MS while the server answers; doubling up to REFRESH_MAX_MS while it fails or says
// it is busy (429/5xx); nothing while the tab is hidden.
async function refreshLoop() {
  const before = state.failures;
  if (!document.hidden) await Promise.allSettled([loadCameras(), loadQueries(), loadSummaries(), loadWorkers()]);
  state.refreshMs = state.failures > before ? Math.min(REFRESH_MAX_MS, state.refreshMs * 2) : REFRESH_MS;
  setTimeout(refreshLoop, state.refreshMs);
}

renewToken().then(() => { startFeed(); refreshLoop(); });
