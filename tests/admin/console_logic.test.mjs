// Unit tests of the console's pure logic (gateway/admin/console/logic.mjs), run by tests/admin/test_console.py
// with `node --test` (TZ=UTC).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  apiPath, bodyDeltas, buildQuery, createPlayer, createSseParser, createTranscript, detectMode, errorMessage,
  filenameFromDisposition, formatCounts, formatDuration, localInputToIso, parseRoute, relativeTime, replayPlan,
  routeHash, transcribe,
} from "../../gateway/admin/console/logic.mjs";

const sse = (obj, event) => (event ? `event: ${event}\n` : "") + `data: ${JSON.stringify(obj)}\n\n`;
const chunks = (...datas) => datas.map((data, i) => ({ t_ms: i * 10, data }));

// -- navigation and requests -------------------------------------------------------------------------------------

describe("routes", () => {
  test("hash round trip keeps odd session ids", () => {
    const id = "bob@corp:7/x y";
    assert.equal(routeHash("sessions", id), "#sessions/bob%40corp%3A7%2Fx%20y");
    assert.deepEqual(parseRoute(routeHash("sessions", id)), { view: "sessions", id });
    assert.deepEqual(parseRoute("#approvals/apr_1"), { view: "approvals", id: "apr_1" });
  });
  test("unknown, empty or malformed hashes open the inbox", () => {
    assert.deepEqual(parseRoute(""), { view: "approvals", id: null });
    assert.deepEqual(parseRoute("#nope/1"), { view: "approvals", id: null });
    assert.deepEqual(parseRoute("#sessions"), { view: "sessions", id: null });
    assert.deepEqual(parseRoute("#sessions/%E0%A4%A"), { view: "sessions", id: null });
  });
});

describe("requests", () => {
  test("path segments are encoded, so an id cannot reach another endpoint", () => {
    assert.equal(apiPath("sessions", "a@b:c", "verify"), "/admin/sessions/a%40b%3Ac/verify");
    assert.equal(apiPath("approvals", "../revocations"), "/admin/approvals/..%2Frevocations");
    for (const bad of ["..", ".", ""]) assert.throws(() => apiPath("sessions", bad, "export"), /cannot be used/);
  });
  test("query leaves out empty values", () => {
    assert.equal(buildQuery({ subject: "a b", since: null, until: "", limit: 50, cursor: undefined }),
      "?subject=a+b&limit=50");
    assert.equal(buildQuery({ state: "" }), "");
    assert.equal(buildQuery({ q: "x&y=1" }), "?q=x%26y%3D1");
  });
  test("error messages come from the gateway's error JSON", () => {
    const body = JSON.stringify({ error: { message: "This admin endpoint needs the approver role.", type: "x",
      code: "forbidden" } });
    assert.equal(errorMessage(403, body), "403 forbidden: This admin endpoint needs the approver role.");
    const anthropic = JSON.stringify({ type: "error", error: { type: "invalid_token", message: "expired" } });
    assert.equal(errorMessage(401, anthropic), "401 invalid_token: expired");
    assert.equal(errorMessage(502, "<html>\n bad gateway </html>"), "HTTP 502: <html> bad gateway </html>");
    assert.equal(errorMessage(500, ""), "HTTP 500");
    assert.ok(errorMessage(500, "x".repeat(1000)).length < 220);
  });
  test("download names are reduced to safe characters", () => {
    assert.equal(filenameFromDisposition('attachment; filename="session-s-alpha.tar"', "f.tar"), "session-s-alpha.tar");
    assert.equal(filenameFromDisposition('attachment; filename="../../etc/passwd"', "f.tar"), "etc_passwd");
    assert.equal(filenameFromDisposition("attachment; filename=a:b.tar", "f.tar"), "a_b.tar");
    assert.equal(filenameFromDisposition(null, "f.tar"), "f.tar");
    assert.equal(filenameFromDisposition('attachment; filename=".."', "f.tar"), "f.tar");
  });
});

