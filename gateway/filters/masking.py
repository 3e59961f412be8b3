"""The masking filter: every response channel is masked as it streams, split-safely, and fails closed.

Per logical stream (``Delta.stream_key``: a choice's content, its reasoning, one tool call's arguments, an
Anthropic block ...) a :class:`StreamMasker` holds back only the tail that could still become part of a match.
Held text goes out in the stream's next delta, or, when the dialect says the stream ends (``Event.closes``),
in a copy of that stream's last event placed just before the closing event, so the client sees it in order and
before e.g. Anthropic's `content_block_stop`.

The policy decision (set by the policy filter on the request) chooses what happens to reasoning: ``mask``
(masked like everything else), ``pass`` (delivered as is: an explicit exemption for trusted callers) or
``drop`` (removed entirely, see :class:`gateway.dialects.reasoning.ReasoningDropper`). Response rules see each
piece of text as it is released: ``flag`` records the rule, ``terminate`` ends the stream with an error event.
Any failure while masking ends the stream (`stream_terminated`): nothing unmasked leaves.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from gateway.dialects.base import REASONING, TEXT, Delta, Event, closes_key
from gateway.dialects.edit import remove_delta, set_at_path, set_delta_text
from gateway.dialects.reasoning import ReasoningDropper
from gateway.exchange import Exchange
from gateway.filters.base import Filter, StreamTerminated
from gateway.filters.policy import DECISION

log = structlog.get_logger("gateway.masking")

FULL_SUFFIX = ":full"
RULE_WINDOW = 512
"""Raw characters of a stream kept for response-rule regexes, so a pattern split across chunks still fires."""


class StreamMasker(Protocol):
    def feed(self, text: str) -> str: ...
    def flush(self) -> str: ...


class MaskerFactory(Protocol):
    """What the filter needs from the masking engine."""

    def stream(self, names: frozenset[str]) -> StreamMasker:
        """A masker for one logical stream, masking the detectors in ``names``."""
        ...

    def mask(self, text: str, names: frozenset[str]) -> tuple[str, Mapping[str, int]]:
        """One-shot masking of a whole text; returns the masked text and counts per detector."""
        ...

    def counts(self, masker: StreamMasker) -> Mapping[str, int]:
        """Counts per detector masked so far by a stream masker."""
        ...


@dataclass
class _Stream:
    masker: StreamMasker
    template: Event
    path: tuple
    channel: str
    window: str = ""


@dataclass
class _State:
    engine: MaskerFactory
    names: frozenset[str]
    reasoning: str
    rules: tuple
    dropper: ReasoningDropper | None
    streams: dict[str, _Stream] = field(default_factory=dict)
    flagged: list[str] = field(default_factory=list)
    oneshot_counts: dict[str, int] = field(default_factory=dict)


class MaskingFilter(Filter):
    name = "masking"
    inspects_response = True

    def __init__(self, engine_for: Callable[[Exchange], tuple[MaskerFactory, frozenset[str]]]) -> None:
        self.engine_for = engine_for
        """The engine and the detector names to mask for this exchange (from the policy version that decided it)."""

    def on_response_events(self, ex: Exchange, events: list[Event], end_stream: bool) -> list[Event]:
        try:
            return self._process(ex, events, end_stream)
        except StreamTerminated:
            raise
        except Exception:
            log.exception("masking_failed", request_id=ex.request_id)
            raise StreamTerminated("The response could not be masked safely, so it was stopped.") from None

    def on_complete(self, ex: Exchange) -> None:
        state: _State | None = ex.annotations.get("_masking")
        if state is None:
            return
        ex.annotations["masking_counts"] = masking_counts(ex)
        ex.annotations.pop("_masking", None)

    # -- the work --------------------------------------------------------------------------------------------
    def _state(self, ex: Exchange) -> _State:
        state = ex.annotations.get("_masking")
        if state is None:
            decision = ex.annotations.get(DECISION)
            reasoning = decision.reasoning if decision is not None else "mask"
            dropper = None
            if reasoning == "drop":
                dropper = ReasoningDropper(ex.annotations.get("dialect", "opaque"), self._streaming(ex))
            rules = decision.response_rules if decision is not None else ()
            engine, names = self.engine_for(ex)
            state = _State(engine, names, reasoning, rules, dropper)
            ex.annotations["_masking"] = state
        return state

    @staticmethod
    def _streaming(ex: Exchange) -> bool:
        return ex.response_content_type != "application/json" and not ex.response_content_type.endswith("+json")

    def _process(self, ex: Exchange, events: list[Event], end_stream: bool) -> list[Event]:
        state = self._state(ex)
        if state.dropper is not None:
            events = state.dropper.process(events)
        whole = not self._streaming(ex)
        out: list[Event] = []
        # Pieces of one logical stream that arrived in the same read are masked together: one masker step for
        # the batch, the released text riding on the batch's last piece (they reach the client together anyway).
        pending: dict[str, list[tuple[Event, Delta]]] = {}
        for event in events:
            if event.closes and (state.streams or pending):
                self._feed_pending(ex, state, pending, event.closes)
                out += self._release(ex, state, event.closes)
            for delta in list(event.deltas):
                if delta.channel == REASONING and state.reasoning == "pass":
                    continue
                if whole or delta.stream_key.endswith(FULL_SUFFIX):
                    self._mask_whole(ex, state, event, delta)
                else:
                    pending.setdefault(delta.stream_key, []).append((event, delta))
            out.append(event)
        if pending:
            self._feed_pending(ex, state, pending, ("*",))
        if end_stream and state.streams:
            tail = self._release(ex, state, ("*",))
            out = _before_terminal(out, tail)
        return out

    def _mask_whole(self, ex: Exchange, state: _State, event: Event, delta: Delta) -> None:
        masked, counts = state.engine.mask(delta.text, state.names)
        for name, n in counts.items():
            state.oneshot_counts[name] = state.oneshot_counts.get(name, 0) + n
        self._check_rules(ex, state, delta.channel, delta.text, counts)
        if masked != delta.text:
            set_delta_text(event, delta, masked)

    def _feed_pending(self, ex: Exchange, state: _State, pending: dict, closes: tuple[str, ...]) -> None:
        for key in [k for k in pending if closes_key(closes, k)]:
            self._mask_pieces(ex, state, key, pending.pop(key))

    def _mask_pieces(self, ex: Exchange, state: _State, key: str, pieces: list[tuple[Event, Delta]]) -> None:
        event, delta = pieces[-1]
        stream = state.streams.get(key)
        if stream is None:
            stream = _Stream(state.engine.stream(state.names), event, delta.path, delta.channel)
            state.streams[key] = stream
        stream.template, stream.path = event, delta.path
        text = delta.text if len(pieces) == 1 else "".join(d.text for _, d in pieces)
        before = dict(state.engine.counts(stream.masker))
        released = stream.masker.feed(text)
        if state.rules:
            stream.window = (stream.window + text)[-RULE_WINDOW:]
            after = state.engine.counts(stream.masker)
            new = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
            self._check_rules(ex, state, delta.channel, stream.window, new)
        for earlier_event, earlier in pieces[:-1]:
            if earlier.text:
                set_delta_text(earlier_event, earlier, "")
        if released != delta.text:
            set_delta_text(event, delta, released)

    def _release(self, ex: Exchange, state: _State, closes: tuple[str, ...]) -> list[Event]:
        """Flush the streams ``closes`` ends; each remainder goes out in a copy of that stream's last event."""
        out = []
        for key in [k for k in state.streams if closes_key(closes, k)]:
            stream = state.streams.pop(key)
            text = stream.masker.flush()
            state.oneshot_counts.update(
                {n: state.oneshot_counts.get(n, 0) + c for n, c in state.engine.counts(stream.masker).items()}
            )
            if text:
                out.append(_copy_with_text(stream.template, stream.path, stream.channel, key, text))
        return out

    def _check_rules(self, ex: Exchange, state: _State, channel: str, text: str, found: Mapping[str, int]) -> None:
        for rule in state.rules:
            if rule.name in state.flagged or not rule.fires(channel, text, found):
                continue
            state.flagged.append(rule.name)
            ex.annotations["flagged_rules"] = state.flagged
            log.info("response_rule_fired", rule=rule.name, action=rule.action, request_id=ex.request_id)
            if rule.action == "terminate":
                ex.decision = "terminated"
                ex.rule = rule.name
                raise StreamTerminated(rule.message or f"The response was stopped by policy ({rule.name}).",
                                       rule=rule.name)


