"""`reasoning: drop`: take every trace of the reasoning channel out of a response, keeping it valid for the SDKs.

One ``ReasoningDropper(dialect, streaming)`` per response body (it keeps per-stream state); ``process(events)``
is called with the events of each decoded chunk, in order, and returns the events to pass on. Removed events are
marked ``dropped`` and left out of the returned list; changed ones are marked ``dirty`` and get their ``deltas``
and ``closes`` re-extracted from the edited payload (indexes may have moved), so the dropper belongs *first* in
the response direction, before any masker. As a last resort any REASONING delta still found (a shape none of the
rules below knows) is cut out with :func:`~gateway.dialects.edit.remove_delta`.

**openai_chat** -- stream: ``reasoning_content``, ``reasoning`` and ``reasoning_details`` are removed from every
``choices[].delta`` (null values too). A chunk that carried only reasoning -- every choice left with a blank delta
(only null/empty values), no ``role`` and no ``finish_reason``, and no ``usage`` -- is dropped, unless it is the
first chunk of some choice (the SDK's accumulator appends choices by first appearance). A blank choice kept in a
chunk loses its ``logprobs`` (they would be the reasoning tokens). Body: the keys go from ``choices[].message``.
``usage.completion_tokens_details.reasoning_tokens`` stays: a token count is not reasoning text, and billing and
the SDK's usage models rely on it. Logprobs of a delta that mixed reasoning and answer are left as they are.

**anthropic_messages** -- stream: whole ``thinking`` and ``redacted_thinking`` blocks go (``content_block_start``,
every ``thinking_delta``/``signature_delta``, ``content_block_stop``), and the ``index`` of every later block event
is lowered by the number of dropped blocks before it, so indexes stay 0..n-1 (the SDK indexes its content list
with them). Body: such blocks are removed from ``content`` (and from ``message_start.message.content`` if any).

**openai_responses** -- stream: every event about a ``reasoning`` output item goes (``response.output_item.*``
with such an item, any ``response.reasoning*`` event, ``response.content_part.*`` of a ``reasoning_text`` part,
and anything else with that item's ``output_index``); later ``output_index`` values are lowered to stay
contiguous; ``reasoning`` items leave ``response.output`` of the lifecycle events (created, queued, in_progress,
completed, incomplete, failed). ``sequence_number`` is left as upstream sent it, gaps and all: the SDK only compares
it (``starting_after``: ``>``) and it is the upstream's resume cursor, which renumbering would break. The
``response.reasoning`` object (``effort``/``summary`` settings echoed from the request) is config, not text, and
stays. Body: ``reasoning`` items leave ``output``. Limitation: a resumed stream (``starting_after``) that begins
after a reasoning item was announced cannot know about it, so its ``output_index`` values are not lowered.

**opaque** -- nothing to do: an opaque body has no reasoning channel we can see.
"""
from __future__ import annotations

from typing import Any

from gateway.dialects import anthropic, openai_chat, openai_responses
from gateway.dialects.base import REASONING, Event
from gateway.dialects.edit import remove_delta

KEEP, CHANGED, DROP = 0, 1, 2
CHAT_REASONING_KEYS = ("reasoning_content", "reasoning", "reasoning_details")
THINKING_BLOCKS = ("thinking", "redacted_thinking")  # tuples: `in` on odd (unhashable) values must not raise
THINKING_DELTAS = ("thinking_delta", "signature_delta")
LIFECYCLE_EVENTS = frozenset({
    "response.created", "response.queued", "response.in_progress", "response.completed", "response.incomplete",
    "response.failed",
})
_BLOCK_EVENTS = ("content_block_start", "content_block_delta", "content_block_stop")


