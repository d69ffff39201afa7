"use strict";
// Minimal first page: the latest events, refreshed every two seconds.
const $ = (sel) => document.querySelector(sel);

function row(ev) {
  const tr = document.createElement("tr");
  const cells = [new Date(ev.wall_ts).toLocaleTimeString(), ev.camera_id, ev.query_id, ev.phase, ev.label,
    ev.bbox.map((v) => Math.round(v)).join(", "), ev.engine];
  for (const text of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.appendChild(td);
  }
  return tr;
}

async function refresh() {
  try {
    const res = await fetch("/api/events?limit=50");
    const page = await res.json();
    $("#events tbody").replaceChildren(...page.items.map(row));
    $("#conn").textContent = "live";
  } catch (err) {
    $("#conn").textContent = "offline";
  }
}
refresh();
setInterval(refresh, 2000);
