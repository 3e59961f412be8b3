// The admin console: approvals inbox and session replay viewer, over the admin API.
//
// Security: every piece of data (the masked content is still untrusted input) is put into the page as text
// (textContent / text nodes), never parsed as HTML. The bearer token lives in sessionStorage for this tab only
// and travels in the Authorization header, never in a URL. The page's CSP forbids inline code and any other
// origin, so nothing here may rely on either.
import {
  apiPath, buildQuery, createPlayer, createTranscript, errorMessage, filenameFromDisposition, formatCounts,
  formatDuration, localInputToIso, offsets, parseRoute, relativeTime, routeHash,
} from "./logic.mjs";

const TOKEN_KEY = "gateway.admin.token";
const REFRESH_MS = 5000;
const RAW_CHUNKS_SHOWN = 2000;

const $ = (id) => document.getElementById(id);

/** A DOM element. `props` are set as properties by code in this file (never from data, never HTML); children
 * that are strings become text nodes. */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (/html/i.test(k)) throw new Error("el(): no HTML properties");
    else node[k] = v;
  }
  append(node, ...children);
  return node;
}

function append(node, ...children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
}

function setText(node, text) {
  node.textContent = text;
}

function localTime(iso) {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? String(iso ?? "") : new Date(t).toLocaleString();
}

/** <time> with the local time shown and the exact recorded value on hover. */
function timeEl(iso, withRelative = false) {
  const node = el("time", { dateTime: String(iso ?? ""), title: String(iso ?? "") }, localTime(iso));
  if (withRelative && iso) append(node, " (", relativeTime(iso, Date.now()), ")");
  return node;
}

function field(dl, label, ...value) {
  if (value.every((v) => v === null || v === undefined || v === "")) return;
  append(dl, el("dt", {}, label), el("dd", {}, ...value));
}

// -- messages ----------------------------------------------------------------------------------------------------

function showError(message) {
  const box = $("alert");
  setText(box, message);
  box.hidden = false;
}

function clearError() {
  $("alert").hidden = true;
}

let noticeTimer = null;
function notice(message) {
  const box = $("notice");
  setText(box, message);
  box.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { box.hidden = true; }, 6000);
}

// -- token and API calls -----------------------------------------------------------------------------------------

function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

function saveToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    showError("This browser refuses sessionStorage: the token cannot be kept.");
  }
  showTokenState();
}

function showTokenState() {
  setText($("token-state"), getToken() ? "token set (this tab only)" : "no token");
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** One admin API call with the token; an `ApiError` carries the gateway's error message. `raw`: the Response. */
async function api(path, { method = "GET", body, accept = "application/json", raw = false } = {}) {
  const token = getToken();
  if (!token) throw new ApiError(0, "Paste a bearer token first (top right): an approver's or an investigator's.");
  const headers = { Authorization: `Bearer ${token}`, Accept: accept };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit", cache: "no-store", redirect: "error", referrerPolicy: "no-referrer",
    });
  } catch (e) {
    throw new ApiError(0, `The gateway could not be reached (${e.message}).`);
  }
  if (!resp.ok) throw new ApiError(resp.status, errorMessage(resp.status, await resp.text()));
  if (raw) return resp;
  try {
    return await resp.json();
  } catch {
    throw new ApiError(resp.status, "The gateway's answer was not the JSON expected.");
  }
}

const authProblem = (e) => e instanceof ApiError && (e.status === 0 || e.status === 401 || e.status === 403);

// -- views -------------------------------------------------------------------------------------------------------

let currentView = null;

