"""Sample values per built-in detector: values it must mask (with the exact masked part) and near misses.

Secrets are generated (deterministically) in the shape of the real thing — none of them is a live credential.
"""
from __future__ import annotations

import base64
import json
import random
import string

from gateway.detect.validators import github_checksum, luhn_ok

_rng = random.Random(20240501)
B62 = string.ascii_letters + string.digits


def rand(alphabet: str, n: int, rng: random.Random = _rng) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def card(prefix: str, length: int, rng: random.Random = _rng) -> str:
    """A Luhn-valid card number with this issuer prefix and length."""
    body = prefix + rand(string.digits, length - len(prefix) - 1, rng)
    for check in "0123456789":
        if luhn_ok(body + check):
            return body + check
    raise AssertionError


def bad_luhn(number: str) -> str:
    last = number[-1]
    return number[:-1] + str((int(last) + 1) % 10)


def github_classic(kind: str = "p", rng: random.Random = _rng) -> str:
    body = rand(B62, 30, rng)
    return f"gh{kind}_{body}{github_checksum(body)}"


def aws_secret(rng: random.Random = _rng) -> str:
    while True:
        s = rand(string.ascii_letters + string.digits + "/+", 40, rng)
        if any(c.islower() for c in s) and any(c.isupper() for c in s) and any(c.isdigit() for c in s):
            return s


def jwt(header: dict | None = None, rng: random.Random = _rng) -> str:
    def enc(obj: object) -> str:
        raw = obj if isinstance(obj, bytes) else json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    hdr = header if header is not None else {"alg": "HS256", "typ": "JWT"}
    return f"{enc(hdr)}.{enc({'sub': rand(string.digits, 8, rng), 'name': 'Jane Roe'})}.{rand(B62 + '-_', 43, rng)}"


def pem(kind: str = "RSA PRIVATE KEY", lines: int = 6, rng: random.Random = _rng) -> str:
    body = "\n".join(rand(string.ascii_letters + string.digits + "+/", 64, rng) for _ in range(lines))
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----"


_rng2 = random.Random(20250301)
_AKIA, _SECRET, _SECRET2 = "AKIA4QZ7XW2JH5RT3KLM", aws_secret(_rng2), aws_secret(_rng2)
_SECRET3, _SECRET4 = aws_secret(_rng2), aws_secret(_rng2)  # for near misses (not planted anywhere)
_PEM2 = pem("PRIVATE KEY", 3, _rng2)

