"""How the corpus upstream puts a document on the wire: text cut into SSE events, the bytes cut again.

Two independent cuts, both deterministic per (document, strategy):

1. **Text boundaries** (``text_pieces``): the document is split into event-sized pieces of 1 character, 1–20
   or 20–200 characters (``STRATEGIES``). With 20–200, most planted values are additionally cut once at a random
   inner position, so that nearly every value straddles two events.
2. **Byte boundaries** (``byte_plan``): the SSE bytes of all events are concatenated and written in segments,
   with a short pause between writes so that the gateway reads them separately. Cut points are chosen inside
   multi-byte UTF-8 sequences, inside JSON escapes (``\\u00e9``, ``\\ud83d\\ude00``, ``\\"``, ``\\n``), inside
   the ``data: `` prefix, between the two newlines that end an event, and at random.

Each stream's JSON uses one escaping mode: raw UTF-8 (``ensure_ascii=False``), all-ASCII escapes
(``ensure_ascii=True``: ``é`` -> ``\\u00e9``, emoji as surrogate pairs) or a mix per event.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from bench.masking_eval.corpus import Doc

STRATEGIES: dict[str, tuple[int, int]] = {"1": (1, 1), "1-20": (1, 20), "20-200": (20, 200)}
"""Chunking strategy name -> (min, max) characters per event."""
ESCAPES = ("utf8", "ascii", "mixed")
CREATED = 1735689600


@dataclass
class StreamPlan:
    pieces: list[str]
    """The document cut at text boundaries: one event per piece."""
    segments: list[bytes]
    """The SSE bytes cut at byte boundaries: one socket write per segment."""
    escape: str
    stats: dict[str, int] = field(default_factory=dict)
    """Cut points per kind: ``utf8`` (inside a multi-byte character), ``escape`` (inside a JSON escape),
    ``surrogate`` (between the two halves of a ``\\ud83d\\ude00`` pair), ``prefix`` (inside ``data: ``),
    ``blank_line`` (between the newlines ending an event), ``random``; plus ``events`` and ``writes``."""


def plan_rng(doc: Doc, strategy: str) -> random.Random:
    return random.Random(f"masking-eval-wire:{doc.id}:{strategy}")


def text_pieces(doc: Doc, strategy: str, rng: random.Random) -> list[str]:
    lo, hi = STRATEGIES[strategy]
    text = doc.text
    cuts = set()
    pos = 0
    while pos < len(text):
        pos += rng.randint(lo, hi)
        if pos < len(text):
            cuts.add(pos)
    if lo > 1:  # make sure (nearly) every planted value straddles an event boundary
        for p in doc.planted:
            if len(p.value) > 1 and rng.random() < 0.8:
                cuts.add(p.start + rng.randrange(1, len(p.value)))
    bounds = [0, *sorted(cuts), len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def _dumps(obj, ascii_only: bool) -> bytes:
    return json.dumps(obj, ensure_ascii=ascii_only, separators=(",", ":")).encode()


def chat_frames(doc: Doc, pieces: list[str], rng: random.Random, escape: str) -> list[bytes]:
    """The ``chat.completion.chunk`` SSE events carrying ``pieces`` in the document's channel."""
    head = {"id": f"chatcmpl-{rng.getrandbits(96):024x}", "object": "chat.completion.chunk", "created": CREATED,
            "model": "corpus-reasoner-1", "system_fingerprint": "fp_corpus01"}

    def frame(delta: dict, finish: str | None = None) -> bytes:
        body = {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        ascii_only = escape == "ascii" or (escape == "mixed" and rng.random() < 0.5)
        return b"data: " + _dumps(body, ascii_only) + b"\n\n"

    frames = [frame({"role": "assistant", "content": ""})]
    if doc.channel == "tool_args":
        frames.append(frame({"tool_calls": [{"index": 0, "id": f"call_{rng.getrandbits(64):016x}", "type": "function",
                                             "function": {"name": "record_note", "arguments": ""}}]}))
        frames += [frame({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in pieces]
        frames.append(frame({}, "tool_calls"))
    else:
        key = "reasoning_content" if doc.channel == "reasoning" else "content"
        frames += [frame({key: p}) for p in pieces]
        if doc.channel == "reasoning":  # a reasoning model answers after thinking (as in the one-shot body)
            frames.append(frame({"content": "Done."}))
        frames.append(frame({}, "stop"))
    frames.append(b"data: [DONE]\n\n")
    return frames


def _interesting_cuts(blob: bytes, frame_starts: list[int]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {"utf8": [], "escape": [], "surrogate": [], "prefix": [], "blank_line": []}
    i, n = 0, len(blob)
    while i < n:
        b = blob[i]
        if b >= 0xC0:  # lead byte of a multi-byte UTF-8 sequence
            length = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            out["utf8"] += range(i + 1, min(i + length, n))
            i += length
            continue
        if b == 0x5C:  # backslash: a JSON escape
            if blob[i + 1:i + 2] == b"u":
                out["escape"] += range(i + 1, i + 6)
                if 0xD800 <= int(blob[i + 2:i + 6], 16) <= 0xDBFF:
                    out["surrogate"].append(i + 6)
                i += 6
            else:
                out["escape"].append(i + 1)
                i += 2
            continue
        i += 1
    for start in frame_starts:
        out["prefix"] += range(start + 1, start + 6)
    for end in frame_starts[1:] + [n]:
        out["blank_line"].append(end - 1)
    return out


def byte_plan(frames: list[bytes], rng: random.Random, writes: int) -> tuple[list[bytes], dict[str, int]]:
    """Cut the concatenated frames into at most ``writes`` segments; returns (segments, cut counts per kind)."""
    blob = b"".join(frames)
    starts, pos = [], 0
    for f in frames:
        starts.append(pos)
        pos += len(f)
    kinds = _interesting_cuts(blob, starts)
    budget = max(1, writes - 1)
    share = {"utf8": 0.25, "escape": 0.2, "surrogate": 0.1, "prefix": 0.05, "blank_line": 0.1}
    chosen: dict[int, str] = {}
    for kind, frac in share.items():
        candidates = kinds[kind]
        for c in rng.sample(candidates, min(len(candidates), int(budget * frac))):
            chosen.setdefault(c, kind)
    while len(chosen) < min(budget, len(blob) - 1):
        chosen.setdefault(rng.randrange(1, len(blob)), "random")
    cuts = sorted(c for c in chosen if 0 < c < len(blob))
    bounds = [0, *cuts, len(blob)]
    segments = [blob[a:b] for a, b in zip(bounds, bounds[1:])]
    stats = {k: sum(1 for c in cuts if chosen[c] == k) for k in (*share, "random")}
    stats.update(events=len(frames), writes=len(segments), bytes=len(blob))
    return segments, stats


def stream_plan(doc: Doc, strategy: str, writes: int) -> StreamPlan:
    rng = plan_rng(doc, strategy)
    pieces = text_pieces(doc, strategy, rng)
    escape = ESCAPES[rng.randrange(len(ESCAPES))]
    frames = chat_frames(doc, pieces, rng, escape)
    segments, stats = byte_plan(frames, rng, writes)
    return StreamPlan(pieces, segments, escape, stats)


def oneshot_body(doc: Doc) -> bytes:
    """The non-streaming ``chat.completion`` carrying the whole document (the one-shot reference)."""
    message: dict = {"role": "assistant", "content": None, "refusal": None}
    finish = "stop"
    if doc.channel == "tool_args":
        message["tool_calls"] = [{"id": "call_corpus", "type": "function",
                                  "function": {"name": "record_note", "arguments": doc.text}}]
        finish = "tool_calls"
    elif doc.channel == "reasoning":
        message["content"] = "Done."
        message["reasoning_content"] = doc.text
    else:
        message["content"] = doc.text
    body = {"id": "chatcmpl-corpus", "object": "chat.completion", "created": CREATED, "model": "corpus-reasoner-1",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": {"prompt_tokens": 12, "completion_tokens": len(doc.text) // 4,
                      "total_tokens": 12 + len(doc.text) // 4}}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
