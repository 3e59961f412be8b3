"""Shapes the masking evaluation (``bench.masking_eval``) found the catalog missing or wrongly masking.

Each text is checked one-shot (exactly these parts masked, under every engine) and streamed (one character at
a time and split into two chunks at every position), so the new context branches stay split-safe.
"""
from __future__ import annotations

import pytest

from gateway.detect import BUILTIN
from gateway.detect import validators as v
from gateway.masking import Masker, Scanner, make_style
from tests.detect.samples import card, pem

AKIA = "AKIA4QZ7XW2JH5RT3KLM"
ASIA = "ASIAY7N2K4M9QW3ER5TX"
SECRET = "q8Vb3Xk2LmN9pR4sT7wY1zA5cE6fH0jKuMoPiQrS"
SECRET2 = "Zr/4kP9+qW2mXv7Lt3Bn8Hc5Jd1Fs6Gy0Ua2Ee4O"
DINERS = ["30569309025904", "38520000023237", "36227206271667", card("300", 14), card("305", 14), card("39", 14)]
PEM = pem()
PEM_JSON = PEM.replace("\n", "\\n")
PEM_JSON_CRLF = PEM.replace("\n", "\\r\\n")
PEM_JSON_INDENTED = PEM.replace("\n", "\\n    ")

GROUPED = lambda digits: " ".join(digits[i:i + 4] for i in range(0, len(digits), 4))

MASKED: list[tuple[str, list[str]]] = [
    # 1. an access key id followed closely by its secret
    (f"credentials {AKIA} / {SECRET}", [AKIA, SECRET]),
    (f"use {AKIA} , {SECRET} for the deploy", [AKIA, SECRET]),
    (f'["{AKIA}","{SECRET}"]', [AKIA, SECRET]),
    (f"{ASIA}:{SECRET2}", [ASIA, SECRET2]),
    (f"{AKIA}\t{SECRET2}\n", [AKIA, SECRET2]),
    (f"keys: {AKIA}, '{SECRET}'", [AKIA, SECRET]),
    (f'{{"args": "[\\"{AKIA}\\", \\"{SECRET}\\"]"}}', [AKIA, SECRET]),
    (f"{AKIA} 3f786850e387550fdab836ed7e6dc881de23001b", [AKIA]),  # a git SHA is not a secret key
    (f"{AKIA} / wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", [AKIA]),
    # 3. Diners Club
    *[(f"card {d} on file", [d]) for d in DINERS],
    ("card 3056 930902 5904 on file", ["3056 930902 5904"]),
    ("card 3852-000002-3237 on file", ["3852-000002-3237"]),
    # 4. random passwords with a dot are not code references
    ("postgres://user:Mksn0UHdy7pMpaiyOQZ.F@db.example.com/db", ["Mksn0UHdy7pMpaiyOQZ.F"]),
    ("mysql://app:x7.Qp2Lr9VkZt@10.0.0.5:3306/orders", ["x7.Qp2Lr9VkZt", "10.0.0.5"]),
    ("password = qLN.u_wj0LDzrZp", ["qLN.u_wj0LDzrZp"]),
    ('client_secret: "Tq8.vX2mRk5.Lp"', ["Tq8.vX2mRk5.Lp"]),
    # 5. a PEM block inside a JSON string
    ('{"name": "deploy", "private_key": "' + PEM_JSON + '\\n", "user": "ci"}', [PEM_JSON]),
    ('{"private_key": "' + PEM_JSON_CRLF + '"}', [PEM_JSON_CRLF]),
    ('{"tls": "' + PEM_JSON_INDENTED + '"}', [PEM_JSON_INDENTED]),
    # 6. escaped-quote assignments inside JSON strings, and a JSON ssn field
    ('{"note": "set apiKey: \\"a8F3kL9mQ2xZ7wE1\\" in the config"}', ["a8F3kL9mQ2xZ7wE1"]),
    ('{"note": "passwd=\\"Tq8#vX2!mRk5\\""}', ["Tq8#vX2!mRk5"]),
    ('{"args": "{\\"password\\": \\"Zq8!rT5#wLm2\\"}"}', ["Zq8!rT5#wLm2"]),
    ('{"ssn": "123456789", "name": "Jane"}', ["123456789"]),
    ('{"SSN":"219099999"}', ["219099999"]),
    ("{\\\"ssn\\\": \\\"078051120\\\"}", ["078051120"]),
    ("ssn = '123 45 6789'", ["123 45 6789"]),
]