describe("formatting", () => {
  test("durations show the two largest units", () => {
    assert.equal(formatDuration(0), "0 s");
    assert.equal(formatDuration(42_000), "42 s");
    assert.equal(formatDuration(150_000), "2 min 30 s");
    assert.equal(formatDuration(3_600_000), "1 h");
    assert.equal(formatDuration(7_500_000), "2 h 5 min");
    assert.equal(formatDuration(90_000_000), "1 d 1 h");
    assert.equal(formatDuration(-5), "0 s");
  });
  test("relative times", () => {
    const now = Date.parse("2025-01-01T00:10:00Z");
    assert.equal(relativeTime("2025-01-01T00:07:00.000Z", now), "3 min ago");
    assert.equal(relativeTime("2025-01-01T00:10:45Z", now), "in 45 s");
    assert.equal(relativeTime(null, now), "");
    assert.equal(relativeTime("soon", now), "");
  });
  test("datetime-local values become RFC 3339 UTC (TZ=UTC here)", () => {
    assert.equal(localInputToIso("2025-01-31T09:00:05"), "2025-01-31T09:00:05.000Z");
    assert.equal(localInputToIso(""), null);
    assert.equal(localInputToIso("garbage"), null);
  });
  test("masking counts, largest first", () => {
    assert.equal(formatCounts({ "pii.email": 1, "secrets.aws_key": 3, zero: 0 }), "secrets.aws_key ×3, pii.email ×1");
    assert.equal(formatCounts(null), "");
  });
});

// -- SSE ---------------------------------------------------------------------------------------------------------

describe("SSE parser", () => {
  test("events split anywhere across chunks come out whole, once", () => {
    const text = 'event: a\ndata: {"x":1}\n\n: keep-alive\n\ndata: line1\ndata: line2\n\n';
    for (let cut = 0; cut <= text.length; cut++) {
      const p = createSseParser();
      const got = [...p.push(text.slice(0, cut)), ...p.push(text.slice(cut)), ...p.flush()];
      assert.deepEqual(got, [{ event: "a", data: '{"x":1}' }, { event: "message", data: "line1\nline2" }], `cut ${cut}`);
    }
  });
  test("CRLF split between chunks is one line end", () => {
    const p = createSseParser();
    assert.deepEqual(p.push("data: a\r"), []);
    assert.deepEqual(p.push("\n\r\n"), [{ event: "message", data: "a" }]);
  });
  test("an unterminated last event is delivered by flush", () => {
    const p = createSseParser();
    assert.deepEqual(p.push("data: tail"), []);
    assert.deepEqual(p.flush(), [{ event: "message", data: "tail" }]);
  });
});

// -- dialects ----------------------------------------------------------------------------------------------------

