"""Our signatures checked with the reference implementation (`standardwebhooks`)."""
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.webhooks.signing import decode_secret, webhook_headers
from tests.webhooks.receiver import make_secret


def test_reference_verifier_accepts_our_signature(secret):
    body = '{"type":"audit.digest","data":{"note":"ünïcode ✓"}}'.encode()
    headers = webhook_headers([decode_secret(secret)], "msg_abc", int(time.time()), body)
    assert Webhook(secret).verify(body, headers)["data"]["note"] == "ünïcode ✓"


def test_rotation_two_signatures_receiver_knows_either(secret):
    new = make_secret()
    body = b'{"x":1}'
    headers = webhook_headers([decode_secret(secret), decode_secret(new)], "msg_r", int(time.time()), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(secret).verify(body, headers)
    Webhook(new).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(make_secret()).verify(body, headers)


def test_tampering_is_detected(secret):
    headers = webhook_headers([decode_secret(secret)], "msg_t", int(time.time()), b'{"x":1}')
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"x":2}', headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"x":1}', {**headers, "webhook-id": "msg_other"})
