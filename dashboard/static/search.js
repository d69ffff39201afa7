"use strict";
// Search over history and questions about it. Uses $, el, api, withKey and state from app.js.
// A result opens its camera's timeline around that moment; an answer's [E1] citations link to the
// events that were sent, and a citation of anything else is shown struck through, never as a link.

const search = { hits: [] };
const fmt = (iso) => new Date(iso).toLocaleString();

function hitCard(h) {
  const pic = h.snapshot_url
    ? el("img", { src: withKey(h.snapshot_url), alt: h.text, loading: "lazy" })
    : el("div", { class: "noimg" }, h.kind === "summary" ? "summary" : "no snapshot");
  const card = el("div", { class: "hit", "data-hit": h.id, title: `score ${h.score} · matched ${h.matched}` },
    pic,
    el("strong", {}, h.camera_name),
    el("span", { class: "muted" }, fmt(h.start)),
    el("span", {}, h.description || h.text),
    el("span", { class: "pill" }, h.matched));
  card.addEventListener("click", () => openMoment(h));
  if (h.kind === "track" && window.openTrackPlayer) {  // the clip player (player.js, issue 19)
    const play = el("button", { type: "button", class: "link play" }, "▶ clip");
    play.addEventListener("click", (e) => { e.stopPropagation(); window.openTrackPlayer(h.id); });
    card.append(play);
  }
  return card;
}

async function openMoment(h) {
  document.querySelectorAll(".hit.chosen").forEach((c) => c.classList.remove("chosen"));
  const card = document.querySelector(`.hit[data-hit="${CSS.escape(h.id)}"]`);
  if (card) card.classList.add("chosen");
  const t0 = Date.parse(h.start), t1 = Date.parse(h.end), pad = 5 * 60 * 1000;
  const lo = t0 - pad, hi = t1 + pad;
  const qs = `since=${new Date(lo).toISOString()}&until=${new Date(hi).toISOString()}`;
  let tl;
  try { tl = await api(`/api/cameras/${encodeURIComponent(h.camera_id)}/timeline?${qs}`); } catch (_) { return; }
  $("#search-moment").hidden = false;
  $("#search-moment-title").textContent = `${h.camera_name} around ${fmt(h.start)}`;
  const c = $("#search-timeline");
  if (c.clientWidth && c.width !== c.clientWidth) c.width = c.clientWidth;
  const ctx = c.getContext("2d"), W = c.width, H = c.height, x = (t) => ((t - lo) / (hi - lo)) * W;
  ctx.clearRect(0, 0, W, H);
  ctx.fillStyle = "#f6f7f9"; ctx.fillRect(0, 0, W, H);
  ctx.fillStyle = "#2e7dd7";
  tl.segments.forEach((s, i) => {
    const a = Date.parse(s.start), b = Date.parse(s.end);
    ctx.fillRect(x(a), 6 + (i % 3) * 12, Math.max(2, x(b) - x(a)), 10);
  });
  ctx.fillStyle = "#c8413a"; ctx.fillRect(x(t0) - 1, 0, 3, H - 16);  // the moment the hit began
  ctx.fillStyle = "#6b7385"; ctx.font = "10px system-ui";
  ctx.fillText(new Date(lo).toLocaleTimeString(), 2, H - 3);
  const end = new Date(hi).toLocaleTimeString();
  ctx.fillText(end, W - ctx.measureText(end).width - 2, H - 3);
  c.dataset.segments = String(tl.segments.length);
  c.dataset.camera = h.camera_id;
  c.dataset.moment = h.start;
}

$("#search-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const d = formData(e.target);
  const params = new URLSearchParams({ q: d.q, limit: "24" });
  if (d.camera_id) params.set("camera_id", d.camera_id);
  if (d.kind) params.set("kind", d.kind);
  const msg = $("#search-msg");
  msg.className = "msg muted"; msg.textContent = "searching…";
  try {
    const r = await api(`/api/search?${params}`);
    search.hits = r.hits;
    $("#search-results").replaceChildren(...r.hits.map(hitCard));
    msg.textContent = r.hits.length ? `${r.hits.length} result(s)` + (r.meaning ? "" : " — words only (reindex needed)") : "nothing found";
  } catch (err) { msg.className = "msg err"; msg.textContent = err.message; }
});

$("#search-moment-close").addEventListener("click", () => { $("#search-moment").hidden = true; });

// The answer as text nodes, with each [En] a link to its event or, when it names no event sent,
// a struck-through mark: the model's text never becomes markup.
function renderAnswer(a) {
  const box = $("#history-answer");
  const parts = [];
  let last = 0;
  for (const m of a.answer.matchAll(/\[\s*(E\d+)\s*\]/g)) {
    parts.push(document.createTextNode(a.answer.slice(last, m.index)));
    const id = a.handles[m[1]];
    const hit = id && a.hits.find((h) => h.id === id);
    if (hit) {
      const link = el("a", { href: "#", class: "cite", "data-hit": id }, `[${m[1]}]`);
      link.addEventListener("click", (e) => { e.preventDefault(); openMoment(hit); });
      parts.push(link);
    } else {
      parts.push(el("span", { class: "flagged", title: "cites no event that was sent" }, `[${m[1]}]`));
    }
    last = m.index + m[0].length;
  }
  parts.push(document.createTextNode(a.answer.slice(last)));
  const note = a.model_called ? `${a.engine} · ${a.hits.length} event(s) sent · ${a.tokens_in + a.tokens_out} tokens`
    : "no model call: nothing retrieved";
  box.replaceChildren(...parts, el("div", { class: "muted" }, note));
  if (a.hits.length) {
    $("#search-results").replaceChildren(...a.hits.map(hitCard));
    $("#search-msg").textContent = `${a.hits.length} event(s) the answer was given`;
  }
}

$("#history-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const d = formData(e.target);
  const box = $("#history-answer");
  box.className = "msg"; box.textContent = "asking…";
  try {
    renderAnswer(await api("/api/ask", { method: "POST", body: JSON.stringify({ scope: "history", question: d.question }) }));
  } catch (err) { box.className = "msg err"; box.textContent = err.message; }
});

async function loadSearchCameras() {
  const sel = $("#search-camera"), was = sel.value;
  sel.replaceChildren(el("option", { value: "" }, "all cameras"),
    ...state.cameras.map((c) => el("option", { value: c.id }, c.name || c.id)));
  sel.value = was;
}
setInterval(loadSearchCameras, 5000);
setTimeout(loadSearchCameras, 500);