def _copy_with_text(template: Event, path: tuple, channel: str, key: str, text: str) -> Event:
    if template.payload is None:  # opaque text: the copy is just the text
        return Event(raw=b"", deltas=[Delta(TEXT, text, (), key)], dirty=True)
    payload = copy.deepcopy(template.payload)
    event = Event(raw=template.raw, payload=payload, name=template.name, deltas=[
        Delta(d.channel, d.text, d.path, d.stream_key) for d in template.deltas if d.path != path
    ])
    for other in list(event.deltas):
        remove_delta(event, other)
    set_at_path(payload, path, text)
    event.deltas = [Delta(channel, text, path, key)]
    event.dirty = True
    return event


def _before_terminal(events: list[Event], tail: list[Event]) -> list[Event]:
    """Put released text before the trailing events that carry no text (finish chunk, [DONE], stops)."""
    if not tail:
        return events
    cut = len(events)
    while cut > 0 and not events[cut - 1].deltas:
        cut -= 1
    return events[:cut] + tail + events[cut:]


def masking_counts(ex: Exchange) -> dict[str, int]:
    """Matches masked so far in the exchange's response, per detector (final once the response is over)."""
    state: _State | None = ex.annotations.get("_masking")
    if state is None:
        return dict(ex.annotations.get("masking_counts") or {})
    counts = dict(state.oneshot_counts)
    for stream in state.streams.values():
        for name, n in state.engine.counts(stream.masker).items():
            counts[name] = counts.get(name, 0) + n
    return counts