LEFT_ALONE = [
    # 1. no id before the value (a glued id is not an id either)
    f"x{AKIA} / {SECRET}", f"{AKIA}{SECRET}",
    # 2. AWS's documented example keys
    "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "aws_secret_access_key = je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
    "AKIAIOSFODNN7EXAMPLE / wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    'api_key = "AKIAI44QH8DHBEXAMPLE"',
    # 4. code references stay placeholders
    "password = settings.SECRET_KEY", "secret = config.database.password", 'token = cfg.get("auth_token")',
    "api_key = this.props.apiKey", "password: app.config.DB_PASSWORD", "secret = Config.DbPassword",
    "token = secretsManager.getSecretValue(params)", "password = creds.aws_secret_access_key",
    "https://user:settings.DB_PASSWORD@host.example.com",
    # 6. ssn needs the key itself, not a longer one
    '{"ssn_count": "123456789"}', '{"ssn": "000123456"}',
    # 7. digit groups of an IBAN with a wrong checksum are not a card
    "The IBAN DE00 " + GROUPED(card("50", 18)) + " failed the checksum.",
    "The IBAN GB00 WEST " + GROUPED(card("36", 14)) + " failed the checksum.",
    "The IBAN DE00 1234 " + GROUPED(card("50", 14)) + " failed the checksum.",
    "The IBAN PL00 1234 5678 " + GROUPED(card("4", 16)) + " failed the checksum.",
]


@pytest.fixture(scope="module")
def oracle() -> Scanner:
    return Scanner(BUILTIN, engine="pure")


_MASKERS: dict[str, Masker] = {}


def masker(engine: str) -> Masker:
    if engine not in _MASKERS:
        _MASKERS[engine] = Masker(Scanner(BUILTIN, engine=engine), make_style("label"))
    return _MASKERS[engine]


@pytest.mark.parametrize("text,parts", MASKED, ids=[f"masked-{i}" for i in range(len(MASKED))])
def test_masked_exactly(engine, text, parts):
    sc = Scanner(BUILTIN, engine=engine)
    assert [text[m.start:m.end] for m in sc.scan(text)] == parts


@pytest.mark.parametrize("text", LEFT_ALONE, ids=[f"left-{i}" for i in range(len(LEFT_ALONE))])
def test_left_alone(engine, text):
    sc = Scanner(BUILTIN, engine=engine)
    assert [(text[m.start:m.end], m.name) for m in sc.scan(text)] == []


def test_names_of_the_new_shapes(oracle):
    names = lambda t: [m.name for m in oracle.scan(t)]
    assert names(f"credentials {AKIA} / {SECRET}") == ["secrets.aws_access_key", "secrets.aws_secret_key"]
    assert names("card 30569309025904") == ["pii.credit_card"]
    assert names("postgres://user:Mksn0UHdy7pMpaiyOQZ.F@db.example.com/db") == ["secrets.url_password"]
    assert names('{"private_key": "' + PEM_JSON + '"}') == ["secrets.private_key"]
    assert names('{"note": "apiKey: \\"a8F3kL9mQ2xZ7wE1\\""}') == ["secrets.assignment"]
    assert names('{"ssn": "123456789"}') == ["pii.us_ssn"]


@pytest.mark.parametrize("text,parts", MASKED + [(t, []) for t in LEFT_ALONE],
                         ids=[f"stream-{i}" for i in range(len(MASKED) + len(LEFT_ALONE))])
def test_streamed_equals_one_shot(engine, text, parts):
    m = masker(engine)
    full = f"so {text} then"
    expected, _ = m.mask_text(full)
    for part in parts:
        assert part not in expected
    sm = m.stream()
    assert "".join(sm.feed(c) for c in full) + sm.flush() == expected
    step = 1 if len(full) < 400 else 7
    for i in range(0, len(full) + 1, step):
        sm = m.stream()
        assert sm.feed(full[:i]) + sm.feed(full[i:]) + sm.flush() == expected, i


def test_diners_brand():
    for d in DINERS:
        assert v.card_brand(d) == "diners" and v.credit_card_ok(d), d
    assert v.card_brand("30600000000004") is None  # 306 is not Diners
    assert v.card_brand("3056930902590") is None  # 13 digits
    assert v.card_brand("37000000000002") is None  # 37 is Amex (15 digits)


def test_example_values_are_placeholders():
    for p in ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "AKIAI44QH8DHBEXAMPLE"):
        assert v.is_placeholder(p) and not v.assignment_value_ok(p), p


def test_dotted_placeholder_rule_is_narrow():
    for p in ("settings.SECRET_KEY", "config.database.password", "self.password", "cfg.get('x')",
              "app.config.SECRET_KEY", "request.headers.authorization", "this.props.apiKey", "Config.DbPassword",
              "secretsManager.getSecretValue(p)", "creds.aws_secret_access_key", "user.getURL", "db1.password2",
              "_private.__secret__"):
        assert v.is_placeholder(p), p
    for s in ("Mksn0UHdy7pMpaiyOQZ.F", "qLN.u_wj0LDzrZp", "x7.Qp2Lr9VkZt", "Tq8.vX2mRk5.Lp", "aB3d.eFgH.iJ4"):
        assert not v.is_placeholder(s), s
        assert v.assignment_value_ok(s), s
