// The officers' page: state from /api/state, live events from /api/events (server-sent events).
// Every text from a payload goes through textContent (never innerHTML): shown as text, never run.
// Images are fetched from no-store URLs and never put in browser storage.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const model = { queue: new Map(), history: [], units: [], flagged: [], records: [], officer: "", twoOfficer: false,
                serverSkew: 0 };
let muted = sessionStorage.getItem("lfr-muted") === "1";
let lastTouch = 0;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(method, path, body) {
  const options = { method, credentials: "same-origin", headers: { "X-CSRF-Token": csrf } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (response.status === 401 && !path.endsWith("/countersign")) { location.reload(); return null; }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || ("HTTP " + response.status));
  return data;
}

function toast(text) {
  const node = document.getElementById("toast");
  node.textContent = text;
  node.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => node.classList.remove("show"), 4000);
}

function beep() {
  if (muted) return;
  try {
    const audio = beep.ctx || (beep.ctx = new AudioContext());
    const osc = audio.createOscillator(), gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.25, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.6);
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.6);
  } catch (err) { /* no audio device: the visual cue remains */ }
}

function ago(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min ago";
}

function now() { return Date.now() / 1000 + model.serverSkew; }

// --- status bar ---

function renderUnits() {
  const box = document.getElementById("units");
  box.replaceChildren(...model.units.map((u) => {
    const state = u.stale && u.state === "online" ? "stale" : u.state;
    const label = state === "offline" ? "unit offline" : state === "stale" ? "no heartbeat" : state;
    const figures = [];
    if (u.pipeline && u.pipeline !== "running") figures.push("pipeline " + u.pipeline + (u.pipeline_reason ? ": " + u.pipeline_reason : ""));
    if (u.frames_per_s !== undefined) figures.push(u.frames_per_s.toFixed(1) + " frames/s");
    if (u.deployment_id) figures.push("deployment " + u.deployment_id);
    if (u.deployment_ends) figures.push(el("span", { class: "time-left", "data-until": u.deployment_ends }));
    if (u.watchlist_entries !== undefined) figures.push("watchlist " + u.watchlist_entries);
    if (u.outbox_pending !== undefined) figures.push("outbox " + u.outbox_pending);
    const parts = figures.flatMap((f, i) => (i ? [" · ", f] : [f]));
    return el("div", { class: "unit", "data-unit": u.unit },
      el("strong", {}, u.unit), el("span", { class: "badge " + state, title: u.reason || "" }, label),
      el("span", { class: "figures" }, ...parts));
  }));
  tick();
}

function renderLink(connected) {
  const node = document.getElementById("link-state");
  node.textContent = connected ? "broker connected" : "broker unreachable";
  node.className = "badge " + (connected ? "online" : "offline");
}

// --- the alert queue ---

function faces(card) {
  if (!card.image_alert) {
    const gone = el("div", { class: "gone" }, "Images forgotten (deployment ended or retention passed)");
    return el("div", { class: "faces" }, gone, gone.cloneNode(true));
  }
  const base = "/api/alerts/" + encodeURIComponent(card.image_alert);
  return el("div", { class: "faces", "data-images": card.image_alert },
    el("figure", {}, el("img", { src: base + "/face.jpg", alt: "face seen by the camera", class: "face" }),
       el("figcaption", {}, "seen now")),
    el("figure", {}, el("img", { src: base + "/reference.jpg", alt: "watchlist reference", class: "reference" }),
       el("figcaption", {}, "watchlist reference")));
}

function facts(card) {
  const a = card.latest;
  const quality = Object.entries(a.quality || {}).map(([k, v]) => k + " " + Number(v).toFixed(2)).join(", ");
  return el("div", { class: "facts" },
    el("h2", { class: "subject" }, a.subject_ref),
    el("div", { class: "category" }, a.category || "(no category)"),
    card.sightings > 1 ? el("div", { class: "sightings" }, card.sightings + " sightings") : null,
    card.repeat_sightings ? el("div", { class: "repeats" },
      card.repeat_sightings > 1 ? card.repeat_sightings + " repeat sightings (not alarms)"
        : "1 repeat sighting (not an alarm)") : null,
    el("dl", {},
      el("dt", {}, "score"), el("dd", { class: "score" }, a.score.toFixed(3) + " (threshold " + a.threshold.toFixed(3) + ")"),
      el("dt", {}, "quality"), el("dd", {}, quality || "-"),
      el("dt", {}, "camera"), el("dd", {}, card.unit + " / " + a.camera),
      el("dt", {}, "seen"), el("dd", { class: "since", "data-since": card.last_seen }, ago(now() - card.last_seen)),
      el("dt", {}, "deployment"), el("dd", {}, card.deployment_id)),
    actions(card));
}

