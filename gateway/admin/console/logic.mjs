// Pure logic of the admin console: no DOM, no network, no globals, so node:test can check it
// (tests/admin/console_logic.test.mjs). console.mjs does the rendering and the fetching.

export const SPEEDS = [0, 1, 2, 5];
export const CHANNELS = ["reasoning", "answer", "tool", "other", "error"];

// -- navigation ------------------------------------------------------------------------------------------------

const VIEWS = ["approvals", "sessions"];

/** `#sessions/bob%40corp%3A7` → {view: "sessions", id: "bob@corp:7"}; anything unknown → the approvals inbox. */
export function parseRoute(hash) {
  const raw = String(hash || "").replace(/^#\/?/, "");
  const slash = raw.indexOf("/");
  const view = slash < 0 ? raw : raw.slice(0, slash);
  if (!VIEWS.includes(view)) return { view: "approvals", id: null };
  let id = slash < 0 ? "" : raw.slice(slash + 1);
  try {
    id = decodeURIComponent(id);
  } catch {
    id = "";
  }
  return { view, id: id || null };
}

export function routeHash(view, id) {
  return "#" + view + (id ? "/" + encodeURIComponent(id) : "");
}

// -- admin API requests ------------------------------------------------------------------------------------------

/** `/admin/sessions/bob%40corp/verify` from ("sessions", "bob@corp", "verify"): every segment encoded. An empty,
 * "." or ".." segment is refused: URL parsers resolve dot segments (even as %2e), so the call would go elsewhere. */
export function apiPath(...segments) {
  return "/admin/" + segments.map((s) => {
    const text = String(s);
    if (text === "" || text === "." || text === "..") throw new Error(`"${text}" cannot be used in an API path.`);
    return encodeURIComponent(text);
  }).join("/");
}

/** `?a=1&b=x%20y` from {a: 1, b: "x y", c: "", d: null}: empty values are left out ("" when none remain). */
export function buildQuery(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null) continue;
    const s = String(v).trim();
    if (s !== "") q.append(k, s);
  }
  const text = q.toString();
  return text ? "?" + text : "";
}

function oneLine(text, max) {
  const s = String(text).replace(/\s+/g, " ").trim();
  return s.length > max ? s.slice(0, max) + "…" : s;
}

/** What to tell the user about a failed call: the gateway's error JSON (OpenAI or Anthropic shape) when there is
 * one, else the status and the start of the body. */
export function errorMessage(status, bodyText) {
  let obj = null;
  try {
    obj = JSON.parse(bodyText);
  } catch {
    obj = null;
  }
  const err = obj && typeof obj === "object" ? obj.error : null;
  if (err && typeof err === "object" && typeof err.message === "string") {
    const code = typeof err.code === "string" && err.code ? err.code : typeof err.type === "string" ? err.type : "";
    return `${status}${code ? " " + code : ""}: ${oneLine(err.message, 500)}`;
  }
  const body = oneLine(bodyText || "", 200);
  return `HTTP ${status}${body ? ": " + body : ""}`;
}

/** The file name of a `Content-Disposition: attachment; filename="..."` header, reduced to safe characters. */
export function filenameFromDisposition(header, fallback) {
  const m = /filename\s*=\s*(?:"([^"]*)"|([^;\s]*))/i.exec(String(header || ""));
  const name = ((m && (m[1] ?? m[2])) || "").replace(/[^A-Za-z0-9._-]/g, "_").replace(/^[._]+/, "");
  return name || fallback;
}

// -- time --------------------------------------------------------------------------------------------------------

/** 42_000 → "42 s", 150_000 → "2 min 30 s", 7_500_000 → "2 h 5 min", 90_000_000 → "1 d 1 h": the largest unit
 * and, when not zero, the next one. */
export function formatDuration(ms) {
  const s = Math.max(0, Math.floor(Number(ms) / 1000) || 0);
  const units = [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]];
  const found = units.findIndex(([, size]) => s >= size);
  const k = found < 0 ? units.length - 1 : found;
  const [unit, size] = units[k];
  const parts = [`${Math.floor(s / size)} ${unit}`];
  if (k < units.length - 1) {
    const [nextUnit, nextSize] = units[k + 1];
    const rest = Math.floor((s % size) / nextSize);
    if (rest > 0) parts.push(`${rest} ${nextUnit}`);
  }
  return parts.join(" ");
}

/** "3 min ago" / "in 5 min" for an RFC 3339 time relative to `nowMs`; "" for a missing or bad time. */
export function relativeTime(iso, nowMs) {
  const t = Date.parse(iso);
  if (!iso || Number.isNaN(t)) return "";
  const d = t - nowMs;
  return d >= 0 ? "in " + formatDuration(d) : formatDuration(-d) + " ago";
}