function route() {
  const { view, id } = parseRoute(location.hash);
  if (view !== currentView) {
    currentView = view;
    $("view-approvals").hidden = view !== "approvals";
    $("view-sessions").hidden = view !== "sessions";
    for (const name of ["approvals", "sessions"]) {
      const link = $("nav-" + name);
      if (name === view) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }
  if (view === "approvals") approvalsRoute(id);
  else sessionsRoute(id);
}

// -- approvals inbox ---------------------------------------------------------------------------------------------

const approvals = { items: [], next: null, selected: null, detail: null, loading: false, paused: false };

function approvalsRoute(id) {
  approvals.selected = id;
  if (id) loadApproval(id);
  else $("approval-detail").hidden = true;
  loadApprovals();
}

async function loadApprovals({ more = false } = {}) {
  if (approvals.loading || !getToken()) return;
  approvals.loading = true;
  const state = $("approvals-state").value;
  const q = buildQuery({ state: state === "all" ? "" : state, cursor: more ? approvals.next : "" });
  try {
    const page = await api(apiPath("approvals") + q);
    const items = Array.isArray(page.approvals) ? page.approvals : [];
    approvals.items = more ? approvals.items.concat(items) : items;
    approvals.next = page.next || null;
    approvals.paused = false;
    renderApprovals();
    setText($("approvals-status"), "updated " + new Date().toLocaleTimeString());
    clearError();
  } catch (e) {
    showError(e.message);
    if (authProblem(e)) {
      approvals.paused = true; // every call is audited: do not hammer the API with a token that fails
      setText($("approvals-status"), "auto-refresh paused: check the token, then Refresh");
    }
  } finally {
    approvals.loading = false;
  }
}

function approvalCount(a) {
  const n = typeof a.approvals === "number" ? a.approvals
    : (Array.isArray(a.decisions) ? a.decisions.filter((d) => d && d.decision === "approve").length : 0);
  return a.min_approvals ? `${n}/${a.min_approvals}` : String(n);
}

function requesterText(a) {
  const r = a.requester || {};
  const groups = Array.isArray(r.groups) && r.groups.length ? ` (${r.groups.join(", ")})` : "";
  return `${r.sub ?? "?"}${groups}`;
}

function renderApprovals() {
  const now = Date.now();
  const rows = approvals.items.map((a) => {
    const open = () => { location.hash = routeHash("approvals", a.id); };
    const tr = el("tr", {
      tabIndex: 0, className: a.id === approvals.selected ? "selected" : "",
      onclick: open, onkeydown: (ev) => { if (ev.key === "Enter") open(); },
    },
    el("td", {}, requesterText(a)),
    el("td", {}, a.rule ?? ""),
    el("td", {}, [a.method, a.path].filter(Boolean).join(" ")),
    el("td", { title: String(a.created_at ?? "") }, relativeTime(a.created_at, now).replace(/ ago$/, "")),
    el("td", { title: String(a.expires_at ?? "") }, relativeTime(a.expires_at, now)),
    el("td", {}, el("span", { className: "state state-" + String(a.state) }, a.state ?? "")),
    el("td", {}, approvalCount(a)));
    return tr;
  });
  $("approvals-table").tBodies[0].replaceChildren(...rows);
  $("approvals-empty").hidden = rows.length > 0;
  $("approvals-more").hidden = !approvals.next;
}

async function loadApproval(id, { quiet = false } = {}) {
  try {
    const a = await api(apiPath("approvals", id));
    if (approvals.selected !== id) return; // the user moved on meanwhile
    approvals.detail = a;
    renderApproval(a);
  } catch (e) {
    if (!quiet) showError(e.message);
  }
}

function renderApproval(a) {
  const dl = el("dl", { className: "facts" });
  field(dl, "State", el("span", { className: "state state-" + String(a.state) }, a.state ?? ""),
    a.end_reason ? ` (${a.end_reason})` : "");
  field(dl, "Rule", a.rule);
  field(dl, "Requester", requesterText(a));
  field(dl, "Request", [a.method, a.path].filter(Boolean).join(" "));
  if (a.session_id) {
    field(dl, "Session", el("a", { href: routeHash("sessions", a.session_id) }, a.session_id));
  }
  field(dl, "Created", a.created_at ? timeEl(a.created_at, true) : "");
  field(dl, "Expires", a.expires_at ? timeEl(a.expires_at, true) : "");
  if (a.decided_at) field(dl, "Decided", timeEl(a.decided_at, true));
  field(dl, "Approvals", approvalCount(a));
  if (Array.isArray(a.approver_groups)) field(dl, "Approver groups", a.approver_groups.join(", "));
  field(dl, "Request id", a.request_id);

  const decisions = Array.isArray(a.decisions) ? a.decisions : [];
  const list = decisions.length
    ? el("ul", { className: "decisions" }, decisions.map((d) => el("li", {},
      el("strong", {}, d.by ?? "?"), " ", el("span", { className: "state state-" + d.decision }, d.decision ?? ""),
      d.at ? [" ", timeEl(d.at)] : "", d.reason ? [": ", el("q", {}, d.reason)] : "")))
    : el("p", { className: "muted" }, "No decisions yet.");

  $("approval-info").replaceChildren(
    el("h2", {}, "Approval ", el("code", {}, a.id ?? "")),
    dl,
    el("h3", {}, "Request excerpt (masked)"),
    el("pre", { className: "excerpt" }, a.excerpt || "(empty)"),
    el("h3", {}, "Decisions"),
    list,
  );
  $("approval-decide").hidden = a.state !== "pending";
  $("approval-detail").hidden = false;
}

async function decide(decision) {
  const a = approvals.detail;
  if (!a) return;
  const reason = $("approval-reason").value.trim();
  if (!reason) {
    showError("Give a reason: it is recorded with your decision.");
    $("approval-reason").focus();
    return;
  }
  const verb = decision === "approve" ? "Approve" : "Deny";
  if (!window.confirm(`${verb} ${a.id}?\nRule: ${a.rule}\nRequester: ${requesterText(a)}`)) return;
  const buttons = [$("approve-btn"), $("deny-btn")];
  buttons.forEach((b) => { b.disabled = true; });
  try {
    await api(apiPath("approvals", a.id, "decision"), { method: "POST", body: { decision, reason } });
    $("approval-reason").value = "";
    clearError();
    notice(`${decision === "approve" ? "Approved" : "Denied"} ${a.id}.`);
  } catch (e) {
    showError(e.message);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
  await loadApproval(a.id);
  await loadApprovals();
}

function autoRefresh() {
  if (currentView !== "approvals" || !$("approvals-auto").checked || approvals.paused) return;
  if (!getToken() || document.visibilityState !== "visible") return;
  loadApprovals();
  if (approvals.selected) loadApproval(approvals.selected, { quiet: true });
}

// -- sessions ----------------------------------------------------------------------------------------------------

const sessions = { items: [], next: null, query: {}, loaded: false, loading: false, current: null };

function sessionsRoute(id) {
  if (!sessions.loaded) loadSessions();
  if (!id) {
    stopReplay();
    sessions.current = null;
    $("session-detail").hidden = true;
  } else if (!sessions.current || sessions.current.id !== id) {
    loadSession(id);
  }
  markSelectedSession();
}

function sessionQuery() {
  const limit = $("sessions-limit").value;
  return {
    subject: $("sessions-subject").value,
    since: localInputToIso($("sessions-since").value),
    until: localInputToIso($("sessions-until").value),
    limit,
  };
}

async function loadSessions({ more = false } = {}) {
  if (sessions.loading || !getToken()) return;
  sessions.loading = true;
  if (!more) sessions.query = sessionQuery();
  const q = buildQuery({ ...sessions.query, cursor: more ? sessions.next : "" });
  setText($("sessions-status"), "loading…");
  try {
    const page = await api(apiPath("sessions") + q);
    const items = Array.isArray(page.sessions) ? page.sessions : [];
    sessions.items = more ? sessions.items.concat(items) : items;
    sessions.next = page.next || null;
    sessions.loaded = true;
    renderSessions();
    setText($("sessions-status"), `${sessions.items.length} shown`);
    clearError();
  } catch (e) {
    setText($("sessions-status"), "");
    showError(e.message);
  } finally {
    sessions.loading = false;
  }
}

function renderSessions() {
  const rows = sessions.items.map((s) => {
    // an unreadable catalog object is listed with no session id: shown (with its key), not openable
    const open = () => { if (s.id != null) location.hash = routeHash("sessions", s.id); };
    return el("tr", {
      tabIndex: 0, onclick: open, onkeydown: (ev) => { if (ev.key === "Enter") open(); },
      title: s.problem ? String(s.problem) : "",
    },
    el("td", {}, el("code", {}, s.id ?? s.catalog_key ?? ""), s.problem ? el("span", { className: "warn" }, " ⚠") : ""),
    el("td", {}, s.subject ?? "—"),
    el("td", {}, timeEl(s.started_at)));
  });
  $("sessions-table").tBodies[0].replaceChildren(...rows);
  $("sessions-empty").hidden = rows.length > 0 || !sessions.loaded;
  $("sessions-more").hidden = !sessions.next;
  markSelectedSession();
}

function markSelectedSession() {
  const { id } = parseRoute(location.hash);
  const rows = $("sessions-table").tBodies[0].rows;
  sessions.items.forEach((s, i) => { if (rows[i]) rows[i].className = s.id === id ? "selected" : ""; });
}

async function loadSession(id) {
  stopReplay();
  sessions.current = { id, records: [] };
  setText($("session-title"), id);
  $("session-records").replaceChildren(el("p", { className: "muted" }, "loading…"));
  $("session-verify-result").hidden = true;
  $("session-problems").hidden = true;
  $("session-detail").hidden = false;
  try {
    const s = await api(apiPath("sessions", id));
    if (!sessions.current || sessions.current.id !== id) return;
    sessions.current = { id, records: Array.isArray(s.records) ? s.records : [], problems: s.problems || [] };
    renderSession(sessions.current);
    clearError();
  } catch (e) {
    $("session-records").replaceChildren();
    showError(e.message);
  }
}

function renderSession(s) {
  const problems = $("session-problems");
  problems.replaceChildren(...s.problems.map((p) => el("li", {}, String(p))));
  problems.hidden = s.problems.length === 0;
  s.cards = s.records.map(recordCard);
  $("session-records").replaceChildren(...s.cards.map((c) => c.node));
  if (!s.records.length) append($("session-records"), el("p", { className: "muted" }, "No records."));
}

function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return String(text);
  }
}