function actions(card) {
  const note = el("input", { class: "note", maxlength: "200", placeholder: "note (optional)" });
  const decide = (decision) => async () => {
    try {
      const data = await api("POST", "/api/cards/" + encodeURIComponent(card.card_id) + "/decision",
                             { decision, note: note.value });
      upsert(data.card);
    } catch (err) { toast(err.message); }
  };
  const box = el("div", { class: "actions" }, note,
    el("button", { type: "button", class: "confirm", onclick: decide("confirm") },
       card.state === "awaiting_second" ? "Confirm as second officer" : "Confirm"),
    el("button", { type: "button", class: "reject", onclick: decide("reject") }, "Reject"),
    el("button", { type: "button", class: "unable", onclick: decide("unable") }, "Unable to verify"));
  if (card.state !== "awaiting_second") return box;
  return el("div", {}, secondOfficer(card, note), box);
}

function secondOfficer(card, note) {
  const id = el("input", { class: "second-id", placeholder: "second officer id", maxlength: "64" });
  const pin = el("input", { class: "second-pin", type: "password", inputmode: "numeric", placeholder: "PIN", maxlength: "12" });
  const go = async () => {
    try {
      const data = await api("POST", "/api/cards/" + encodeURIComponent(card.card_id) + "/countersign",
                             { officer_id: id.value, pin: pin.value, note: note.value });
      upsert(data.card);
    } catch (err) { pin.value = ""; toast(err.message); }
  };
  return el("div", { class: "second" },
    el("p", {}, "Confirmed by " + card.first_officer + ". A second, different officer must confirm."),
    card.first_note ? el("div", { class: "first-note" }, "Note: " + card.first_note) : null,
    id, " ", pin, " ", el("button", { type: "button", class: "countersign confirm", onclick: go }, "Second officer confirms"));
}

function renderCard(card) {
  const old = document.getElementById("card-" + card.card_id);
  const keep = old && old.querySelector(".faces") && old.querySelector(".faces").dataset.images === card.image_alert
    ? old.querySelector(".faces") : faces(card);
  const node = el("article", { class: "card " + card.state, id: "card-" + card.card_id, "data-card-id": card.card_id,
                               "data-state": card.state, "data-alerts": card.alert_ids.join(" ") },
                  keep, facts(card));
  if (old) old.replaceWith(node);
  else document.getElementById("cards").prepend(node);
}

function upsert(card) {
  if (card.state === "decided") {
    model.queue.delete(card.card_id);
    const old = document.getElementById("card-" + card.card_id);
    if (old) old.remove();
    model.history = [card, ...model.history.filter((c) => c.card_id !== card.card_id)];
    renderHistory();
  } else {
    model.queue.set(card.card_id, card);
    renderCard(card);
  }
  document.getElementById("queue-count").textContent = String(model.queue.size);
  document.getElementById("queue-empty").hidden = model.queue.size > 0;
}

function renderFlagged() {
  document.getElementById("flagged").replaceChildren(...model.flagged.map((f) =>
    el("div", { class: "flag", "data-flag": f.alert_id },
      el("strong", {}, "UNVERIFIED: DO NOT ACT"), " ",
      el("span", {}, f.kind + " on " + f.unit + ": " + f.problem),
      el("div", { class: "text" }, "claims subject ", el("b", { class: "flag-subject" }, f.subject_ref),
         ", category ", el("b", { class: "flag-category" }, f.category)))));
}

function renderHistory() {
  document.getElementById("history-rows").replaceChildren(...model.history.map((c) =>
    el("tr", { "data-card-id": c.card_id },
      el("td", {}, new Date(c.decided * 1000).toLocaleTimeString()), el("td", {}, c.unit),
      el("td", {}, c.subject_ref), el("td", {}, c.latest.category), el("td", {}, c.sightings),
      el("td", { class: "decision" }, c.decision), el("td", { class: "officers" }, c.officer_ids.join(", ")),
      el("td", {}, c.note || ""))));
}

const RECORD_ROWS = [["date", "Date"], ["location", "Location"], ["started", "Started"], ["ended", "Ended"],
  ["watchlist_size", "Watchlist size"], ["faces_seen", "Faces seen"], ["alerts", "Alerts"],
  ["repeat_sightings", "Repeat sightings (not alarms)"],
  ["confirmed_true", "Confirmed true"], ["confirmed_false", "Confirmed false"], ["unable", "Unable to verify"],
  ["not_adjudicated", "Not adjudicated"], ["verified_alert_rate", "Officer-verified alert rate"],
  ["false_alerts_per_1000_faces", "False alerts per 1,000 faces"], ["threshold", "Threshold"], ["model_id", "Model"]];

function renderRecords() {
  document.getElementById("record-list").replaceChildren(...model.records.map((r) => {
    const base = "/api/records/" + encodeURIComponent(r.unit) + "/" + encodeURIComponent(r.deployment_id);
    const value = (k) => (r[k] === null || r[k] === undefined ? "n/a"
      : k === "verified_alert_rate" ? (r[k] * 100).toFixed(1) + "%"
      : k === "false_alerts_per_1000_faces" ? Number(r[k]).toFixed(3) : String(r[k]));
    return el("div", { class: "record", "data-deployment": r.deployment_id },
      el("h2", {}, "Deployment " + r.deployment_id + " (" + r.unit + ")"),
      el("p", {}, el("a", { href: base + ".json", download: "", class: "download-json" }, "Download JSON"),
                  el("a", { href: base + ".csv", download: "", class: "download-csv" }, "Download CSV")),
      el("dl", { class: "figures" }, ...RECORD_ROWS.flatMap(([k, label]) =>
        [el("dt", {}, label), el("dd", { "data-field": k }, value(k))])));
  }));
}

