// The qmgr web console: polls the member's JSON API every second and
// draws the tables. Everything that comes from the API is put in the
// page as text (textContent), never as markup.
"use strict";

const POLL_MS = 1000;
const HISTORY = 300; // samples kept per queue: 5 minutes at one a second

const state = {
  queueHistory: new Map(), // queue name -> [{t, depth}]
  channelMsgs: new Map(),  // channel name -> {t, msgs}
  sort: { key: "name", dir: 1 },
  filter: "",
  descr: new Map(),        // queue name -> description (DISPLAY QLOCAL)
  actions: false,
  tick: 0,
  last: null,              // the last status, to draw the queues again when the filter or order changes
};

function $(id) { return document.getElementById(id); }

// el makes an element with text content and optional class.
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) tr.appendChild(c instanceof Node ? c : el("td", c));
  return tr;
}

function num(v) { return el("td", v, "num"); }

async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok && r.status !== 409) throw new Error(path + ": " + r.status);
  return r.json();
}

function stateCell(text) {
  const td = el("td");
  td.appendChild(el("span", text, "badge state-" + String(text).replace(/[^A-Za-z]/g, "")));
  return td;
}

function renderMembers(st) {
  const rows = (st.members || []).map(m => {
    const tr = row([el("td", m.name), stateCell(m.state), num(m.pid), num(m.incarnation),
      el("td", m.heartbeat_age || ""), el("td", m.log ? m.log.state + (m.log.reason ? ": " + m.log.reason : "") : "")]);
    tr.dataset.member = m.name;
    tr.dataset.state = m.state;
    return tr;
  });
  $("members").tBodies[0].replaceChildren(...rows);
}

function fillBar(used, max) {
  const td = el("td");
  const outer = el("div", null, "fill");
  const inner = el("div");
  const pct = max > 0 ? Math.min(100, 100 * used / max) : 0;
  inner.style.width = pct.toFixed(1) + "%";
  outer.appendChild(inner);
  outer.title = pct.toFixed(1) + "%";
  td.appendChild(outer);
  return td;
}

function renderStructures(st) {
  const rows = (st.structures || []).map(s => {
    const tr = row([el("td", s.name), el("td", s.size_mb + " MiB"), num(s.entries_used + " / " + s.entries),
      fillBar(s.entries_used, s.entries), num(s.connections), el("td", s.problem || "")]);
    tr.dataset.structure = s.name;
    return tr;
  });
  $("structures").tBodies[0].replaceChildren(...rows);
}

// sparkline is an SVG polyline of the samples ({t, depth}) of the last
// HISTORY seconds, the newest at the right edge, scaled to the largest.
function sparkline(samples, now) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 150 24");
  svg.setAttribute("preserveAspectRatio", "none");
  if (samples.length > 1) {
    const max = Math.max(1, ...samples.map(s => s.depth));
    const span = HISTORY * 1000;
    const pts = samples.map(s => (150 - 150 * Math.min(span, now - s.t) / span).toFixed(1) + "," + (23 - 22 * s.depth / max).toFixed(1));
    const pl = document.createElementNS(ns, "polyline");
    pl.setAttribute("points", pts.join(" "));
    svg.appendChild(pl);
  }
  return svg;
}

// queueRate is the per-second rate of the counter key (puts or gets) over
// the last ten seconds; 0 when the counter went back (the queue was
// deleted and defined again).
function queueRate(h, key) {
  if (h.length < 2) return 0;
  const last = h[h.length - 1];
  let first = h[0];
  for (let i = h.length - 1; i >= 0; i--) { if (last.t - h[i].t > 10000) break; first = h[i]; }
  const dt = (last.t - first.t) / 1000;
  const d = last[key] - first[key];
  return dt > 0 && d > 0 ? d / dt : 0;
}

function recordQueues(st, now) {
  const seen = new Set();
  for (const q of st.queues || []) {
    seen.add(q.name);
    let h = state.queueHistory.get(q.name);
    if (!h) { h = []; state.queueHistory.set(q.name, h); }
    h.push({ t: now, depth: q.depth, puts: q.puts || 0, gets: q.gets || 0 });
    if (h.length > HISTORY) h.shift();
  }
  for (const name of state.queueHistory.keys()) if (!seen.has(name)) state.queueHistory.delete(name);
}

function renderQueues(st) {
  const f = state.filter.toLowerCase();
  let qs = (st.queues || []).map(q => {
    const h = state.queueHistory.get(q.name) || [];
    return Object.assign({ descr: state.descr.get(q.name) || "", putRate: queueRate(h, "puts"), getRate: queueRate(h, "gets"), history: h }, q);
  }).filter(q => !f || q.name.toLowerCase().includes(f) || q.descr.toLowerCase().includes(f));
  const { key, dir } = state.sort;
  qs.sort((a, b) => (a[key] < b[key] ? -1 : a[key] > b[key] ? 1 : 0) * dir || (a.name < b.name ? -1 : 1));
  const rows = qs.map(q => {
    const spark = el("td");
    spark.appendChild(sparkline(q.history, q.history.length ? q.history[q.history.length - 1].t : 0));
    const tr = row([el("td", q.name), el("td", q.descr, "descr"), num(q.depth), num(q.putRate.toFixed(1)), num(q.getRate.toFixed(1)),
      num(q.uncommitted), num(q.open_input), num(q.open_output), spark]);
    tr.dataset.queue = q.name;
    tr.cells[2].classList.add("depth");
    return tr;
  });
  $("queues").tBodies[0].replaceChildren(...rows);
  for (const th of $("queues").tHead.rows[0].cells) {
    th.classList.toggle("sorted-asc", th.dataset.key === key && dir > 0);
    th.classList.toggle("sorted-desc", th.dataset.key === key && dir < 0);
  }
}

