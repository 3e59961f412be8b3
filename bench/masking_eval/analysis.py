"""What the client got, and how it compares with what was planted.

- ``parse_stream`` / ``parse_oneshot``: the texts per channel of a streamed (SSE) or whole response, plus every
  string found in any payload (a leak check must not depend on where the gateway put the text).
- ``score``: aligns a document with its masked output (labels such as ``[EMAIL]`` are turned into single
  private-use characters first, so no character of a label can be aligned with a character of the input) and
  says, per planted value, whether it came out masked, and whether it leaked: verbatim anywhere in the output, a
  prefix of at least half of it surviving (at its place, or anywhere when that prefix occurs nowhere else in the
  input), or — stricter than a prefix — any unchanged piece of at least half of it at its place.
- ``false_positives``: labels in the output of a benign document, attributed to the hard negative they replaced.
"""
from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache

from bench.masking_eval.corpus import Doc

REDACTED = "REDACTED"
"""What the streaming masker writes instead of held text when a hold cap (characters or seconds) is hit."""
CHANNEL_OF_FIELD = {"reasoning_content": "reasoning", "reasoning": "reasoning", "content": "content"}
_PUA = 0xE000


@lru_cache(maxsize=1)
def label_names() -> tuple[str, ...]:
    """Every label the gateway can write: the catalog's and the repo policy's custom detectors'."""
    import yaml

    from bench.masking_eval.catalog import REPO

    names = set()
    try:
        from gateway.detect.catalog import BUILTIN

        names.update(d.label for d in BUILTIN)
    except ImportError:  # the catalog not there yet: the labels the brief names
        names.update(["EMAIL", "PHONE", "US_SSN", "CREDIT_CARD", "IBAN", "IPV4", "IPV6", "AWS_ACCESS_KEY",
                      "AWS_SECRET_KEY", "GITHUB_TOKEN", "GITLAB_TOKEN", "SLACK_TOKEN", "STRIPE_KEY", "OPENAI_KEY",
                      "ANTHROPIC_KEY", "GOOGLE_API_KEY", "JWT", "PRIVATE_KEY", "PASSWORD", "SECRET"])
    for path in sorted((REPO / "policies").glob("*.yaml")):
        for spec in (yaml.safe_load(path.read_text()) or {}).get("detectors", []) or []:
            names.add(spec["label"])
    names.add(REDACTED)
    return tuple(sorted(names, key=len, reverse=True))


@lru_cache(maxsize=1)
def label_regex() -> re.Pattern[str]:
    return re.compile(r"\[(" + "|".join(map(re.escape, label_names())) + r")(?::[0-9A-Za-z]{4,16})?\]")


@dataclass
class Received:
    channels: dict[str, str] = field(default_factory=lambda: {"reasoning": "", "content": "", "tool_args": ""})
    strings: list[str] = field(default_factory=list)
    """Every string value of every payload (ids and model names included)."""
    events: int = 0
    done: bool = False
    errors: list[str] = field(default_factory=list)
    """Error events/bodies (e.g. ``stream_terminated``) and undecodable data."""
    status: int = 200

    def all_text(self) -> str:
        return "\n".join([*self.channels.values(), *self.strings])