# dialect -> {streaming: (extractor, closer)}, to rebuild the deltas and closes of an event we changed.
_CODECS = {
    openai_chat.DIALECT: {True: (openai_chat.extract_chunk, openai_chat.closes_chunk),
                          False: (openai_chat.extract_body, None)},
    openai_responses.DIALECT: {True: (openai_responses.extract_event, openai_responses.closes_event),
                               False: (openai_responses.extract_body, None)},
    anthropic.DIALECT: {True: (anthropic.extract_event, anthropic.closes_event), False: (anthropic.extract_body, None)},
}
_HANDLERS = {
    openai_chat.DIALECT: {True: "_chat_chunk", False: "_chat_body"},
    openai_responses.DIALECT: {True: "_responses_event", False: "_responses_body"},
    anthropic.DIALECT: {True: "_anthropic_event", False: "_anthropic_body"},
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _choice_index(choice: Any, position: int) -> int:
    index = choice.get("index") if isinstance(choice, dict) else None
    return index if _is_int(index) else position


def _strip_keys(msg: Any) -> bool:
    """Remove the chat reasoning keys from a delta/message; True if one was there."""
    if not isinstance(msg, dict):
        return False
    found = [key for key in CHAT_REASONING_KEYS if key in msg]
    for key in found:
        del msg[key]
    return bool(found)


def _blank_choice(choice: Any) -> bool:
    """A choice that says nothing: no finish_reason and a delta of only null/empty values (so no role)."""
    if not isinstance(choice, dict) or choice.get("finish_reason"):
        return False
    delta = choice.get("delta")
    return isinstance(delta, dict) and all(value in (None, "", [], {}) for value in delta.values())


def _without(items: Any, drop) -> bool:
    """Remove, in place, the list entries for which ``drop(entry)`` holds; True if any was removed."""
    if not isinstance(items, list):
        return False
    kept = [item for item in items if not drop(item)]
    if len(kept) == len(items):
        return False
    items[:] = kept
    return True


def _is_thinking(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") in THINKING_BLOCKS


def _is_reasoning_item(item: Any) -> bool:
    return isinstance(item, dict) and item.get("type") == "reasoning"


def _strip_output(response: Any) -> bool:
    return isinstance(response, dict) and _without(response.get("output"), _is_reasoning_item)


class ReasoningDropper:
    """Removes the reasoning channel from one response body, chunk by chunk (see the module docstring)."""

    def __init__(self, dialect: str, streaming: bool) -> None:
        self.dialect = dialect
        self.streaming = streaming
        self._dropped: list[int] = []
        """Original indexes of the dropped Anthropic blocks / Responses output items, in arrival order."""
        self._seen_choices: set[Any] = set()
        """Chat choice indexes already passed on (a choice's first chunk is never dropped)."""
        if dialect == "opaque":
            self._handle = None
            return
        if dialect not in _CODECS:
            raise ValueError(f"unknown dialect {dialect!r}")
        self._extract, self._closer = _CODECS[dialect][streaming]
        self._handle = getattr(self, _HANDLERS[dialect][streaming])

    def process(self, events: list[Event]) -> list[Event]:
        """The events to pass on, reasoning removed; dropped events are marked so and left out."""
        if self._handle is None:
            return events
        out: list[Event] = []
        for event in events:
            verdict = self._handle(event.payload, event.name) if isinstance(event.payload, dict) else KEEP
            if verdict == DROP:
                event.dropped = True
                event.deltas, event.closes = [], ()
                continue
            if verdict == CHANGED:
                event.dirty = True
                event.deltas = self._extract(event.payload, event.name)
                if self._closer is not None:
                    event.closes = self._closer(event.payload, event.name, event.deltas)
            for delta in [d for d in event.deltas if d.channel == REASONING]:
                remove_delta(event, delta)  # a shape the rules do not know: never let its text through
            out.append(event)
        return out

    def _shifted(self, index: int) -> int:
        return index - sum(1 for dropped in self._dropped if dropped < index)

    # --- OpenAI chat -------------------------------------------------------------------------------------------

    def _chat_chunk(self, payload: dict[str, Any], _name: str | None) -> int:
        choices = payload.get("choices")
        if not isinstance(choices, list):
            return KEEP
        changed = False
        for choice in choices:
            if isinstance(choice, dict) and _strip_keys(choice.get("delta")):
                changed = True
                if _blank_choice(choice) and choice.get("logprobs") is not None:
                    choice["logprobs"] = None
        indexes = {_choice_index(c, i) for i, c in enumerate(choices)}
        if (changed and payload.get("usage") is None and indexes <= self._seen_choices
                and all(_blank_choice(c) for c in choices)):
            return DROP
        self._seen_choices |= indexes
        return CHANGED if changed else KEEP

    def _chat_body(self, payload: dict[str, Any], _name: str | None) -> int:
        choices = payload.get("choices")
        changed = False
        for choice in choices if isinstance(choices, list) else ():
            if isinstance(choice, dict) and _strip_keys(choice.get("message")):
                changed = True
        return CHANGED if changed else KEEP

    # --- Anthropic ---------------------------------------------------------------------------------------------

    def _anthropic_event(self, payload: dict[str, Any], _name: str | None) -> int:
        kind = payload.get("type")
        if kind == "message_start":
            message = payload.get("message")
            return CHANGED if isinstance(message, dict) and _without(message.get("content"), _is_thinking) else KEEP
        index = payload.get("index")
        if kind not in _BLOCK_EVENTS or not _is_int(index):
            return KEEP
        if kind == "content_block_start" and _is_thinking(payload.get("content_block")):
            if index not in self._dropped:
                self._dropped.append(index)
            return DROP
        delta = payload.get("delta")
        if index in self._dropped or (isinstance(delta, dict) and delta.get("type") in THINKING_DELTAS):
            return DROP
        new = self._shifted(index)
        if new == index:
            return KEEP
        payload["index"] = new
        return CHANGED

    def _anthropic_body(self, payload: dict[str, Any], _name: str | None) -> int:
        return CHANGED if _without(payload.get("content"), _is_thinking) else KEEP

    # --- OpenAI Responses --------------------------------------------------------------------------------------

    def _responses_event(self, payload: dict[str, Any], name: str | None) -> int:
        kind = payload.get("type") or name
        if not isinstance(kind, str):
            return KEEP
        if kind in LIFECYCLE_EVENTS:
            return CHANGED if _strip_output(payload.get("response")) else KEEP
        o = payload.get("output_index")
        if kind.startswith("response.output_item.") and _is_reasoning_item(payload.get("item")):
            if _is_int(o) and o not in self._dropped:
                self._dropped.append(o)
            return DROP
        if kind.startswith("response.reasoning"):  # summary parts/text, reasoning text (and legacy names)
            return DROP
        part = payload.get("part")
        if isinstance(part, dict) and part.get("type") == "reasoning_text" and kind.startswith("response.content_part"):
            return DROP
        if not _is_int(o):
            return KEEP
        if o in self._dropped:
            return DROP
        new = self._shifted(o)
        if new == o:
            return KEEP
        payload["output_index"] = new
        return CHANGED

    def _responses_body(self, payload: dict[str, Any], _name: str | None) -> int:
        return CHANGED if _strip_output(payload) else KEEP
