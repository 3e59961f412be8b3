"""How filters change events: rewrite or remove one delta, keeping ``payload`` in step so the codec can re-serialise.

A delta's ``path`` leads from the payload root to the value holding its text. Most such values are strings. When
the value is not a string (Anthropic ``tool_use.input`` is a JSON object that we expose as its JSON text), the new
text is stored parsed as JSON if it parses, and as a plain string otherwise, so an edit never fails even when a
masker has turned the JSON into something that no longer parses.

An opaque delta (``path == ()``: a body or SSE data we could not parse) has no payload slot; the codec writes its
``text`` back instead, so changing ``delta.text`` is enough there.
"""
from __future__ import annotations

import json
from typing import Any

from gateway.dialects.base import Delta, Event


def _parent(root: Any, path: tuple[Any, ...]) -> Any:
    """The container holding the last element of ``path``."""
    node = root
    for key in path[:-1]:
        node = node[key]
    return node


def set_at_path(root: Any, path: tuple[Any, ...], new_text: str) -> None:
    """Store ``new_text`` at ``path`` inside ``root`` (a string stays a string; other values get the parsed JSON)."""
    parent = _parent(root, path)
    key = path[-1]
    if isinstance(parent[key], str):
        parent[key] = new_text
        return
    try:
        parent[key] = json.loads(new_text)
    except ValueError:
        parent[key] = new_text


def set_delta_text(event: Event, delta: Delta, new_text: str) -> None:
    """Replace the text of ``delta`` (in the delta and in ``event.payload``) and mark the event for re-serialising."""
    old = delta.text
    delta.text = new_text
    if delta.path:
        parent = _parent(event.payload, delta.path)
        if isinstance(parent[delta.path[-1]], str):
            if not event.dirty and event.splices is None:
                event.splices = []
            if event.splices is not None:
                event.splices.append((old, new_text))
        else:
            event.splices = None
            event.dirty = True
        set_at_path(event.payload, delta.path, new_text)
    event.dirty = True


def remove_delta(event: Event, delta: Delta) -> None:
    """Take ``delta`` out of the event: delete its key from the payload (e.g. to drop the reasoning channel).

    An opaque delta cannot lose its slot, so its text becomes "" and it stays in ``event.deltas``; every other
    delta leaves ``event.deltas`` so later filters no longer see it.
    """
    event.dirty = True
    event.splices = None
    if not delta.path:
        delta.text = ""
        return
    parent = _parent(event.payload, delta.path)
    key = delta.path[-1]
    if isinstance(parent, dict):
        parent.pop(key, None)
    else:  # a list slot: deleting it would shift the paths of the deltas after it
        parent[key] = ""
    event.deltas = [d for d in event.deltas if d is not delta]
