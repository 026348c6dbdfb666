// The search page: talks only to the HTTP API (/api/search, /api/videos/ID/file).
"use strict";

const params = new URLSearchParams(location.search);
const apiKey = params.get("key");
const form = document.getElementById("search");
const list = document.getElementById("results");
const statusLine = document.getElementById("status");
const player = document.getElementById("player");
const playerBox = document.getElementById("player-box");
const nowPlaying = document.getElementById("now-playing");
const noMatch = document.getElementById("no-match");
let stopAt = null;

function clock(seconds) {
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return (h ? h + ":" : "") + mm + ":" + String(s).padStart(2, "0");
}

function withKey(url) {
  return apiKey ? url + (url.includes("?") ? "&" : "?") + "key=" + encodeURIComponent(apiKey) : url;
}

function cell(text, className) {
  const span = document.createElement("span");
  span.textContent = text;
  if (className) span.className = className;
  return span;
}

function timeline(moment) {
  const box = document.createElement("span");
  box.className = "track";
  const bar = document.createElement("span");
  bar.className = "timeline";
  const mark = document.createElement("span");
  mark.className = "mark";
  const duration = moment.duration || moment.end_s;
  mark.style.left = (100 * moment.start_s / duration) + "%";
  mark.style.width = Math.max(0.5, 100 * (moment.end_s - moment.start_s) / duration) + "%";
  bar.appendChild(mark);
  box.appendChild(bar);
  box.appendChild(strip(moment.profile || []));
  return box;
}

function strip(profile) {
  const box = document.createElement("span");
  box.className = "strip";
  const values = profile.filter(v => v !== null);
  const low = Math.min(...values), high = Math.max(...values);
  for (const value of profile) {
    const span = document.createElement("span");
    const level = value === null || high === low ? 0 : (value - low) / (high - low);
    span.style.background = `rgba(217, 95, 2, ${0.1 + 0.9 * level})`;
    span.title = value === null ? "" : value.toFixed(2);
    box.appendChild(span);
  }
  return box;
}

function play(moment, item) {
  for (const li of list.querySelectorAll("li.playing")) li.classList.remove("playing");
  item.classList.add("playing");
  if (!moment.has_file) {
    nowPlaying.textContent = `${moment.video_id}: no video file recorded for this video`;
    playerBox.hidden = false;
    player.removeAttribute("src");
    return;
  }
  const source = withKey(`/api/videos/${encodeURIComponent(moment.video_id)}/file`);
  if (player.dataset.video !== moment.video_id) {
    player.src = source;
    player.dataset.video = moment.video_id;
  }
  playerBox.hidden = false;
  stopAt = moment.end_s;
  const seek = () => { player.currentTime = moment.start_s; player.play().catch(() => {}); };
  if (player.readyState >= 1) seek(); else player.addEventListener("loadedmetadata", seek, { once: true });
  nowPlaying.textContent = `${moment.video_id} ${clock(moment.start_s)}-${clock(moment.end_s)}`;
}

player.addEventListener("timeupdate", () => {
  if (stopAt !== null && player.currentTime >= stopAt) { player.pause(); stopAt = null; }
});

// relevance: a calibrated probability that the moment is a real match (absent when the index
// carries no calibration)
function relevanceCell(moment) {
  if (moment.relevance === undefined) return cell("", "relevance");
  const span = cell(`${Math.round(100 * moment.relevance)}%`, "relevance");
  span.title = "relevance: calibrated probability that this is a real match";
  return span;
}

function render(result) {
  list.replaceChildren();
  noMatch.hidden = result.no_good_match !== true;
  result.moments.forEach(moment => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.className = "moment";
    button.type = "button";
    button.dataset.video = moment.video_id;
    button.dataset.start = moment.start_s;
    button.append(cell(moment.rank, "rank"), cell(moment.video_id, "video"),
                  cell(`${clock(moment.start_s)}-${clock(moment.end_s)}`, "span"),
                  cell(moment.score.toFixed(3), "score"), relevanceCell(moment), timeline(moment));
    const relevance = moment.relevance === undefined ? "" :
      `, relevance ${Math.round(100 * moment.relevance)}%`;
    button.setAttribute("aria-label", `rank ${moment.rank}: ${moment.video_id} from ` +
      `${clock(moment.start_s)} to ${clock(moment.end_s)}, score ${moment.score.toFixed(3)}` +
      `${relevance}, ${moment.stage}`);
    button.addEventListener("click", () => play(moment, item));
    item.appendChild(button);
    list.appendChild(item);
  });
  const t = result.timing_ms;
  statusLine.textContent = `${result.moments.length} moments in ${t.total_ms.toFixed(1)} ms ` +
    `(encode ${t.encode_ms.toFixed(1)}, search ${t.search_ms.toFixed(1)}); stage: ` +
    (result.moments[0] ? result.moments[0].stage : "-");
}

async function search(q, k) {
  statusLine.textContent = "searching…";
  noMatch.hidden = true;
  const url = `/api/search?q=${encodeURIComponent(q)}&k=${k}&profile=true`;
  const response = await fetch(url, { headers: apiKey ? { "X-API-Key": apiKey } : {} });
  const body = await response.json();
  if (!response.ok) { statusLine.textContent = "error: " + body.error; list.replaceChildren(); return; }
  render(body);
}

form.addEventListener("submit", event => {
  event.preventDefault();
  const q = document.getElementById("q").value.trim();
  const k = document.getElementById("k").value || "10";
  const next = new URLSearchParams({ q, k });
  if (apiKey) next.set("key", apiKey);
  history.pushState(null, "", "?" + next.toString());  // the query is in the URL: shareable
  search(q, k);
});

if (params.get("q")) {
  document.getElementById("q").value = params.get("q");
  document.getElementById("k").value = params.get("k") || "10";
  search(params.get("q"), params.get("k") || "10");
}