# name -> list of (text containing the value, the part that must be masked)
POSITIVE: dict[str, list[tuple[str, str]]] = {
    "pii.email": [(v, v) for v in (
        "john.doe@example.com", "a.b+tag@sub.mail.example.co.uk", "x_y%z@dept.example.org", "JANE@EXAMPLE.ORG",
    )],
    "pii.phone": [(v, v) for v in (
        "+44 20 7946 0958", "+1 (415) 555-0134", "415-555-0134", "(415) 555-0134", "+14155550134",
        "415.555.0134", "1-800-555-0199", "+33 1 23 45 67 89", "+49 30 12345678",
    )],
    "pii.us_ssn": [("123-45-6789", "123-45-6789"), ("SSN: 123456789", "123456789"),
                   ("social security number 219 09 9999", "219 09 9999"), ("ssn 078-05-1120", "078-05-1120"),
                   ('{"ssn": "234567891"}', "234567891"), ('{\\"SSN\\":\\"219099999\\"}', "219099999")],
    "pii.credit_card": [(v, v) for v in (
        "4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", card("4", 13), card("4", 19),
        "5555 5555 5555 4444", card("2221", 16), card("2720", 16), "3782 822463 10005", card("34", 15),
        card("37", 15), "6011 1111 1111 1117", card("65", 16), card("644", 16), card("649", 19),
        card("3528", 16), card("3589", 19), card("50", 12), card("56", 16), card("69", 19),
        "3056 930902 5904", card("36", 14, _rng2), card("38", 14, _rng2), card("301", 14, _rng2),
    )],
    "pii.iban": [(v, v) for v in (
        "GB82 WEST 1234 5698 7654 32", "GB82WEST12345698765432", "DE89 3704 0044 0532 0130 00",
        "FR14 2004 1010 0505 0001 3M02 606", "NL91ABNA0417164300", "NO9386011117947",
    )],
    "pii.ipv4": [(v, v) for v in ("192.168.1.1", "10.0.0.254", "8.8.8.8", "255.255.255.0", "1.2.3.4")],
    "pii.ipv6": [(v, v) for v in (
        "2001:db8::8a2e:370:7334", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "::ffff:192.0.2.128",
        "fe80::1ff:fe23:4567:890a",
    )],
    "secrets.aws_access_key": [(v, v) for v in ("AKIAZ3MQXK7PLW2NRT5B", "ASIAY7N2K4M9QW3ER5TX")],
    "secrets.aws_secret_key": [(f"{k}{aws}", aws) for k, aws in (
        ("aws_secret_access_key = ", aws_secret()), ("AWS_SECRET_ACCESS_KEY=", aws_secret()),
        ('"SecretAccessKey": "', aws_secret()), ("the aws secret is ", aws_secret()),
    )] + [  # right after its access key id
        (f"credentials {_AKIA} / {_SECRET}", _SECRET), (f'"{_AKIA}","{_SECRET2}"', _SECRET2),
        (f"ASIAY7N2K4M9QW3ER5TX, {_SECRET}", _SECRET), (f'[\\"{_AKIA}\\", \\"{_SECRET2}\\"]', _SECRET2),
    ],
    "secrets.github_token": [(v, v) for v in (
        github_classic("p"), github_classic("o"), github_classic("u"), github_classic("s"), github_classic("r"),
        "github_pat_" + rand(B62, 22) + "_" + rand(B62, 59),
    )],
    "secrets.gitlab_token": [(v, v) for v in ("glpat-" + rand(B62 + "-_", 20), "glpat-" + rand(B62, 26))],
    "secrets.slack_token": [(v, v) for v in (
        "xoxb-123456789012-1234567890123-" + rand(B62, 24), "xoxp-" + rand(string.digits, 12) + "-" + rand(B62, 30),
        "https://hooks.slack.com/services/T0A1B2C3D/B4E5F6G7H/" + rand(B62, 24),
    )],
    "secrets.stripe_key": [(v, v) for v in (
        "sk_live_" + rand(B62, 24), "rk_live_" + rand(B62, 32), "sk_test_" + rand(B62, 99),
    )],
    "secrets.openai_key": [(v, v) for v in (
        "sk-" + rand(B62, 20) + "T3BlbkFJ" + rand(B62, 20), "sk-proj-" + rand(B62 + "-_", 120),
        "sk-svcacct-" + rand(B62, 64), "sk-admin-" + rand(B62, 64),
    )],
    "secrets.anthropic_key": [(v, v) for v in (
        "sk-ant-api03-" + rand(B62 + "-_", 93) + "AA", "sk-ant-admin01-" + rand(B62 + "-_", 93) + "AA",
    )],
    "secrets.google_api_key": [(v, v) for v in ("AIza" + rand(B62 + "-_", 35), "AIzaSy" + rand(B62, 33))],
    "secrets.jwt": [(v, v) for v in (jwt(), jwt({"alg": "RS256", "kid": "k1"}), jwt({"alg": "none"}))],
    "secrets.private_key": [(v, v) for v in (
        pem(), pem("PRIVATE KEY"), pem("EC PRIVATE KEY", 3), pem("OPENSSH PRIVATE KEY", 8),
        pem("ENCRYPTED PRIVATE KEY", 4), pem("PGP PRIVATE KEY BLOCK", 4),
    )] + [  # inside a JSON string
        ('{"key": "' + (k := _PEM2.replace("\n", "\\n")) + '\\n"}', k),
        ('"' + (k := _PEM2.replace("\n", "\\r\\n")) + '"', k),
    ],
    "secrets.url_password": [
        ("postgres://admin:S3cr3tPass@db.example.com:5432/app", "S3cr3tPass"),
        ("https://deploy:" + (pw := rand(B62, 16)) + "@git.example.com/repo.git", pw),
        ("redis://:hK8s2Lq9Xz@cache.internal:6379/0", "hK8s2Lq9Xz"),
        ("postgres://user:Mksn0UHdy7pMpaiyOQZ.F@db.example.com/db", "Mksn0UHdy7pMpaiyOQZ.F"),
    ],
    "secrets.assignment": [
        ("password=Xk9#mQ2$vLp8", "Xk9#mQ2$vLp8"),
        ('api_key: "a8F3kL9mQ2xZ7wE1"', "a8F3kL9mQ2xZ7wE1"),
        ('{"token": "ZXhhbXBsZS10b2tlbi12YWx1ZQ1"}', "ZXhhbXBsZS10b2tlbi12YWx1ZQ1"),
        ("DB_PASSWORD='Hx7!kd93LmQa'", "Hx7!kd93LmQa"),
        ("export SECRET_KEY=6fd8c1b0e7a94f2c", "6fd8c1b0e7a94f2c"),
        ("passwd: Tq8#vX2!mRk5", "Tq8#vX2!mRk5"),
        ('clientSecret = "p9Qw-2xZr8LmN4tK"', "p9Qw-2xZr8LmN4tK"),
        ("password = qLN.u_wj0LDzrZp", "qLN.u_wj0LDzrZp"),
        ('{"note": "apiKey: \\"a8F3kL9mQ2xZ7wE1\\""}', "a8F3kL9mQ2xZ7wE1"),
    ],
}