def _walk_strings(obj, out: list[str]) -> None:
    if isinstance(obj, str):
        out.append(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            _walk_strings(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _walk_strings(v, out)


def _message_texts(msg: dict, rec: Received) -> None:
    for key, channel in CHANNEL_OF_FIELD.items():
        if isinstance(msg.get(key), str):
            rec.channels[channel] += msg[key]
    for call in msg.get("tool_calls") or []:
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
            rec.channels["tool_args"] += fn["arguments"]


def parse_stream(body: bytes, status: int = 200) -> Received:
    rec = Received(status=status)
    text = body.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif line.startswith("event:"):
                name = line[6:].strip()
        if not data:
            continue
        rec.events += 1
        payload_text = "\n".join(data)
        if payload_text == "[DONE]":
            rec.done = True
            continue
        try:
            payload = json.loads(payload_text)
        except ValueError:
            rec.errors.append(f"undecodable data: {payload_text[:200]!r}")
            rec.strings.append(payload_text)
            continue
        _walk_strings(payload, rec.strings)
        if name == "error" or (isinstance(payload, dict) and "error" in payload):
            rec.errors.append(payload_text[:500])
        for choice in payload.get("choices") or [] if isinstance(payload, dict) else []:
            if isinstance(choice, dict) and isinstance(choice.get("delta"), dict):
                _message_texts(choice["delta"], rec)
    return rec


def parse_oneshot(body: bytes, status: int = 200) -> Received:
    rec = Received(status=status, done=True)
    try:
        payload = json.loads(body)
    except ValueError:
        rec.errors.append(f"undecodable body: {body[:200]!r}")
        rec.strings.append(body.decode("utf-8", "replace"))
        return rec
    _walk_strings(payload, rec.strings)
    if isinstance(payload, dict) and "error" in payload:
        rec.errors.append(json.dumps(payload)[:500])
    for choice in payload.get("choices") or [] if isinstance(payload, dict) else []:
        if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
            _message_texts(choice["message"], rec)
    return rec


# --- scoring -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Outcome:
    detector: str
    variant: str
    edge: bool
    masked: bool
    """No character of the value survived, and a label stands where it was."""
    leak: str | None
    """``verbatim``; ``prefix`` (>= 50% of it, from its start); ``fragment`` (>= 50% of it in one unchanged piece
    from further in, e.g. a PEM body whose BEGIN line was masked); None."""
    label: str | None
    """The label written in its place (None if it was not masked or simply vanished)."""
    survived: int
    """Characters of the value that came through unchanged."""


@dataclass
class Alignment:
    survive: list[bool]
    """Per input character: came through unchanged."""
    label_at: dict[int, str]
    """Input position -> label of the replacement that covers it."""
    replaced: list[tuple[int, int, list[str]]]
    """Input spans replaced by (or, when empty, positions with an insertion of) labels: (start, end, labels)."""
    labels_out: int
    """Labels in the output."""


_ALIGNED: dict[tuple[str, str], Alignment] = {}


def align(source: str, output: str) -> Alignment:
    """Memoised :func:`align_uncached` (most streams come out identical to their one-shot reference)."""
    key = (source, output)
    found = _ALIGNED.get(key)
    if found is None:
        if len(_ALIGNED) > 2048:
            _ALIGNED.clear()
        found = _ALIGNED[key] = align_uncached(source, output)
    return found


def align_uncached(source: str, output: str) -> Alignment:
    labels: list[str] = []

    def to_pua(m: re.Match) -> str:
        labels.append(m.group(1))
        return chr(_PUA + len(labels) - 1)

    squashed = label_regex().sub(to_pua, output)
    matcher = difflib.SequenceMatcher(None, source, squashed, autojunk=False)
    survive = [False] * len(source)
    label_at: dict[int, str] = {}
    replaced: list[tuple[int, int, list[str]]] = []
    for tag, i1, i2, j1, j2 in _repair(matcher.get_opcodes(), source):
        if tag == "equal":
            for i in range(i1, i2):
                survive[i] = True
        else:
            inserted = [labels[ord(c) - _PUA] for c in squashed[j1:j2] if 0 <= ord(c) - _PUA < len(labels)]
            if inserted:
                replaced.append((i1, i2, inserted))
                for i in range(i1, i2):
                    label_at[i] = inserted[0]
    return Alignment(survive, label_at, replaced, len(labels))


def _repair(ops: list[tuple], source: str, tiny: int = 3) -> list[tuple]:
    """Undo one artefact of longest-block alignment: when a label replaced a value that contains, say, a newline,
    and the text after the value starts with the same newline, the matcher may pair the output's newline with
    the one *inside* the value (replace, tiny equal, delete). The right reading is: the label replaced the value
    up to its end, and the newline after it came through (replace, equal)."""
    ops = list(ops)
    out: list[tuple] = []
    k = 0
    while k < len(ops):
        if (k + 2 < len(ops) and ops[k][0] == "replace" and ops[k + 1][0] == "equal" and ops[k + 2][0] == "delete"
                and ops[k + 1][2] - ops[k + 1][1] <= tiny):
            (_, i1, _, j1, j2), (_, e1, e2, f1, f2), (_, _, d2, _, _) = ops[k], ops[k + 1], ops[k + 2]
            n = e2 - e1
            if source[d2 - n:d2] == source[e1:e2]:
                out += [("replace", i1, d2 - n, j1, j2), ("equal", d2 - n, d2, f1, f2)]
                k += 3
                continue
        out.append(ops[k])
        k += 1
    return out


def score(doc: Doc, output: str, extra: str = "") -> list[Outcome]:
    """One outcome per planted value of ``doc``, given the text the client got in the document's channel
    (``output``) and everything else it got (``extra``: other channels and payload strings)."""
    al = align(doc.text, output)
    everywhere = output + "\n" + extra
    out = []
    for p in doc.planted:
        span = range(p.start, p.end)
        survived = sum(al.survive[i] for i in span)
        prefix = 0
        for i in span:
            if not al.survive[i]:
                break
            prefix += 1
        run = longest = 0
        for i in span:
            run = run + 1 if al.survive[i] else 0
            longest = max(longest, run)
        half = (len(p.value) + 1) // 2
        head = p.value[:half]
        leak = None
        if p.value in everywhere:
            leak = "verbatim"
        elif prefix >= half or (len(head) >= 8 and doc.text.count(head) == 1 and head in everywhere):
            leak = "prefix"
        elif longest >= half:
            leak = "fragment"
        label = al.label_at.get(p.start) if survived == 0 else None
        out.append(Outcome(p.detector, p.variant, p.edge, survived == 0 and label is not None, leak, label,
                           survived))
    return out


@dataclass(frozen=True, slots=True)
class FalsePositive:
    label: str
    category: str
    """The hard-negative category whose text was replaced, or ``filler``."""
    text: str
    """The input text that was replaced."""


def false_positives(doc: Doc, output: str) -> list[FalsePositive]:
    al = align(doc.text, output)
    out = []
    for start, end, labels in al.replaced:
        cats = [n.category for n in doc.negatives if n.start < end and start < n.end]
        out += [FalsePositive(label, cats[0] if cats else "filler", doc.text[start:end]) for label in labels]
    return out