function recordCard(rec) {
  const p = rec.principal || {};
  const dl = el("dl", { className: "facts" });
  field(dl, "Who", p.sub ? `${p.sub}${p.groups && p.groups.length ? ` (${p.groups.join(", ")})` : ""}` : "",
    p.client_id ? ` client ${p.client_id}` : "");
  field(dl, "Route", [rec.method, rec.route].filter(Boolean).join(" "));
  if (rec.decision) field(dl, "Decision", rec.decision.action, rec.decision.rule ? ` (rule ${rec.decision.rule})` : "");
  if (rec.approval) {
    const ap = rec.approval;
    field(dl, "Approval", ap.approval_id, ap.state ? ` ${ap.state}` : "",
      ap.deciders && ap.deciders.length ? ` by ${ap.deciders.join(", ")}` : "");
  }
  field(dl, "Status", rec.response_status != null ? String(rec.response_status) : "",
    rec.response_content_type ? ` ${rec.response_content_type}` : "");
  field(dl, "Masked", formatCounts(rec.masking_counts));
  if (rec.error) field(dl, "Error", el("span", { className: "warn" }, rec.error));
  if (rec.timings_us && rec.timings_us.total) field(dl, "Took", `${Math.round(rec.timings_us.total / 1000)} ms`);
  field(dl, "Record", `${rec.stream_id ?? ""}/${rec.stream_seq ?? ""}`, rec.hash ? ` · ${String(rec.hash).slice(0, 12)}…` : "");

  const node = el("article", { className: "record kind-" + String(rec.kind) },
    el("h3", {}, `#${rec.session_seq ?? "?"} `, el("span", { className: "kind" }, rec.kind ?? "record"), " ",
      timeEl(rec.time)),
    dl);
  if (rec.detail && Object.keys(rec.detail).length) {
    append(node, el("details", {}, el("summary", {}, "Detail"), el("pre", {}, JSON.stringify(rec.detail, null, 2))));
  }
  if (rec.masked_request) {
    append(node, el("details", {}, el("summary", {}, "Request (masked)"), el("pre", {}, pretty(rec.masked_request))));
  }
  const card = { node, rec, replay: null };
  const events = Array.isArray(rec.masked_response) ? rec.masked_response : [];
  if (events.length) card.replay = replayBox(card, events);
  return card;
}

