"""Jira REST issue-create bodies: `{"fields": {"project": {"key"}, "summary", "description", "issuetype": {"name"}}}`.

POST them to `/rest/api/2/issue` (description as wiki-markup text) or `/rest/api/3/issue` (description as an
Atlassian Document), per `jira.api_version`; authenticate with the endpoint's `headers` (e.g. `Authorization`).
Masked values such as `[EMAIL]` would be links in wiki markup, so field values are escaped and the excerpt sits in a
`{noformat}` block.
"""
from __future__ import annotations

import re
from typing import Any

from gateway.webhooks.events import WebhookEvent
from gateway.webhooks.common import console_link, display_fields, excerpt, title
from gateway.webhooks.settings import JiraSettings

__all__ = ["jira_issue", "summary"]

_WIKI_SPECIAL = re.compile(r"([\\\[\]{}|*_^~+\-!?#])")
_MAX_SUMMARY = 255


def summary(event: WebhookEvent) -> str:
    """One line, at most 255 characters (Jira's limit): title, rule, and the approval or session id."""
    text = title(event)
    rule = event.data.get("rule")
    if isinstance(rule, str) and rule:
        text += f" — rule {rule}"
    ref = event.data.get("approval_id") or event.data.get("session_id")
    if isinstance(ref, str) and ref:
        text += f" ({ref})"
    text = " ".join(text.split())
    return text if len(text) <= _MAX_SUMMARY else text[: _MAX_SUMMARY - 1] + "…"


def _wiki_escape(text: str) -> str:
    return _WIKI_SPECIAL.sub(r"\\\1", text)


def _wiki(event: WebhookEvent, link: str | None) -> str:
    lines = [f"*{_wiki_escape(k)}:* {_wiki_escape(' '.join(v.split()))}" for k, v in display_fields(event)]
    text = excerpt(event)
    if text is not None:
        lines += ["", "*Excerpt (masked):*", "{noformat}", text.replace("{noformat}", "{ noformat}"), "{noformat}"]
    if link:
        lines += ["", f"[Open in console|{link}]"]
    lines += ["", f"Event {event.type} {event.id} at {event.iso_timestamp}"]
    return "\n".join(lines)


def _adf(event: WebhookEvent, link: str | None) -> dict[str, Any]:
    def para(*nodes: dict[str, Any]) -> dict[str, Any]:
        return {"type": "paragraph", "content": list(nodes)}

    def txt(s: str, *marks: dict[str, Any]) -> dict[str, Any]:
        node: dict[str, Any] = {"type": "text", "text": s}
        if marks:
            node["marks"] = list(marks)
        return node

    content = [para(txt(f"{k}: ", {"type": "strong"}), txt(v)) for k, v in display_fields(event) if v]
    text = excerpt(event)
    if text is not None:
        content.append(para(txt("Excerpt (masked):", {"type": "strong"})))
        content.append({"type": "codeBlock", "content": [txt(text)]})
    if link:
        content.append(para(txt("Open in console", {"type": "link", "attrs": {"href": link}})))
    content.append(para(txt(f"Event {event.type} {event.id} at {event.iso_timestamp}")))
    return {"type": "doc", "version": 1, "content": content}


def jira_issue(event: WebhookEvent, jira: JiraSettings, console_url: str | None) -> dict[str, Any]:
    link = console_link(event, console_url)
    fields: dict[str, Any] = {
        "project": {"key": jira.project_key},
        "summary": summary(event),
        "description": _adf(event, link) if jira.api_version == 3 else _wiki(event, link),
        "issuetype": {"name": jira.issue_type},
    }
    if jira.labels:
        fields["labels"] = list(jira.labels)
    return {"fields": fields}