/** A `datetime-local` input's value (local time, no zone) → RFC 3339 UTC for the API; null when empty or bad. */
export function localInputToIso(value) {
  if (!value) return null;
  const t = new Date(value);
  return Number.isNaN(t.getTime()) ? null : t.toISOString();
}

/** {"pii.email": 2, "secrets.aws": 1} → "pii.email ×2, secrets.aws ×1" (largest first). */
export function formatCounts(counts) {
  if (!counts || typeof counts !== "object") return "";
  return Object.entries(counts)
    .filter(([, n]) => typeof n === "number" && n > 0)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .map(([k, n]) => `${k} ×${n}`)
    .join(", ");
}

// -- SSE ---------------------------------------------------------------------------------------------------------

/** An incremental SSE parser (WHATWG rules): `push(text)` returns the events completed by that text, in order,
 * as {event, data}; a line or event split across chunks waits for the rest; `flush()` ends the stream. Comment
 * lines (":") are skipped; several `data:` lines join with "\n". */
export function createSseParser() {
  let buf = "";
  let data = [];
  let event = "";

  function line(text, out) {
    if (text === "") {
      if (data.length) out.push({ event: event || "message", data: data.join("\n") });
      data = [];
      event = "";
      return;
    }
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data.push(value);
    else if (field === "event") event = value;
  }

  function drain(final) {
    const out = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(buf);
      if (!m) break;
      // a "\r" at the very end may be the first half of "\r\n": wait for the next chunk
      if (m[0] === "\r" && m.index === buf.length - 1 && !final) break;
      line(buf.slice(0, m.index), out);
      buf = buf.slice(m.index + m[0].length);
    }
    if (final) {
      if (buf !== "") line(buf, out);
      buf = "";
      line("", out);
    }
    return out;
  }

  return {
    push(text) {
      buf += String(text);
      return drain(false);
    },
    flush() {
      return drain(true);
    },
  };
}

// -- dialects: parsed JSON → text deltas per channel ------------------------------------------------------------

const ANTHROPIC_TYPES = new Set([
  "message_start", "message_delta", "message_stop", "content_block_start", "content_block_delta",
  "content_block_stop", "ping",
]);
const RESPONSES_TEXT = {
  "response.output_text.delta": "answer",
  "response.refusal.delta": "answer",
  "response.reasoning_summary_text.delta": "reasoning",
  "response.reasoning_text.delta": "reasoning",
  "response.function_call_arguments.delta": "tool",
  "response.custom_tool_call_input.delta": "tool",
};

const str = (v) => typeof v === "string" && v !== "";
const list = (v) => (Array.isArray(v) ? v : []);

function errorText(err) {
  if (typeof err === "string") return err;
  if (!err || typeof err !== "object") return "error";
  const code = err.code || err.type || "error";
  return err.message ? `${code}: ${err.message}` : String(code);
}

/** Texts of one chat `delta` or `message`: reasoning_content, else reasoning, else reasoning_details (servers
 * repeat the same reasoning under several keys); content and refusal; tool call arguments. */
function chatMessageDeltas(msg) {
  const out = [];
  if (!msg || typeof msg !== "object") return out;
  if (str(msg.reasoning_content)) out.push({ channel: "reasoning", text: msg.reasoning_content });
  else if (str(msg.reasoning)) out.push({ channel: "reasoning", text: msg.reasoning });
  else {
    for (const d of list(msg.reasoning_details)) {
      const t = d && (str(d.text) ? d.text : str(d.summary) ? d.summary : "");
      if (t) out.push({ channel: "reasoning", text: t });
    }
  }
  if (str(msg.content)) out.push({ channel: "answer", text: msg.content });
  if (str(msg.refusal)) out.push({ channel: "answer", text: msg.refusal });
  for (const call of list(msg.tool_calls)) {
    const args = call && call.function && call.function.arguments;
    if (str(args)) out.push({ channel: "tool", text: args });
  }
  return out;
}

/** The deltas of one streamed event's JSON payload, or null when the payload is no shape we know (the caller
 * shows it raw). Known events without text (pings, lifecycle, `.done` repeats) give []. */