// -- replay ------------------------------------------------------------------------------------------------------

let active = null; // {player, card, chain}

function replayBox(card, events) {
  const duration = offsets(events).at(-1) || 0;
  const status = el("span", { className: "muted" }, `${events.length} chunks over ${formatDuration(duration)}`);
  const pane = (title, cls) => {
    const body = el("pre", { className: "stream " + cls });
    const box = el("div", { className: "pane " + cls }, el("h4", {}, title), body);
    return { box, body };
  };
  const panes = {
    reasoning: pane("Reasoning", "reasoning"),
    answer: pane("Answer", "answer"),
    other: pane("Tool calls and other output", "other"),
    error: pane("Stream errors", "error"),
  };
  const rawList = el("ol", { className: "chunks" });
  const raw = el("details", {}, el("summary", {}, `Raw chunks (${events.length})`), rawList);
  raw.addEventListener("toggle", () => {
    if (!raw.open || rawList.childElementCount) return;
    const times = offsets(events);
    append(rawList, events.slice(0, RAW_CHUNKS_SHOWN).map((ev, i) =>
      el("li", {}, el("span", { className: "t" }, `+${times[i]} ms`), el("pre", {}, String(ev.data)))));
    if (events.length > RAW_CHUNKS_SHOWN) append(rawList, el("li", { className: "muted" }, "…"));
  });
  const button = el("button", { type: "button", onclick: () => play(card) }, "Replay");
  const box = { events, panes, status, button };
  append(card.node,
    el("div", { className: "replay-bar" }, button, " ", status),
    el("div", { className: "panes" }, panes.reasoning.box, panes.answer.box),
    panes.other.box, panes.error.box, raw);
  reset(box);
  return box;
}

