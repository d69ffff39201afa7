"use strict";
// The clip player: an event's recording with its track's boxes drawn over the video on a canvas
// (from the stored boxes, not burnt in), a scrubber over the track's time span, downloads.
// Uses withKey/api/el/$ from app.js. `openPlayer(eventId)` is the one entry point (feed rows call it).

const player = { track: null, raf: 0 };

// Linear interpolation between the sampled boxes, held a quarter second past the ends: the same
// rule the server uses when it burns boxes in (sinks.clips.TrackBoxes).
function boxAt(points, t) {
  const HOLD = 0.25;
  if (!points.length || t < points[0].t - HOLD || t > points[points.length - 1].t + HOLD) return null;
  if (t <= points[0].t) return points[0].bbox;
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1], b = points[i];
    if (t <= b.t) {
      const f = b.t > a.t ? (t - a.t) / (b.t - a.t) : 0;
      return a.bbox.map((v, k) => v + (b.bbox[k] - v) * f);
    }
  }
  return points[points.length - 1].bbox;
}

function drawBoxes() {
  const video = $("#player-video"), canvas = $("#player-canvas"), tr = player.track;
  player.raf = requestAnimationFrame(drawBoxes);
  if (!tr || tr.clip_origin === null || !video.videoWidth) return;
  const rect = video.getBoundingClientRect();
  if (canvas.width !== Math.round(rect.width) || canvas.height !== Math.round(rect.height)) {
    canvas.width = Math.round(rect.width);
    canvas.height = Math.round(rect.height);
  }
  // The picture is letterboxed inside the element: scale by the smaller ratio, centre it.
  const scale = Math.min(canvas.width / video.videoWidth, canvas.height / video.videoHeight);
  const ox = (canvas.width - video.videoWidth * scale) / 2, oy = (canvas.height - video.videoHeight * scale) / 2;
  const t = tr.clip_origin + video.currentTime;
  const box = boxAt(tr.points, t);
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  canvas.dataset.t = t.toFixed(3);
  canvas.dataset.box = box ? box.map((v) => Math.round(v)).join(",") : "";
  const scrub = $("#player-scrub");
  if (document.activeElement !== scrub) scrub.value = String(t);
  if (!box) return;
  const [x1, y1, x2, y2] = box;
  ctx.strokeStyle = "#ff2d2d";
  ctx.lineWidth = 3;
  ctx.strokeRect(ox + x1 * scale, oy + y1 * scale, (x2 - x1) * scale, (y2 - y1) * scale);
  ctx.fillStyle = "#ff2d2d";
  ctx.font = "13px system-ui, sans-serif";
  ctx.fillText(tr.label, ox + x1 * scale, Math.max(12, oy + y1 * scale - 4));
}

function closePlayer() {
  cancelAnimationFrame(player.raf);
  const video = $("#player-video");
  video.pause();
  video.removeAttribute("src");
  video.load();
  $("#player").hidden = true;
  player.track = null;
}

async function openPlayer(eventId) {
  const id = encodeURIComponent(eventId);
  const panel = $("#player"), info = $("#player-info");
  panel.hidden = false;
  info.textContent = "loading…";
  cancelAnimationFrame(player.raf);
  let tr;
  try {
    tr = await api(`/api/events/${id}/track`);
  } catch (err) {
    info.textContent = `cannot load the track: ${err.message}`;
    return;
  }
  player.track = tr;
  const scrub = $("#player-scrub");
  const first = tr.points.length ? tr.points[0].t : tr.event_t, last = tr.points.length ? tr.points[tr.points.length - 1].t : tr.event_t;
  scrub.min = String(first);
  scrub.max = String(Math.max(last, first + 0.001));
  scrub.step = "0.04";
  scrub.value = String(first);
  $("#player-clip").href = withKey(`/api/events/${id}/clip?span=track`);
  $("#player-annotated").href = withKey(`/api/events/${id}/clip?span=track&annotate=true`);
  $("#player-evidence").href = withKey(`/api/events/${id}/evidence`);
  const gaps = tr.gaps.length ? ` · ${tr.gaps.length} gap(s) in the recording` : "";
  if (tr.clip_origin === null) {
    info.textContent = `${tr.camera_id} · ${tr.label}: nothing recorded for this event`;
    $("#player-video").removeAttribute("src");
    return;
  }
  info.textContent = `${tr.camera_id} · ${tr.label} · ${tr.points.length} sampled boxes${gaps}`;
  const video = $("#player-video");
  video.src = withKey(`/api/events/${id}/clip?span=track`);
  video.addEventListener("loadedmetadata", () => {
    video.currentTime = Math.max(0, first - tr.clip_origin);
    video.play().catch(() => { /* autoplay refused: the controls are there */ });
  }, { once: true });
  player.raf = requestAnimationFrame(drawBoxes);
}

$("#player-close").addEventListener("click", closePlayer);
$("#player-scrub").addEventListener("input", (e) => {
  const tr = player.track;
  if (tr && tr.clip_origin !== null) $("#player-video").currentTime = Math.max(0, Number(e.target.value) - tr.clip_origin);
});
// Events in the live feed and alerts (through the event that made the rule fire) open the player.
for (const list of ["#feed tbody", "#alerts tbody"]) {
  const body = $(list);
  if (body) body.addEventListener("click", (e) => {
    const row = e.target.closest("tr[data-event]");
    if (row && row.dataset.event) openPlayer(row.dataset.event);
  });
}
window.openPlayer = openPlayer;
// A search hit names a track: its first event opens the same player.
window.openTrackPlayer = async (trackId) => {
  try {
    const r = await api(`/api/tracks/${encodeURIComponent(trackId)}/first-event`);
    await openPlayer(r.event_id);
  } catch (err) { $("#player").hidden = false; $("#player-info").textContent = `no clip: ${err.message}`; }
};