export function payloadDeltas(obj, eventName) {
  if (!obj || typeof obj !== "object" || Array.isArray(obj)) return null;
  const type = typeof obj.type === "string" ? obj.type : eventName || "";
  if (Array.isArray(obj.choices)) {
    return obj.choices.flatMap((c) => chatMessageDeltas(c && (c.delta || c.message)));
  }
  if (obj.error !== undefined && obj.error !== null) return [{ channel: "error", text: errorText(obj.error) }];
  if (type === "error") return [{ channel: "error", text: errorText(obj) }];
  if (type in RESPONSES_TEXT) return str(obj.delta) ? [{ channel: RESPONSES_TEXT[type], text: obj.delta }] : [];
  if (type === "response.reasoning_summary_part.added" && obj.summary_index > 0) {
    return [{ channel: "reasoning", text: "\n\n" }];
  }
  if (type === "response.failed" || type === "response.incomplete") {
    const r = obj.response || {};
    if (r.error) return [{ channel: "error", text: errorText(r.error) }];
    const why = r.incomplete_details && r.incomplete_details.reason;
    return why ? [{ channel: "error", text: `incomplete: ${why}` }] : [];
  }
  if (type.startsWith("response.")) return [];
  if (ANTHROPIC_TYPES.has(type)) {
    if (type === "content_block_delta") {
      const d = obj.delta || {};
      if (d.type === "text_delta" && str(d.text)) return [{ channel: "answer", text: d.text }];
      if (d.type === "thinking_delta" && str(d.thinking)) return [{ channel: "reasoning", text: d.thinking }];
      if (d.type === "input_json_delta" && str(d.partial_json)) return [{ channel: "tool", text: d.partial_json }];
      return [];
    }
    if (type === "content_block_start") return blockDeltas(obj.content_block);
    return [];
  }
  return null;
}

function blockDeltas(block) {
  if (!block || typeof block !== "object") return [];
  if (block.type === "text" && str(block.text)) return [{ channel: "answer", text: block.text }];
  if (block.type === "thinking" && str(block.thinking)) return [{ channel: "reasoning", text: block.thinking }];
  if (block.type === "tool_use" && block.input && Object.keys(block.input).length) {
    return [{ channel: "tool", text: JSON.stringify(block.input) }];
  }
  return [];
}

/** The deltas of a whole (non-streamed) JSON body, or null for a shape we do not know. */
export function bodyDeltas(obj) {
  if (!obj || typeof obj !== "object" || Array.isArray(obj)) return null;
  if (Array.isArray(obj.choices)) return obj.choices.flatMap((c) => chatMessageDeltas(c && c.message));
  if (obj.error !== undefined && obj.error !== null) return [{ channel: "error", text: errorText(obj.error) }];
  if (obj.type === "message" && Array.isArray(obj.content)) return obj.content.flatMap(blockDeltas);
  if (obj.object === "response" && Array.isArray(obj.output)) {
    const out = [];
    for (const item of obj.output) {
      if (!item || typeof item !== "object") continue;
      if (item.type === "reasoning") {
        const parts = [...list(item.summary), ...list(item.content)].filter((p) => p && str(p.text));
        parts.forEach((p, i) => out.push({ channel: "reasoning", text: (i ? "\n\n" : "") + p.text }));
      } else if (item.type === "message") {
        for (const p of list(item.content)) {
          if (p && str(p.text)) out.push({ channel: "answer", text: p.text });
          else if (p && str(p.refusal)) out.push({ channel: "answer", text: p.refusal });
        }
      } else if (item.type === "function_call" && str(item.arguments)) {
        out.push({ channel: "tool", text: item.arguments });
      }
    }
    if (obj.error) out.push({ channel: "error", text: errorText(obj.error) });
    return out;
  }
  return null;
}

/** How to read a recorded response: "sse", "json" or "text" (from its content type, else its first chunk). */
export function detectMode(contentType, firstChunk) {
  const ct = String(contentType || "").toLowerCase();
  if (ct.includes("text/event-stream")) return "sse";
  if (ct.includes("json")) return "json";
  if (ct) return "text";
  const head = String(firstChunk || "").trimStart();
  if (/^(data|event|id|retry):/.test(head) || head.startsWith(":")) return "sse";
  if (head.startsWith("{")) return "json";
  return "text";
}

/** Merge neighbouring deltas of the same channel (fewer DOM nodes). */
export function mergeDeltas(deltas) {
  const out = [];
  for (const d of deltas) {
    const last = out[out.length - 1];
    if (last && last.channel === d.channel) last.text += d.text;
    else out.push({ channel: d.channel, text: d.text });
  }
  return out;
}

/** Turns a recorded response's chunks, fed in order with `push(data)`, into deltas per channel; `end()` returns
 * what the end of the body completes. SSE events of a known dialect go to reasoning / answer / tool / error;
 * anything else (non-JSON data, an unknown shape, a body that is not SSE or JSON) comes out raw as "other". */