function reset(box) {
  for (const p of Object.values(box.panes)) p.body.replaceChildren();
  box.panes.other.box.hidden = true;
  box.panes.error.box.hidden = true;
}

function show(box, deltas) {
  for (const d of deltas) {
    const p = box.panes[d.channel === "tool" ? "other" : d.channel] || box.panes.other;
    p.box.hidden = false;
    const pre = p.body;
    const atEnd = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
    pre.append(document.createTextNode(d.text));
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  }
}

function stopReplay() {
  if (!active) return;
  const { player, card } = active;
  active = null;
  player.stop();
  if (card.replay) setText(card.replay.status, "stopped");
}

/** Replay one record's response into its panes; `then` runs when it has played to the end. */
function play(card, then) {
  stopReplay();
  const box = card.replay;
  reset(box);
  const transcript = createTranscript(card.rec.response_content_type);
  const n = box.events.length;
  const player = createPlayer(box.events, {
    speed: Number($("replay-speed").value),
    onChunk: (ev, i) => {
      show(box, transcript.push(ev.data));
      setText(box.status, `chunk ${i + 1}/${n} · +${formatDuration(ev.t_ms)}`);
    },
    onDone: () => {
      show(box, transcript.end());
      setText(box.status, `played ${n} chunks`);
      if (active && active.player === player) active = null;
      if (then) then();
    },
  });
  active = { player, card };
  card.node.scrollIntoView({ block: "nearest" });
  player.start();
}