function actionButton(channel, verb) {
  const b = el("button", verb);
  b.addEventListener("click", () => channelAction(channel, verb));
  return b;
}

async function channelAction(channel, verb) {
  const token = $("token").value;
  const out = $("action-result");
  try {
    const r = await fetch("/api/channels/" + encodeURIComponent(channel) + "/" + verb,
      { method: "POST", headers: { "Authorization": "Bearer " + token } });
    const body = await r.json();
    out.textContent = verb + " " + channel + ": " + (r.ok ? body.text || "done" : body.error || r.status);
  } catch (e) {
    out.textContent = verb + " " + channel + ": " + e.message;
  }
}

function renderChannels(d, now) {
  const objs = d.objects || [];
  const rows = objs.map(c => {
    const prev = state.channelMsgs.get(c.CHANNEL);
    let rate = 0;
    if (prev && now > prev.t) rate = (c.MSGS - prev.msgs) * 1000 / (now - prev.t);
    state.channelMsgs.set(c.CHANNEL, { t: now, msgs: c.MSGS });
    const act = el("td");
    if (state.actions) { act.appendChild(actionButton(c.CHANNEL, "start")); act.appendChild(actionButton(c.CHANNEL, "stop")); }
    const tr = row([el("td", c.CHANNEL), el("td", c.CHLTYPE), stateCell(c.STATUS), el("td", c.OWNER), num(c.MSGS),
      num(rate.toFixed(1)), num(c.INDOUBT), num(c.RETRIES), el("td", c.CONNAME), el("td", c.REASON), act]);
    tr.dataset.channel = c.CHANNEL;
    return tr;
  });
  $("channels").tBodies[0].replaceChildren(...rows);
  $("channels-none").hidden = rows.length > 0;
}

function renderBackups(d) {
  const rows = (d.objects || []).map(b => row([el("td", b.CFSTRUCT),
    el("td", b.BKUPDATE ? b.BKUPDATE + " " + b.BKUPTIME : "never"), num(b.BKUPMSGS), num(b.BKUPSIZE),
    num(b.LOGBYTES), num((b.RECOVERMS / 1000).toFixed(1) + " s")]));
  $("backups").tBodies[0].replaceChildren(...rows);
}

function renderRecoveries(d) {
  const rows = (d.recoveries || []).slice().reverse().map(r => row([el("td", new Date(r.started).toLocaleString()),
    el("td", r.peer), num(r.pid), num(r.incarnation), num(r.connections), num((r.took_ns / 1e6).toFixed(1) + " ms")]));
  $("recoveries").tBodies[0].replaceChildren(...rows);
  $("recoveries-none").hidden = rows.length > 0;
}

function setConn(ok, text) {
  const c = $("conn");
  c.textContent = text;
  c.className = "badge " + (ok ? "ok" : "bad");
}

async function poll() {
  const now = Date.now();
  try {
    const slow = state.tick % 5 === 0; // definitions and backups change seldom
    const [member, st, ch, rec, ql, bk] = await Promise.all([getJSON("/api/member"), getJSON("/api/status"),
      getJSON("/api/display/chstatus"), getJSON("/api/recoveries"),
      slow ? getJSON("/api/display/qlocal") : null, slow ? getJSON("/api/display/backups") : null]);
    state.tick++;
    $("group").textContent = st.group;
    $("member").textContent = member.member;
    for (const e of document.querySelectorAll(".member-name")) e.textContent = member.member;
    $("ready").textContent = member.ready ? "ready" : "not ready";
    $("ready").className = "badge " + (member.ready ? "ok" : "bad");
    $("ready").title = member.reason || "";
    state.actions = member.actions;
    $("token-box").hidden = !member.actions;
    if (ql) state.descr = new Map((ql.objects || []).map(q => [q.QUEUE, q.DESCR || ""]));
    recordQueues(st, now);
    state.last = st;
    renderMembers(st);
    renderStructures(st);
    renderQueues(st);
    renderChannels(ch, now);
    renderRecoveries(rec);
    if (bk) renderBackups(bk);
    setConn(true, "live");
    document.body.dataset.updated = String(state.tick);
  } catch (e) {
    setConn(false, "no answer: " + e.message);
  }
  setTimeout(poll, POLL_MS);
}

function init() {
  $("queue-filter").addEventListener("input", e => { state.filter = e.target.value; if (state.last) renderQueues(state.last); });
  for (const th of $("queues").tHead.rows[0].cells) {
    if (!th.dataset.key) continue;
    th.addEventListener("click", () => {
      const k = th.dataset.key;
      state.sort = { key: k, dir: state.sort.key === k ? -state.sort.dir : 1 };
      if (state.last) renderQueues(state.last);
    });
  }
  poll();
}

document.addEventListener("DOMContentLoaded", init);
