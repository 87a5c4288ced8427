// Pelagos dashboard: follows /ui/events (server-sent events, docs/REST.md
// "Dashboard") and never polls the server. Every piece of data reaches the
// page through textContent or an attribute, never as markup: node names,
// console lines and task logs are untrusted.
"use strict";

const CONSOLE_KEEP = 200;

const state = {
  nodes: new Map(),     // name -> node view
  order: [],            // node names, lab order
  tasks: new Map(),     // id -> task view
  consoles: new Map(),  // name -> [lines]
  skew: 0,              // server seconds - browser seconds
  openConsoles: new Set(),
  openLogs: new Set(),
};
const rows = { nodes: new Map(), tasks: new Map() };

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function now() { return Date.now() / 1000 + state.skew; }

function duration(s) {
  s = Math.max(0, Math.round(s));
  if (s < 60) return s + "s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + "m " + (s % 60) + "s";
  return Math.floor(m / 60) + "h " + (m % 60) + "m";
}

function clock(t) {
  return new Date(t * 1000).toLocaleString();
}

function taskState(t) {
  if (t.end === null || t.end === undefined) return "running";
  return t.code === 200 ? "done" : "failed";
}

function statusText(t) {
  const s = taskState(t);
  if (s === "running") return "running";
  let text = (t.stopped ? "dismissed " : "") + t.code;
  if (t.result) text += " " + t.result;
  return text;
}

function activeTask(name) {
  let best = null;
  for (const t of state.tasks.values()) {
    if (t.node === name && taskState(t) === "running" && (!best || t.start >= best.start)) best = t;
  }
  return best;
}

function elapsedSpan(start, end) {
  const span = el("span", "elapsed");
  span.dataset.start = String(start);
  if (end !== null && end !== undefined) span.dataset.end = String(end);
  span.textContent = duration((end ?? now()) - start);
  return span;
}

// ---- nodes ---------------------------------------------------------------

function nodeRow(name) {
  const tr = el("tr", "node");
  tr.dataset.node = name;
  const detail = el("tr", "detail");
  detail.dataset.consoleOf = name;
  const td = el("td");
  td.colSpan = 7;
  const pre = el("pre", "console-tail");
  td.append(pre);
  detail.append(td);
  detail.hidden = !state.openConsoles.has(name);
  const r = { tr, detail, pre };
  rows.nodes.set(name, r);
  fillNode(name);
  fillConsole(name);
  return r;
}

function fillNode(name) {
  const r = rows.nodes.get(name);
  const n = state.nodes.get(name);
  if (!r || !n) return;
  const tr = r.tr;
  tr.replaceChildren();
  const problems = n.problems || [];
  tr.classList.toggle("disabled", problems.length > 0);

  const nameCell = el("td", "name", n.name);
  if (problems.length > 0) {
    nameCell.append(el("span", "badge", "disabled"));
    const ul = el("ul", "problems");
    for (const p of problems) ul.append(el("li", null, p));
    nameCell.append(ul);
  }
  tr.append(nameCell);
  tr.append(el("td", "mono bmc", n.bmc || "none"));
  const power = n.power || "unknown";
  tr.append(el("td", "power power-" + power, power === "unknown" ? "unknown" : power));
  tr.append(el("td", "mono os", n.os));

  const taskCell = el("td", "task");
  const t = activeTask(name);
  if (t) {
    taskCell.dataset.task = t.id;
    taskCell.append(el("span", "task-os", t.os + " "), elapsedSpan(t.start, null));
    taskCell.append(el("div", "stage", t.stage || "starting"));
  } else {
    taskCell.append(el("span", "muted", "idle"));
  }
  tr.append(taskCell);

  const con = el("td", "console", n.console ?? "");
  if (n.console) con.title = n.console;
  tr.append(con);

  const btnCell = el("td");
  const btn = el("button", "toggle-console", "console");
  btn.type = "button";
  btn.setAttribute("aria-expanded", String(state.openConsoles.has(name)));
  btn.addEventListener("click", () => {
    const open = !state.openConsoles.has(name);
    if (open) state.openConsoles.add(name); else state.openConsoles.delete(name);
    btn.setAttribute("aria-expanded", String(open));
    r.detail.hidden = !open;
    if (open) fillConsole(name);
  });
  btnCell.append(btn);
  tr.append(btnCell);
}

function fillConsole(name) {
  const r = rows.nodes.get(name);
  if (!r) return;
  const lines = state.consoles.get(name) || [];
  r.pre.textContent = lines.length ? lines.join("\n") : "(no console output yet)";
  if (!r.detail.hidden) r.pre.scrollTop = r.pre.scrollHeight;
}

function renderNodes() {
  const body = document.querySelector("#nodes tbody");
  rows.nodes.clear();
  const frag = document.createDocumentFragment();
  for (const name of state.order) {
    const r = nodeRow(name);
    frag.append(r.tr, r.detail);
  }
  body.replaceChildren(frag);
  document.getElementById("node-count").textContent = "(" + state.order.length + ")";
}

// ---- tasks ---------------------------------------------------------------

function taskRow(id) {
  const tr = el("tr", "task");
  tr.dataset.task = id;
  const detail = el("tr", "detail");
  detail.dataset.logOf = id;
  const td = el("td");
  td.colSpan = 7;
  const pre = el("pre", "log");
  td.append(pre);
  detail.append(td);
  detail.hidden = !state.openLogs.has(id);
  const r = { tr, detail, pre, fetching: false, again: false };
  rows.tasks.set(id, r);
  fillTask(id);
  return r;
}

