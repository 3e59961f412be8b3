"""Each built-in detector on its true samples, near misses and innocent look-alikes, under every engine."""
from __future__ import annotations

import pytest

from gateway.detect import BUILTIN, BY_NAME
from gateway.masking import Scanner
from tests.detect.samples import INNOCENT, NEGATIVE, POSITIVE

_SCANNERS: dict[str, Scanner] = {}


def scanner(engine: str) -> Scanner:
    if engine not in _SCANNERS:
        _SCANNERS[engine] = Scanner(BUILTIN, engine=engine)
    return _SCANNERS[engine]


POS = [(name, text, value) for name, items in POSITIVE.items() for text, value in items]
NEG = [(name, text) for name, items in NEGATIVE.items() for text in items]
CONTEXTS = ["{}", "see {} now", "x\n{}\n", "({})", "value: {}. Next", '"{}",']


def test_every_builtin_has_samples():
    assert set(POSITIVE) == set(BY_NAME) == set(NEGATIVE)


@pytest.mark.parametrize("name,text,value", POS, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(POS)])
def test_true_samples_are_found(engine, name, text, value):
    for ctx in CONTEXTS:
        t = ctx.format(text)
        found = [(t[m.start:m.end], m.name) for m in scanner(engine).scan(t)]
        assert (value, name) in found, (ctx, found)


@pytest.mark.parametrize("name,text", NEG, ids=[f"{n}-{i}" for i, (n, _) in enumerate(NEG)])
def test_near_misses_are_not_found(engine, name, text):
    for ctx in CONTEXTS:
        t = ctx.format(text)
        hits = [t[m.start:m.end] for m in scanner(engine).scan(t) if name in m.detectors]
        assert hits == [], ctx


@pytest.mark.parametrize("text", INNOCENT)
def test_innocent_text_is_left_alone(engine, text):
    t = f"see {text} now"
    assert scanner(engine).scan(t) == []


def test_ipv4_versions_decision():
    """Standalone dotted quads are addresses; a `v` prefix or a fifth part makes them versions."""
    sc = scanner("pure")
    assert [m.name for m in sc.scan("release 1.2.3.4 is out")] == ["pii.ipv4"]
    assert sc.scan("release v1.2.3.4 is out") == []
    assert sc.scan("release 1.2.3.4.5 is out") == []


def test_value_group_masks_only_the_secret_part():
    sc = scanner("pure")
    t = "DATABASE_URL=postgres://app:pa55-W0rd-xyz@db.example.com/app"
    (m,) = sc.scan(t)
    assert t[m.start:m.end] == "pa55-W0rd-xyz" and m.name == "secrets.url_password"
    t = 'config = {"password": "Zq8!rT5#wLm2"}'
    (m,) = sc.scan(t)
    assert t[m.start:m.end] == "Zq8!rT5#wLm2"


def test_pem_without_end_is_masked_to_the_end_of_its_body():
    sc = scanner("pure")
    t = "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7x3G\nk2b9YkqR0mQ+Zp/4u1"
    (m,) = sc.scan(t)
    assert m.name == "secrets.private_key" and t[m.start:] == t[t.index("-----BEGIN"):]


def test_pem_mention_in_prose_does_not_swallow_the_answer():
    sc = scanner("pure")
    t = "A key file starts with -----BEGIN RSA PRIVATE KEY----- and that's all. The rest is fine."
    (m,) = sc.scan(t)
    assert t[m.end:].startswith("'s all. The rest is fine.") or "The rest is fine." in t[m.end:]
