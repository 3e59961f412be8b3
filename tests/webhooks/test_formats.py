"""Slack and Jira bodies have the documented shapes and carry only the event's (masked) fields."""
import orjson

from gateway.webhooks import WebhookEvent, WebhooksSettings, render

EXCERPT = "please email [EMAIL] about <CUST [CUSTOMER_ID]> & ```the rest```"


def _settings(**jira) -> WebhooksSettings:
    return WebhooksSettings.model_validate({
        "console_url": "https://gw.example.com/admin/ui/",
        "jira": {"project_key": "SEC", "issue_type": "Approval", "labels": ["gateway"], **jira},
        "endpoints": [{"url": "https://hooks.slack.com/services/T/B/X", "format": "slack"},
                      {"url": "https://jira.example.com/rest/api/2/issue", "format": "jira"}],
    })


def _event(**extra) -> WebhookEvent:
    data = {"approval_id": "apr_42", "rule": "customer-data-needs-approval",
            "requester": {"sub": "alice", "groups": ["eng", "sales"]}, "excerpt": EXCERPT, **extra}
    return WebhookEvent("approval.requested", data, id="msg_7")


def test_slack_message_shape_excerpt_and_console_link():
    s = _settings()
    msg = orjson.loads(render(_event(), s.endpoints[0], s))
    assert set(msg) == {"text", "blocks"} and isinstance(msg["text"], str)
    types = [b["type"] for b in msg["blocks"]]
    assert types == ["header", "section", "section", "actions", "context"]
    header, fields, code, actions, context = msg["blocks"]
    assert header["text"] == {"type": "plain_text", "text": "Approval requested"}
    field_texts = [f["text"] for f in fields["fields"]]
    assert "*rule*\ncustomer-data-needs-approval" in field_texts
    assert "*requester.groups*\neng, sales" in field_texts
    # The masked excerpt, escaped for mrkdwn, inside a code block that it cannot close early.
    text = code["text"]["text"]
    assert text.startswith("```") and text.endswith("```") and text.count("```") == 2
    assert "[EMAIL]" in text and "&lt;CUST [CUSTOMER_ID]&gt; &amp;" in text
    button = actions["elements"][0]
    assert button["type"] == "button" and button["url"] == "https://gw.example.com/admin/ui/approvals/apr_42"
    assert "msg_7" in context["elements"][0]["text"]
    assert "approvals/apr_42" in msg["text"]


def test_slack_links_sessions_when_there_is_no_approval():
    s = _settings()
    ev = WebhookEvent("stream.terminated", {"session_id": "ses/1", "reason": "revoked"})
    msg = orjson.loads(render(ev, s.endpoints[0], s))
    assert msg["blocks"][-2]["elements"][0]["url"] == "https://gw.example.com/admin/ui/sessions/ses%2F1"


def test_jira_v2_issue_create_body():
    s = _settings()
    issue = orjson.loads(render(_event(), s.endpoints[1], s))
    assert set(issue) == {"fields"}
    f = issue["fields"]
    assert f["project"] == {"key": "SEC"}
    assert f["issuetype"] == {"name": "Approval"}
    assert f["labels"] == ["gateway"]
    assert f["summary"] == "Approval requested — rule customer-data-needs-approval (apr_42)"
    assert isinstance(f["description"], str)
    assert "{noformat}\n" + EXCERPT + "\n{noformat}" in f["description"]
    assert "*rule:* customer\\-data\\-needs\\-approval" in f["description"]
    assert "[Open in console|https://gw.example.com/admin/ui/approvals/apr_42]" in f["description"]


def test_jira_v3_uses_an_atlassian_document_and_summary_is_bounded():
    s = _settings(api_version=3)
    issue = orjson.loads(render(_event(rule="r" * 400), s.endpoints[1], s))
    doc = issue["fields"]["description"]
    assert doc["type"] == "doc" and doc["version"] == 1
    code = [n for n in doc["content"] if n["type"] == "codeBlock"]
    assert code[0]["content"][0]["text"] == EXCERPT
    assert len(issue["fields"]["summary"]) <= 255 and "\n" not in issue["fields"]["summary"]


def test_formats_add_nothing_beyond_the_event():
    # Every string in every body comes from the event, the fixed layout, or the configured console/Jira values.
    s = _settings()
    ev = WebhookEvent("policy.denied", {"rule": "secrets-in-prompt", "session_id": "ses_9"})
    for ep in s.endpoints:
        body = render(ev, ep, s).decode()
        assert "hooks.slack.com" not in body and "jira.example.com" not in body