function tick() {
  for (const node of document.querySelectorAll("[data-since]")) node.textContent = ago(now() - Number(node.dataset.since));
  for (const node of document.querySelectorAll("[data-until]")) {
    const left = Number(node.dataset.until) - now();
    node.textContent = left > 0 ? Math.floor(left / 3600) + " h " + Math.floor((left % 3600) / 60) + " min left" : "window over";
  }
}

// --- loading and live events ---

// A live event and a state load can cross: /api/state may answer with what the server had before
// the event it has just pushed. A card a live event touched after a load was asked for is newer
// than that load's copy, so the load leaves it alone (it neither removes nor overwrites it).
const touched = new Map();  // card_id -> performance.now() of the last live event about it
const RESYNC_MS = 15000;    // safety net: compare with the server's state this often
let rescued = 0;            // cards only a periodic resync found: the live feed lost them
let loaded = false;         // the first load finds the queue; later ones ring for cards that are new

function touch(card) { touched.set(card.card_id, performance.now()); }
function newerThan(id, started) { return (touched.get(id) || -1) > started; }

async function load(resync = false) {
  const started = performance.now();
  const state = await api("GET", "/api/state");
  if (!state) return;
  model.serverSkew = state.server_time - Date.now() / 1000;
  model.officer = state.officer;
  model.twoOfficer = state.two_officer;
  model.units = state.units;
  model.flagged = state.flagged;
  model.history = state.history;
  model.records = state.records;
  const wanted = new Set(state.queue.map((c) => c.card_id));
  for (const id of model.queue.keys()) {
    if (wanted.has(id) || newerThan(id, started)) continue;
    model.queue.delete(id);
    const n = document.getElementById("card-" + id);
    if (n) n.remove();
  }
  const fresh = state.queue.filter((c) => !model.queue.has(c.card_id) && !newerThan(c.card_id, started));
  for (const card of [...state.queue].reverse()) if (!newerThan(card.card_id, started)) upsert(card);
  if (loaded && fresh.length) beep();  // after a reconnect or a resync: alerts the live feed did not bring
  if (resync && fresh.length) {
    rescued += fresh.length;
    document.body.dataset.rescued = String(rescued);
  }
  loaded = true;
  renderLink(state.link); renderUnits(); renderFlagged(); renderHistory(); renderRecords();
  document.getElementById("queue-empty").hidden = model.queue.size > 0;
}

function onEvent(message) {
  const event = JSON.parse(message.data);
  switch (event.kind) {
    case "alert": touch(event.card); upsert(event.card); beep(); break;
    case "sighting": case "card": touch(event.card); upsert(event.card); break;
    case "units": model.units = event.units; renderUnits(); break;
    case "flagged": model.flagged = [event.flag, ...model.flagged].slice(0, 50); renderFlagged(); break;
    case "link": renderLink(event.connected); break;
    case "signed_out": location.reload(); break;
    default: load().catch((err) => toast(err.message)); // record, resync
  }
}

// The live feed: EventSource retries by itself after a network error, but gives up for good
// (CLOSED) on some answers (a restarted console, a proxy error); then it is opened again here.
function connect() {
  document.body.dataset.live = "connecting";
  const source = new EventSource("/api/events");
  source.onmessage = onEvent;
  source.onopen = () => {
    document.body.dataset.live = "open";
    load().catch((err) => toast(err.message));
  };
  source.onerror = () => {
    if (source.readyState !== EventSource.CLOSED) { document.body.dataset.live = "connecting"; return; }
    document.body.dataset.live = "closed";
    source.close();
    setTimeout(connect, 2000);
  };
}

function showTab(name) {
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const s of document.querySelectorAll(".tab")) s.classList.toggle("active", s.id === name);
}

function setMuted(value) {
  muted = value;
  sessionStorage.setItem("lfr-muted", value ? "1" : "0");
  const button = document.getElementById("mute");
  button.textContent = value ? "Sound off" : "Sound on";
  button.setAttribute("aria-pressed", String(value));
}

function activity() {  // the idle sign-out counts officers' actions, not the live feed
  if (Date.now() - lastTouch < 30000) return;
  lastTouch = Date.now();
  api("POST", "/api/touch", {}).catch(() => {});
}

document.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  document.getElementById("mute").addEventListener("click", () => setMuted(!muted));
  document.getElementById("signout").addEventListener("click", async () => {
    await api("POST", "/signout", {}).catch(() => {});
    location.reload();
  });
  document.addEventListener("pointerdown", activity);
  document.addEventListener("keydown", activity);
  setMuted(muted);
  document.body.dataset.rescued = "0";
  connect();
  setInterval(() => load(true).catch(() => {}), RESYNC_MS);
  setInterval(tick, 1000);
});
