"""WebhookEvent: the raw-field guard and pass-through of data exactly as given."""
from datetime import datetime, timezone

import orjson
import pytest

from gateway.webhooks import UnsafePayloadError, WebhookEvent
from gateway.webhooks.formats import render_generic


@pytest.mark.parametrize("data, where", [
    ({"body": "my email is a@b.c"}, "data.body"),
    ({"token": "abc"}, "data.token"),
    ({"approval": {"Authorization": "Bearer xyz"}}, "data.approval.Authorization"),
    ({"raw_prompt": "hi"}, "data.raw_prompt"),
    ({"rawText": "hi"}, "data.rawText"),
    ({"items": [{"request-body": "x"}]}, "data.items[0].request-body"),
    ({"id_token": "x"}, "data.id_token"),
])
def test_guard_refuses_raw_keys(data, where):
    with pytest.raises(UnsafePayloadError) as info:
        WebhookEvent("policy.denied", data)
    assert where in str(info.value)


@pytest.mark.parametrize("value", [
    "Bearer abcdefghijklmnop",
    "leaked eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln here",
])
def test_guard_refuses_token_looking_values_without_echoing_them(value):
    with pytest.raises(UnsafePayloadError) as info:
        WebhookEvent("stream.terminated", {"reason": value})
    assert value not in str(info.value)


def test_masked_data_passes_through_unchanged_and_is_copied():
    data = {"approval_id": "apr_1", "rule": "customer-data", "requester": {"sub": "alice", "groups": ["eng"]},
            "excerpt": "send [EMAIL] the CUST [CUSTOMER_ID] file", "token_hash": "3f9a", "age_s": 1.5}
    event = WebhookEvent("approval.requested", data, id="msg_1",
                         timestamp=datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=timezone.utc))
    data["excerpt"] = "changed after emit"
    body = orjson.loads(render_generic(event))
    assert body == {"type": "approval.requested", "timestamp": "2024-05-01T12:00:00.123Z",
                    "data": {**data, "excerpt": "send [EMAIL] the CUST [CUSTOMER_ID] file"}}
    assert event.timestamp_ms == 1714564800123


def test_unknown_type_bad_id_and_unserialisable_data_are_refused():
    with pytest.raises(ValueError, match="unknown webhook event type"):
        WebhookEvent("approval.maybe", {})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="id"):
        WebhookEvent("audit.digest", {}, id="a.b")
    with pytest.raises(TypeError, match="JSON"):
        WebhookEvent("audit.digest", {"when": object()})


def test_ids_are_unique():
    assert WebhookEvent("audit.digest", {}).id != WebhookEvent("audit.digest", {}).id
