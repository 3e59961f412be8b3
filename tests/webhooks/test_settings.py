"""The `webhooks` section: secrets, URLs, shorthand, and the cross-field rules."""
import pytest
from pydantic import ValidationError

from gateway.webhooks import EVENT_TYPES, WebhooksSettings
from gateway.webhooks.settings import redact_url
from tests.webhooks.receiver import make_secret


def _errors(data) -> str:
    with pytest.raises(ValidationError) as info:
        WebhooksSettings.model_validate(data)
    return "\n".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in info.value.errors())


def test_endpoint_defaults_and_rotation_list(secret):
    other = make_secret()
    s = WebhooksSettings.model_validate(
        {"endpoints": [{"url": "https://hooks.example.com/x", "secret": [secret, other]}]})
    ep = s.endpoints[0]
    assert ep.events == list(EVENT_TYPES)
    assert ep.format == "generic"
    assert len(ep.keys) == 2
    # Secrets and the URL never show in a repr / dump.
    dumped = repr(s) + str(s.model_dump())
    assert secret not in dumped and other not in dumped and "hooks.example.com/x" not in dumped


def test_shorthand_is_one_endpoint(secret):
    s = WebhooksSettings.model_validate({"url": "http://127.0.0.1:9/h", "secret": secret,
                                         "events": ["approval.requested"], "queue_size": 5})
    assert len(s.endpoints) == 1 and s.endpoints[0].events == ["approval.requested"] and s.queue_size == 5
    assert "either `url`" in _errors({"url": "http://x/h", "secret": secret, "endpoints": []})


@pytest.mark.parametrize("bad, why", [
    ("abc123", "must start with 'whsec_'"),
    ("whsec_not*base64!", "not valid base64"),
    ("whsec_c2hvcnQ=", "at least 24"),
])
def test_bad_secret_is_named_without_echoing_it(bad, why):
    msg = _errors({"endpoints": [{"url": "https://h.example/x", "secret": bad}]})
    assert "endpoints.0.secret" in msg and why in msg
    assert bad not in msg


def test_unpadded_secret_is_accepted():
    secret = make_secret(32).rstrip("=")
    assert WebhooksSettings.model_validate({"endpoints": [{"url": "https://h.example/x", "secret": secret}]})


@pytest.mark.parametrize("url", ["ftp://h.example/x", "h.example/x", "http:///nohost", "file:///etc/passwd"])
def test_bad_url(url, secret):
    msg = _errors({"endpoints": [{"url": url, "secret": secret}]})
    assert "endpoints.0.url" in msg and "http:// or https://" in msg


def test_unknown_event_and_extra_key_are_refused(secret):
    assert "endpoints.0.events.0" in _errors({"endpoints": [{"url": "https://h/x", "secret": secret,
                                                             "events": ["approval.bogus"]}]})
    assert "endpoints.0.colour" in _errors({"endpoints": [{"url": "https://h/x", "secret": secret, "colour": 1}]})
    assert "retries" in _errors({"retries": 3})


def test_generic_needs_a_secret_slack_needs_console_jira_needs_project():
    assert "needs a `secret`" in _errors({"endpoints": [{"url": "https://h/x"}]})
    assert "console_url" in _errors({"endpoints": [{"url": "https://hooks.slack.com/services/T/B/X",
                                                    "format": "slack"}]})
    assert "jira.project_key" in _errors({"endpoints": [{"url": "https://j.example/rest/api/2/issue",
                                                         "format": "jira"}]})
    ok = WebhooksSettings.model_validate({
        "console_url": "https://gw.example.com/admin/ui/",
        "jira": {"project_key": "SEC"},
        "endpoints": [{"url": "https://hooks.slack.com/services/T/B/X", "format": "slack"},
                      {"url": "https://j.example/rest/api/2/issue", "format": "jira",
                       "headers": {"Authorization": "Basic dTpw"}}],
    })
    assert ok.console_url == "https://gw.example.com/admin/ui"


def test_reserved_headers_and_backoff_order(secret):
    assert "cannot be overridden" in _errors({"endpoints": [{"url": "https://h/x", "secret": secret,
                                                             "headers": {"Webhook-Signature": "v1,x"}}]})
    assert "backoff_max_s" in _errors({"backoff_initial_s": 10, "backoff_max_s": 1})


def test_redact_url_keeps_only_the_origin():
    assert redact_url("https://hooks.slack.com/services/T0/B0/SECRET") == "https://hooks.slack.com/…"
    assert redact_url("http://user:pw@127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert redact_url("http://[::1]:9/?token=x") == "http://[::1]:9/…"