# name -> texts in which that detector must find nothing
NEGATIVE: dict[str, list[str]] = {
    "pii.email": ["user@localhost", "@example.com", "john.doe@", "a@b.c", "name at example dot com"],
    "pii.phone": ["2024-01-15", "v1.2.3", "12345678901", "$1,234.56", "192.168.1.1", "555-0134", "+1 234.56",
                  "call 12 34", "3.14159265", "1234-5678"],
    "pii.us_ssn": ["000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000", "123456789",
                   "SSN: 000123456", "order 123-45-67890", '"ssn_count": "321654987"', '"ssn": "900123456"'],
    "pii.credit_card": [bad_luhn("4111111111111111"), "4111 1111 1111 1112", card("9", 16), card("1", 16),
                        "1718000000123", card("4", 15), "a4111111111111111", "2024-01-15 12:00:00",
                        "30600000000004", "3056930902590",  # 306 is not Diners; 13 digits
                        # digit groups of an IBAN with a wrong checksum
                        "DE00 5077 3547 5005 3851 41", "GB00 WEST 3622 7206 2716 67",
                        "PL00 1234 5678 4000 0566 5566 5556"],
    "pii.iban": ["GB82 WEST 1234 5698 7654 33", "GB82WEST1234569876543", "XX82WEST12345698765432",
                 "DE89 3704 0044 0532 0130 0", "AB12 tests"],
    "pii.ipv4": ["999.1.1.1", "1.2.3.4.5", "v1.2.3.4", "256.1.1.1", "1.2.3", "10.0.0.01", "version1.2.3.4"],
    "pii.ipv6": ["::1", "12:30:45", "fe80::1", "std::vector<int>", "a::b", "00:1A:2B:3C:4D:5E",
                 "2001:db8::12345", "a[::2]"],
    "secrets.aws_access_key": ["AKIAIOSFODNN7EXAMPLE", "AKIA1234", "XAKIAZ3MQXK7PLW2NRT5B", "AKIAZ3MQXK7PLW2NRT5BX",
                               "akiaz3mqxk7plw2nrt5b", "AKIAZ3MQXK7PLWEXAMPLE"],
    "secrets.aws_secret_key": ["aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                               aws_secret(), "secret = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                               "AKIAIOSFODNN7EXAMPLE / wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                               f"{_AKIA} 3f786850e387550fdab836ed7e6dc881de23001b", f"x{_AKIA} / {_SECRET3}",
                               f"{_AKIA} and the other key {_SECRET4}"],
    "secrets.github_token": [github_classic()[:-1] + ("A" if github_classic()[-1] != "A" else "B"),
                             "3f786850e387550fdab836ed7e6dc881de23001b", "ghp_" + rand(B62, 35),
                             "ghx_" + rand(B62, 36), "github_pat_short_abc"],
    "secrets.gitlab_token": ["glpat-short", "glpat_" + rand(B62, 20)],
    "secrets.slack_token": ["xoxz-123456789012", "xoxb-123", "hooks.slack.com/services/lowercase/b/c"],
    "secrets.stripe_key": ["pk_live_" + rand(B62, 24), "sk_live_short", "rk_test_" + rand(B62, 24)],
    "secrets.openai_key": ["sk-" + rand(B62, 48), "sk-proj-short", "task-proj-" + rand(B62, 60)],
    "secrets.anthropic_key": ["sk-ant-api03-short", "sk-ant-foo-" + rand(B62, 90)],
    "secrets.google_api_key": ["AIza" + rand(B62, 20), "AIzb" + rand(B62, 35)],
    "secrets.jwt": [jwt({"typ": "JWT"}), "eyJub3QganNvbg.eyJzdWIiOiIxIn0.abc", "eyJhbGciOi.x.y",
                    "eyJ" + rand(B62, 40) + "." + rand(B62, 40) + "." + rand(B62, 20)],
    "secrets.private_key": ["-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\n-----END PUBLIC KEY-----",
                            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"],
    "secrets.url_password": ["https://user:${DB_PASS}@host.example.com", "http://host.example.com:8080/path",
                             "https://user:<password>@host", "ftp://anonymous@ftp.example.com",
                             "https://user:xxxxxxxx@host.example.com"],
    "secrets.assignment": ["password=changeme", 'api_key: "<your-key>"', "token: ${TOKEN}", "secret=xxxxxxxx",
                           "password: hunter2", 'password = "aaaaaaaaaa"', "the token: hello", "tokens: 4096",
                           "tokenizer: bert-base-uncased", 'api_key = "your_api_key_here"',
                           "password = os.environ['DB_PASSWORD']", "secret: {{ vault_secret }}",
                           "max_tokens=1024", "password_reset_url: /reset",
                           "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
                           "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                           "password = settings.SECRET_KEY", "secret = config.database.password",
                           'token = cfg.get("auth_token")', "api_key = this.props.apiKey",
                           '{"note": "apiKey: \\"<your-key>\\""}'],
}

# Values that are never PII/secrets and must pass through every detector untouched.
INNOCENT: list[str] = [
    "3f786850e387550fdab836ed7e6dc881de23001b",  # git SHA
    "9c4f0e9a-8a7b-4e21-9d3c-5f2b1a0c7e64",  # UUID
    "2024-05-01T12:03:44.123Z", "12:30:45", "1718000000123",  # timestamps
    "$1,234.56", "€99.99", "v1.2.3", "version 2.10.4", "3.14159", "node_modules/.bin", "x = y + 1",
    "std::vector<int>", "https://example.com/path?q=1", "user_id", "a[::2]", "2023-10-01",
]