describe("transcripts", () => {
  test("OpenAI chat: reasoning_content and content, [DONE] ignored, duplicates under `reasoning` not doubled", () => {
    const t = transcribe("text/event-stream", chunks(
      sse({ choices: [{ index: 0, delta: { role: "assistant" } }] }),
      sse({ choices: [{ index: 0, delta: { reasoning_content: "Think ", reasoning: "Think " } }] }),
      sse({ choices: [{ index: 0, delta: { reasoning_content: "about [EMAIL]." } }] }),
      sse({ choices: [{ index: 0, delta: { content: "The answer" } }] }),
      sse({ choices: [{ index: 0, delta: { content: " is 42." }, finish_reason: "stop" }] }),
      "data: [DONE]\n\n",
    ));
    assert.equal(t.reasoning, "Think about [EMAIL].");
    assert.equal(t.answer, "The answer is 42.");
    assert.equal(t.other + t.error + t.tool, "");
  });
  test("OpenAI chat: `reasoning` alone and tool call arguments", () => {
    const t = transcribe("text/event-stream", chunks(
      sse({ choices: [{ delta: { reasoning: "hmm" } }] }),
      sse({ choices: [{ delta: { tool_calls: [{ index: 0, function: { name: "f", arguments: '{"a":' } }] } }] }),
      sse({ choices: [{ delta: { tool_calls: [{ index: 0, function: { arguments: "1}" } }] } }] }),
    ));
    assert.equal(t.reasoning, "hmm");
    assert.equal(t.tool, '{"a":1}');
  });
  test("a JSON payload split across recorded chunks is parsed once complete", () => {
    const whole = sse({ choices: [{ delta: { content: "split answer" } }] });
    const tr = createTranscript("text/event-stream");
    assert.deepEqual(tr.push(whole.slice(0, 17)), []);
    assert.deepEqual(tr.push(whole.slice(17)), [{ channel: "answer", text: "split answer" }]);
  });
  test("Anthropic: thinking_delta and text_delta; signatures and pings carry no text", () => {
    const t = transcribe("text/event-stream", chunks(
      sse({ type: "message_start", message: { id: "m", content: [] } }, "message_start"),
      sse({ type: "content_block_start", index: 0, content_block: { type: "thinking", thinking: "" } }, "content_block_start"),
      sse({ type: "content_block_delta", index: 0, delta: { type: "thinking_delta", thinking: "Let me see. " } }, "content_block_delta"),
      sse({ type: "content_block_delta", index: 0, delta: { type: "thinking_delta", thinking: "[PHONE] is masked." } }, "content_block_delta"),
      sse({ type: "content_block_delta", index: 0, delta: { type: "signature_delta", signature: "c2ln" } }, "content_block_delta"),
      sse({ type: "content_block_stop", index: 0 }, "content_block_stop"),
      sse({ type: "ping" }, "ping"),
      sse({ type: "content_block_start", index: 1, content_block: { type: "text", text: "" } }, "content_block_start"),
      sse({ type: "content_block_delta", index: 1, delta: { type: "text_delta", text: "Hello." } }, "content_block_delta"),
      sse({ type: "message_delta", delta: { stop_reason: "end_turn" } }, "message_delta"),
      sse({ type: "message_stop" }, "message_stop"),
    ));
    assert.equal(t.reasoning, "Let me see. [PHONE] is masked.");
    assert.equal(t.answer, "Hello.");
    assert.equal(t.other + t.error, "");
  });
  test("Responses API: reasoning and output deltas; .done repeats are not doubled", () => {
    const t = transcribe("text/event-stream", chunks(
      sse({ type: "response.created", response: { id: "r", output: [] } }, "response.created"),
      sse({ type: "response.reasoning_summary_text.delta", output_index: 0, summary_index: 0, delta: "Plan A." }),
      sse({ type: "response.reasoning_summary_text.done", output_index: 0, summary_index: 0, text: "Plan A." }),
      sse({ type: "response.reasoning_summary_part.added", output_index: 0, summary_index: 1, part: { text: "" } }),
      sse({ type: "response.reasoning_summary_text.delta", output_index: 0, summary_index: 1, delta: "Plan B." }),
      sse({ type: "response.reasoning_text.delta", output_index: 0, content_index: 0, delta: " Raw." }),
      sse({ type: "response.output_text.delta", output_index: 1, content_index: 0, delta: "Done" }),
      sse({ type: "response.output_text.delta", output_index: 1, content_index: 0, delta: "!" }),
      sse({ type: "response.output_text.done", output_index: 1, content_index: 0, text: "Done!" }),
      sse({ type: "response.completed", response: { id: "r", output: [{ type: "message", content: [{ text: "Done!" }] }] } }),
    ));
    assert.equal(t.reasoning, "Plan A.\n\nPlan B. Raw.");
    assert.equal(t.answer, "Done!");
    assert.equal(t.other + t.error, "");
  });
  test("errors that end a stream are shown as errors", () => {
    const openai = transcribe("text/event-stream", chunks(
      sse({ choices: [{ delta: { content: "partial" } }] }),
      sse({ error: { message: "A response rule stopped the stream.", type: "x", code: "stream_terminated" } }),
    ));
    assert.equal(openai.answer, "partial");
    assert.equal(openai.error, "stream_terminated: A response rule stopped the stream.");
    const anthropic = transcribe("text/event-stream", chunks(
      sse({ type: "error", error: { type: "stream_terminated", message: "stopped" } }, "error")));
    assert.equal(anthropic.error, "stream_terminated: stopped");
    const responses = transcribe("text/event-stream", chunks(
      sse({ type: "response.failed", response: { error: { code: "server_error", message: "boom" } } })));
    assert.equal(responses.error, "server_error: boom");
  });
  test("unknown shapes and non-JSON data fall back to raw text", () => {
    const t = transcribe("text/event-stream", chunks("data: plain words\n\n", sse({ something: "else" })));
    assert.equal(t.other, 'plain words\n{"something":"else"}\n');
    assert.equal(t.answer + t.reasoning, "");
    const text = transcribe("text/plain", chunks("raw ", "body <b>not html</b>"));
    assert.equal(text.other, "raw body <b>not html</b>");
  });
  test("whole JSON bodies of each dialect", () => {
    const chat = { choices: [{ message: { role: "assistant", reasoning_content: "R", content: "A" } }] };
    assert.deepEqual(bodyDeltas(chat), [{ channel: "reasoning", text: "R" }, { channel: "answer", text: "A" }]);
    const anthropic = { type: "message", content: [{ type: "thinking", thinking: "R" }, { type: "text", text: "A" }] };
    assert.deepEqual(bodyDeltas(anthropic), [{ channel: "reasoning", text: "R" }, { channel: "answer", text: "A" }]);
    const responses = { object: "response", output: [
      { type: "reasoning", summary: [{ type: "summary_text", text: "R1" }, { type: "summary_text", text: "R2" }] },
      { type: "message", content: [{ type: "output_text", text: "A" }] },
    ] };
    assert.deepEqual(bodyDeltas(responses), [
      { channel: "reasoning", text: "R1" }, { channel: "reasoning", text: "\n\nR2" }, { channel: "answer", text: "A" }]);
    // recorded in two chunks, parsed at the end
    const body = JSON.stringify(chat);
    const t = transcribe("application/json", [{ t_ms: 0, data: body.slice(0, 9) }, { t_ms: 1, data: body.slice(9) }]);
    assert.equal(t.reasoning, "R");
    assert.equal(t.answer, "A");
    assert.equal(transcribe("application/json", chunks('{"broken": ')).other, '{"broken": ');
    assert.equal(transcribe("application/json", chunks('{"x": 1}')).other, '{"x": 1}');
  });
  test("mode from the content type, else from the first chunk", () => {
    assert.equal(detectMode("text/event-stream; charset=utf-8", "{"), "sse");
    assert.equal(detectMode("application/json", "data: x"), "json");
    assert.equal(detectMode(null, "data: {}\n\n"), "sse");
    assert.equal(detectMode(undefined, "event: ping\n"), "sse");
    assert.equal(detectMode("", ' {"a":1}'), "json");
    assert.equal(detectMode(null, "hello"), "text");
  });
});