export function createTranscript(contentType) {
  let mode = null;
  let parser = null;
  let body = "";

  function fromEvents(events) {
    const out = [];
    for (const ev of events) {
      if (ev.data === "[DONE]") continue;
      let obj;
      try {
        obj = JSON.parse(ev.data);
      } catch {
        out.push({ channel: "other", text: ev.data + "\n" });
        continue;
      }
      const deltas = payloadDeltas(obj, ev.event === "message" ? "" : ev.event);
      if (deltas === null) out.push({ channel: "other", text: ev.data + "\n" });
      else out.push(...deltas);
    }
    return mergeDeltas(out);
  }

  return {
    get mode() {
      return mode;
    },
    push(data) {
      const text = String(data);
      if (mode === null) {
        mode = detectMode(contentType, text);
        if (mode === "sse") parser = createSseParser();
      }
      if (mode === "sse") return fromEvents(parser.push(text));
      if (mode === "json") {
        body += text;
        return [];
      }
      return text ? [{ channel: "other", text }] : [];
    },
    end() {
      if (mode === "sse") return fromEvents(parser.flush());
      if (mode !== "json" || body === "") return [];
      let obj;
      try {
        obj = JSON.parse(body);
      } catch {
        return [{ channel: "other", text: body }];
      }
      const deltas = bodyDeltas(obj);
      return deltas === null || deltas.length === 0 ? [{ channel: "other", text: body }] : mergeDeltas(deltas);
    },
  };
}

/** All of a record's chunks at once (what an instant replay shows). */
export function transcribe(contentType, chunks) {
  const t = createTranscript(contentType);
  const out = [];
  for (const c of chunks) out.push(...t.push(c.data));
  out.push(...t.end());
  const texts = Object.fromEntries(CHANNELS.map((ch) => [ch, ""]));
  for (const d of out) texts[d.channel] += d.text;
  return texts;
}

// -- replay timing -----------------------------------------------------------------------------------------------

/** Recorded offsets made usable: numbers ≥ 0, never going backwards (a bad or earlier offset keeps the last). */
export function offsets(events) {
  let last = 0;
  return events.map((e) => {
    const t = Number(e && e.t_ms);
    if (Number.isFinite(t) && t > last) last = t;
    return last;
  });
}

/** When each chunk is due, in ms after the replay starts, at `speed` (0: all at once). */
export function replayPlan(events, speed) {
  const s = Number(speed);
  return offsets(events).map((t, index) => ({ index, at: s > 0 ? t / s : 0 }));
}

const realClock = {
  now: () => (globalThis.performance ? globalThis.performance.now() : Date.now()),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (id) => globalThis.clearTimeout(id),
};

/** Plays `events` ({t_ms, data}) with their recorded timing divided by `speed`: `onChunk(event, index)` for each,
 * then `onDone()` once. Timing is kept on a virtual clock (recorded ms), so `setSpeed` during playback goes on
 * from the current position at the new rate and timer lateness does not add up. `stop()` ends it without onDone.
 * `clock` ({now, setTimeout, clearTimeout}) is for tests. */
export function createPlayer(events, { speed = 1, onChunk, onDone = () => {}, clock = realClock } = {}) {
  const times = offsets(events);
  let i = 0;
  let rate = Number(speed) || 0;
  let timer = null;
  let state = "idle";
  let vBase = 0; // virtual (recorded) ms at real time rBase
  let rBase = 0;

  const vnow = () => vBase + (clock.now() - rBase) * rate;

  function tick() {
    timer = null;
    if (state !== "playing") return;
    const v = rate > 0 ? vnow() : Infinity;
    while (i < events.length && times[i] <= v) {
      const k = i++;
      onChunk(events[k], k);
      if (state !== "playing") return; // stopped from inside onChunk
    }
    if (i >= events.length) {
      state = "done";
      onDone();
      return;
    }
    timer = clock.setTimeout(tick, Math.max(0, (times[i] - v) / rate));
  }

  return {
    get state() {
      return state;
    },
    get position() {
      return i;
    },
    start() {
      if (state !== "idle") return;
      state = "playing";
      vBase = 0;
      rBase = clock.now();
      tick();
    },
    setSpeed(newSpeed) {
      const s = Number(newSpeed) || 0;
      if (state === "playing" && rate > 0) vBase = vnow();
      rBase = clock.now();
      rate = s;
      if (state === "playing") {
        if (timer !== null) clock.clearTimeout(timer);
        tick();
      }
    },
    stop() {
      if (timer !== null) clock.clearTimeout(timer);
      timer = null;
      if (state === "playing" || state === "idle") state = "stopped";
    },
  };
}