function playAll() {
  const cards = (sessions.current && sessions.current.cards || []).filter((c) => c.replay);
  const next = (i) => { if (i < cards.length) play(cards[i], () => next(i + 1)); };
  next(0);
}

// -- verify and export -------------------------------------------------------------------------------------------

async function verifySession() {
  const s = sessions.current;
  if (!s) return;
  const box = $("session-verify-result");
  try {
    const r = await api(apiPath("sessions", s.id, "verify"));
    const problems = Array.isArray(r.problems) ? r.problems : [];
    box.className = r.ok ? "verify ok" : "verify bad";
    box.replaceChildren(el("strong", {}, r.ok ? "✓ verified: " : "✗ NOT verified: "), String(r.summary ?? ""),
      problems.length ? el("ul", {}, problems.map((p) => el("li", {}, String(p)))) : "");
    box.hidden = false;
    clearError();
  } catch (e) {
    showError(e.message);
  }
}

async function exportSession() {
  const s = sessions.current;
  if (!s) return;
  const button = $("session-export");
  button.disabled = true;
  try {
    // fetch + blob: the token goes in the header; a plain link would need it in the URL
    const resp = await api(apiPath("sessions", s.id, "export"), { raw: true, accept: "application/x-tar" });
    const blob = await resp.blob();
    const name = filenameFromDisposition(resp.headers.get("Content-Disposition"), "session-export.tar");
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: name, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 30000);
    notice(`Exported ${name}: check it offline with gateway audit verify --store ${name}`);
  } catch (e) {
    showError(e.message);
  } finally {
    button.disabled = false;
  }
}

// -- wiring ------------------------------------------------------------------------------------------------------

function init() {
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $("token-input");
    const token = input.value.trim().replace(/^Bearer\s+/i, "");
    input.value = "";
    if (!token) return;
    saveToken(token);
    approvals.paused = false;
    sessions.loaded = false;
    clearError();
    route();
  });
  $("token-forget").addEventListener("click", () => {
    saveToken("");
    stopReplay();
    approvals.items = [];
    approvals.detail = null;
    sessions.items = [];
    sessions.current = null;
    renderApprovals();
    renderSessions();
    $("approval-detail").hidden = true;
    $("session-detail").hidden = true;
    notice("Token forgotten.");
  });

  $("approvals-state").addEventListener("change", () => loadApprovals());
  $("approvals-refresh").addEventListener("click", () => {
    approvals.paused = false;
    loadApprovals();
    if (approvals.selected) loadApproval(approvals.selected);
  });
  $("approvals-more").addEventListener("click", () => loadApprovals({ more: true }));
  $("approve-btn").addEventListener("click", () => decide("approve"));
  $("deny-btn").addEventListener("click", () => decide("deny"));
  $("approval-close").addEventListener("click", () => { location.hash = routeHash("approvals"); });

  // a form so Enter searches; submitting it is never a navigation (the CSP has form-action 'none')
  $("sessions-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    loadSessions();
  });
  $("sessions-more").addEventListener("click", () => loadSessions({ more: true }));
  $("session-verify").addEventListener("click", verifySession);
  $("session-export").addEventListener("click", exportSession);
  $("session-close").addEventListener("click", () => { location.hash = routeHash("sessions"); });
  $("replay-all").addEventListener("click", playAll);
  $("replay-stop").addEventListener("click", stopReplay);
  $("replay-speed").addEventListener("change", () => {
    if (active) active.player.setSpeed(Number($("replay-speed").value));
  });

  window.addEventListener("hashchange", route);
  setInterval(autoRefresh, REFRESH_MS);
  showTokenState();
  if (!getToken()) notice("Paste a bearer token (top right) to start: approvers see the inbox, investigators the sessions.");
  route();
}

init();