// -- replay timing -----------------------------------------------------------------------------------------------

function fakeClock() {
  let now = 0;
  let nextId = 0;
  let timers = [];
  return {
    now: () => now,
    setTimeout(fn, ms) {
      timers.push({ id: ++nextId, at: now + ms, fn });
      return nextId;
    },
    clearTimeout(id) {
      timers = timers.filter((t) => t.id !== id);
    },
    advance(ms) {
      const end = now + ms;
      for (;;) {
        timers.sort((a, b) => a.at - b.at);
        const t = timers[0];
        if (!t || t.at > end) break;
        timers.shift();
        now = t.at;
        t.fn();
      }
      now = end;
    },
    get pending() {
      return timers.length;
    },
  };
}

const EVENTS = [0, 100, 100, 400, 1000].map((t_ms, i) => ({ t_ms, data: `c${i}` }));

function recorder(clock) {
  const log = [];
  return { log, onChunk: (ev) => log.push([clock.now(), ev.data]), onDone: () => log.push([clock.now(), "done"]) };
}

describe("replay", () => {
  test("plan divides recorded offsets by the speed; 0 is instant", () => {
    assert.deepEqual(replayPlan(EVENTS, 1).map((p) => p.at), [0, 100, 100, 400, 1000]);
    assert.deepEqual(replayPlan(EVENTS, 2).map((p) => p.at), [0, 50, 50, 200, 500]);
    assert.deepEqual(replayPlan(EVENTS, 5).map((p) => p.at), [0, 20, 20, 80, 200]);
    assert.deepEqual(replayPlan(EVENTS, 0).map((p) => p.at), [0, 0, 0, 0, 0]);
  });
  test("plan never goes backwards and survives bad offsets", () => {
    const odd = [{ t_ms: 50 }, { t_ms: 20 }, { t_ms: "x" }, { t_ms: -4 }, { t_ms: 70 }];
    assert.deepEqual(replayPlan(odd, 1).map((p) => p.at), [50, 50, 50, 50, 70]);
  });
  test("player delivers each chunk at its time (1x)", () => {
    const clock = fakeClock();
    const r = recorder(clock);
    const player = createPlayer(EVENTS, { speed: 1, ...r, clock });
    player.start();
    assert.deepEqual(r.log, [[0, "c0"]]);
    clock.advance(99);
    assert.equal(r.log.length, 1);
    clock.advance(2000);
    assert.deepEqual(r.log, [[0, "c0"], [100, "c1"], [100, "c2"], [400, "c3"], [1000, "c4"], [1000, "done"]]);
    assert.equal(player.state, "done");
  });
  test("player at 5x and instantly at 0", () => {
    const clock = fakeClock();
    const r = recorder(clock);
    createPlayer(EVENTS, { speed: 5, ...r, clock }).start();
    clock.advance(1000);
    assert.deepEqual(r.log.map((x) => x[0]), [0, 20, 20, 80, 200, 200]);
    const r0 = recorder(clock);
    createPlayer(EVENTS, { speed: 0, ...r0, clock }).start();
    assert.equal(r0.log.length, 6); // all chunks and done, synchronously
    assert.equal(clock.pending, 0);
  });
  test("changing speed goes on from the current position", () => {
    const clock = fakeClock();
    const r = recorder(clock);
    const player = createPlayer(EVENTS, { speed: 1, ...r, clock });
    player.start();
    clock.advance(200); // virtual 200: c0..c2 played, c3 due at virtual 400
    player.setSpeed(2); // 200 virtual ms left to c3 -> 100 real ms
    clock.advance(100);
    assert.deepEqual(r.log.at(-1), [300, "c3"]);
    player.setSpeed(0); // the rest at once
    assert.deepEqual(r.log.slice(-2), [[300, "c4"], [300, "done"]]);
  });
  test("stop cancels the rest and never calls onDone", () => {
    const clock = fakeClock();
    const r = recorder(clock);
    const player = createPlayer(EVENTS, { speed: 1, ...r, clock });
    player.start();
    clock.advance(150);
    player.stop();
    clock.advance(5000);
    assert.deepEqual(r.log.map((x) => x[1]), ["c0", "c1", "c2"]);
    assert.equal(player.state, "stopped");
    assert.equal(clock.pending, 0);
  });
  test("an empty response is done at once", () => {
    const clock = fakeClock();
    const r = recorder(clock);
    createPlayer([], { ...r, clock }).start();
    assert.deepEqual(r.log, [[0, "done"]]);
  });
});