function fillTask(id) {
  const r = rows.tasks.get(id);
  const t = state.tasks.get(id);
  if (!r || !t) return;
  const s = taskState(t);
  r.tr.dataset.state = s;
  r.tr.replaceChildren();
  r.tr.append(el("td", "mono id", t.id));
  r.tr.append(el("td", "node", t.node));
  r.tr.append(el("td", "mono os", t.os));
  r.tr.append(el("td", "started", clock(t.start)));
  const took = el("td");
  took.append(elapsedSpan(t.start, t.end));
  r.tr.append(took);
  const status = el("td");
  status.append(el("span", "status", statusText(t)));
  if (s === "running") status.append(el("div", "stage", t.stage || "starting"));
  r.tr.append(status);
  const btnCell = el("td");
  const btn = el("button", "toggle-log", "log");
  btn.type = "button";
  btn.setAttribute("aria-expanded", String(state.openLogs.has(id)));
  btn.addEventListener("click", () => {
    const open = !state.openLogs.has(id);
    if (open) state.openLogs.add(id); else state.openLogs.delete(id);
    btn.setAttribute("aria-expanded", String(open));
    r.detail.hidden = !open;
    if (open) loadLog(id);
  });
  btnCell.append(btn);
  r.tr.append(btnCell);
  if (state.openLogs.has(id)) loadLog(id);
}

// The log of one task, fetched when it is opened and again when the task
// changes while it is open (an event, not a timer).
async function loadLog(id) {
  const r = rows.tasks.get(id);
  if (!r) return;
  if (r.fetching) { r.again = true; return; }
  r.fetching = true;
  try {
    const resp = await fetch("/tasks/log/" + encodeURIComponent(id), { credentials: "same-origin" });
    const body = await resp.json();
    r.pre.textContent = resp.ok ? (body.LogData || "(empty log)") : (body.error || ("HTTP " + resp.status));
  } catch (e) {
    r.pre.textContent = "cannot load the log: " + e;
  } finally {
    r.fetching = false;
    if (r.again) { r.again = false; loadLog(id); }
  }
}

function taskOrder() {
  return [...state.tasks.values()].sort((a, b) => (b.start - a.start) || (a.id < b.id ? 1 : -1));
}

function renderTasks() {
  const body = document.querySelector("#tasks tbody");
  rows.tasks.clear();
  const frag = document.createDocumentFragment();
  for (const t of taskOrder()) {
    const r = taskRow(t.id);
    frag.append(r.tr, r.detail);
  }
  body.replaceChildren(frag);
  taskCount();
}

function taskCount() {
  document.getElementById("task-count").textContent = "(" + state.tasks.size + ")";
  document.getElementById("no-tasks").hidden = state.tasks.size > 0;
}

function upsertTask(t) {
  const old = state.tasks.get(t.id);
  state.tasks.set(t.id, t);
  if (rows.tasks.has(t.id)) {
    fillTask(t.id);
  } else {
    // New tasks are the newest: on top.
    const r = taskRow(t.id);
    document.querySelector("#tasks tbody").prepend(r.tr, r.detail);
    taskCount();
  }
  fillNode(t.node);
  if (old && old.node !== t.node) fillNode(old.node);
}

function removeTask(id) {
  const t = state.tasks.get(id);
  state.tasks.delete(id);
  state.openLogs.delete(id);
  const r = rows.tasks.get(id);
  if (r) { r.tr.remove(); r.detail.remove(); rows.tasks.delete(id); }
  if (t) fillNode(t.node);
  taskCount();
}

// ---- events --------------------------------------------------------------

function onSnapshot(s) {
  state.skew = s.now - Date.now() / 1000;
  state.nodes.clear();
  state.order = [];
  for (const n of s.nodes) { state.nodes.set(n.name, n); state.order.push(n.name); }
  state.tasks.clear();
  for (const t of s.tasks) state.tasks.set(t.id, t);
  state.consoles.clear();
  for (const [name, lines] of Object.entries(s.consoles || {})) state.consoles.set(name, lines.slice(-CONSOLE_KEEP));
  renderTasks();
  renderNodes();
}

function onConsole(c) {
  const lines = (state.consoles.get(c.node) || []).concat(c.lines);
  state.consoles.set(c.node, lines.slice(-CONSOLE_KEEP));
  fillConsole(c.node);
}

function connect() {
  const conn = document.getElementById("conn");
  const es = new EventSource("/ui/events");
  const on = (name, f) => es.addEventListener(name, (ev) => {
    try { f(JSON.parse(ev.data)); } catch (e) { console.error("bad " + name + " event", e); }
  });
  on("snapshot", (s) => { onSnapshot(s); conn.dataset.state = "live"; conn.textContent = "live"; });
  on("node", (n) => { state.nodes.set(n.name, n); fillNode(n.name); });
  on("task", upsertTask);
  on("task-removed", (r) => removeTask(r.id));
  on("console", onConsole);
  es.onerror = () => {
    // EventSource reconnects by itself; the server then sends a new snapshot.
    conn.dataset.state = "lost";
    conn.textContent = "reconnecting…";
  };
}

// Elapsed times advance locally, from the server's clock (skew).
setInterval(() => {
  for (const span of document.querySelectorAll(".elapsed")) {
    if (span.dataset.end === undefined) span.textContent = duration(now() - Number(span.dataset.start));
  }
}, 1000);

connect();
