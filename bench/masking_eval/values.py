"""Generators of *valid* sensitive values (and of near-misses that are not), from a seeded ``random.Random``.

Everything is computed here, independently of the gateway's catalog: Luhn check digits, IBAN mod-97 check digits,
GitHub's CRC32/base62 token checksum, SSA rules for SSNs, JWTs with a real JSON header. The catalog is only used
by the tests, to confirm that what is generated here is what its detectors are meant to find.

Each generator returns a :class:`Value`: the text a detector should mask (``value``), the context it must sit in
when the detector needs one (``before``/``after``, e.g. ``aws_secret_access_key = `` or the rest of a database
URL), and a ``variant`` naming the structure (card brand, IBAN country, phone format...) for per-variant recall.
"""
from __future__ import annotations

import base64
import json
import math
import random
import re
import string
import zlib
from collections import Counter
from dataclasses import dataclass

DIGITS = string.digits
UPPER = string.ascii_uppercase
LOWER = string.ascii_lowercase
ALNUM = DIGITS + UPPER + LOWER
BASE62 = DIGITS + UPPER + LOWER
"""GitHub's checksum alphabet: digits, then upper case, then lower case."""
URLSAFE = ALNUM + "-_"


@dataclass(frozen=True, slots=True)
class Value:
    value: str
    """What must be masked (for context-dependent detectors: only the secret part)."""
    variant: str
    """Structure of the value: card brand, IBAN country, phone format, key context..."""
    before: str = ""
    """Context that must directly precede the value for its detector to apply (may be empty)."""
    after: str = ""
    """Context that must directly follow it (e.g. ``@db.internal:5432/app`` after a URL password)."""
    edge: bool = False
    """A structure the catalog is not required to catch (measured, never asserted): see ``EDGE_VARIANTS``."""


EDGE_VARIANTS: dict[tuple[str, str], str] = {}
"""Realistic structures that the current catalog is known not to cover: (detector, variant) -> why. They stay in
the corpus (a leak is a leak) and are reported separately, so that a catalog change that covers them shows up as
better recall. Now empty: Diners Club cards, ``"ssn": "123456789"``, PEM blocks and ``key: \\"value\\"`` inside
JSON strings, and random passwords shaped like ``module.attribute`` are all covered by the catalog."""


def is_edge(detector: str, variant: str) -> bool:
    """Whether values of this structure are flagged as edge structures (see ``EDGE_VARIANTS``)."""
    return (detector, variant) in EDGE_VARIANTS


def pick(rng: random.Random, seq):
    return seq[rng.randrange(len(seq))]


def rand_str(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(alphabet[rng.randrange(len(alphabet))] for _ in range(n))


# --- checksums (own implementations) --------------------------------------------------------------------------

def luhn_check_digit(partial: str) -> str:
    """The digit that makes ``partial + digit`` pass the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:  # these positions are doubled once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    return luhn_check_digit(number[:-1]) == number[-1]


def iban_check_digits(country: str, bban: str) -> str:
    moved = bban + country + "00"
    numeric = "".join(str(int(ch, 36)) for ch in moved)
    return f"{98 - int(numeric) % 97:02d}"


def iban_valid(iban: str) -> bool:
    iban = iban.replace(" ", "")
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def base62(number: int, width: int) -> str:
    out = ""
    while number:
        number, rem = divmod(number, 62)
        out = BASE62[rem] + out
    return out.rjust(width, "0")


def github_checksum(body30: str) -> str:
    return base62(zlib.crc32(body30.encode()) & 0xFFFFFFFF, 6)


def entropy(text: str) -> float:
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values()) if n else 0.0


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- people ----------------------------------------------------------------------------------------------------

FIRST = ["alice", "bruno", "chen", "dmitri", "elena", "farah", "gustavo", "hana", "ivan", "jamal", "keiko", "lars",
         "maria", "noah", "olga", "priya", "quentin", "rosa", "sven", "tomas", "uma", "viktor", "wen", "ximena",
         "yusuf", "zoe"]
LAST = ["anderson", "becker", "costa", "dubois", "eriksen", "fischer", "garcia", "hoffmann", "ito", "jensen",
        "kowalski", "larsen", "moreau", "nakamura", "oliveira", "petrov", "quinn", "rossi", "schmidt", "tanaka",
        "ueda", "varga", "weber", "xu", "yilmaz", "zhang"]
DISPLAY_NAMES = ["José Núñez", "Zoë Ångström", "Jürgen Groß", "Łukasz Wiśniewski", "Søren Kjærgård", "山田 太郎",
                 "Renée Çelik", "Dũng Nguyễn", "Ana María Peña", "Ørjan Lie", "Siân O'Brien", "Chloé Lefèvre",
                 "Priya Raghunathan", "Ines Weiß", "Kwame Mensah", "Mateus Conceição"]
DOMAINS = ["acme-corp.com", "globex.io", "initech.net", "mail.umbrella.co.uk", "contoso.de", "example-bank.com",
           "hooli.xyz", "stark-industries.com", "wayne.enterprises", "piedpiper.io", "corp.tyrell.ai", "soylent.fr"]
HOSTS = ["db.prod.internal", "orders-db.eu-west-1.rds.amazonaws.com", "cache.acme-corp.com", "mq.internal.globex.io",
         "cluster0.ab1cd.mongodb.net", "pg-replica-2.initech.net", "warehouse.contoso.de"]


def email(rng: random.Random) -> Value:
    first, last = pick(rng, FIRST), pick(rng, LAST)
    shape = rng.randrange(5)
    if shape == 0:
        local = f"{first}.{last}"
    elif shape == 1:
        local = f"{first}{last[0]}{rng.randrange(10, 99)}"
    elif shape == 2:
        local = f"{first}_{last}+{pick(rng, ['billing', 'dev', 'alerts', 'news'])}"
    elif shape == 3:
        local = f"{first[0]}{last}"
    else:
        local = f"{first.capitalize()}.{last.capitalize()}"
    return Value(f"{local}@{pick(rng, DOMAINS)}", ["dotted", "digits", "tagged", "initial", "capitalized"][shape])


# --- phones ----------------------------------------------------------------------------------------------------

def _nanp(rng: random.Random) -> tuple[str, str, str]:
    area = f"{rng.randrange(2, 10)}{rng.randrange(0, 10)}{rng.randrange(0, 10)}"
    exchange = f"{rng.randrange(2, 10)}{rng.randrange(0, 10)}{rng.randrange(0, 10)}"
    return area, exchange, rand_str(rng, DIGITS, 4)


def phone(rng: random.Random) -> Value:
    kind = rng.randrange(12)
    d = lambda n: rand_str(rng, DIGITS, n)  # noqa: E731
    nz = lambda: str(rng.randrange(1, 10))  # noqa: E731
    if kind < 6:
        a, e, n = _nanp(rng)
        fmt = ["({a}) {e}-{n}", "{a}-{e}-{n}", "{a}.{e}.{n}", "+1 {a} {e} {n}", "+1 ({a}) {e}-{n}",
               "1-{a}-{e}-{n}"][kind]
        return Value(fmt.format(a=a, e=e, n=n), "us_" + ["parens", "dashes", "dots", "e164_spaced", "e164_parens",
                                                         "one_dashes"][kind])
    if kind == 6:
        a, e, n = _nanp(rng)
        return Value(f"+1{a}{e}{n}", "e164_compact")
    if kind == 7:
        return Value(f"+44 {pick(rng, ['20', '161', '131'])} {nz()}{d(3)} {d(4)}" if rng.random() < 0.5
                     else f"+44 7{d(3)} {d(6)}", "uk")
    if kind == 8:
        return Value(f"+49 {pick(rng, ['30', '89', '40', '151', '170'])} {nz()}{d(rng.randrange(5, 8))}", "de")
    if kind == 9:
        return Value(f"+33 {rng.randrange(1, 8)} {d(2)} {d(2)} {d(2)} {d(2)}", "fr")
    if kind == 10:
        return Value(f"+81 {rng.randrange(3, 10)}-{d(4)}-{d(4)}", "jp")
    return Value(f"+91 9{d(4)} {d(5)}", "in")


# --- cards -----------------------------------------------------------------------------------------------------

CARD_PREFIXES = {
    "visa": (["4"], [16, 16, 16, 13, 19]),
    "mastercard": ([str(p) for p in range(51, 56)] + ["2221", "2300", "2500", "2720"], [16]),
    "amex": (["34", "37"], [15]),
    "discover": (["6011", "65", "644", "649"], [16, 19]),
    "jcb": (["3528", "3540", "3566", "3589"], [16]),
    "maestro": (["5018", "5020", "5038", "6304", "6759"], [16, 19]),
    "unionpay": (["62"], [16, 19]),
    "diners": (["300", "305", "36", "38"], [14]),
}


def card_number(rng: random.Random, brand: str) -> str:
    prefixes, lengths = CARD_PREFIXES[brand]
    prefix, length = pick(rng, prefixes), pick(rng, lengths)
    if brand == "unionpay":
        prefix += str(rng.randrange(2, 10))  # 622...629 (not 6011/65/644-649 discover)
    body = prefix + rand_str(rng, DIGITS, length - len(prefix) - 1)
    return body + luhn_check_digit(body)


def format_card(rng: random.Random, number: str, brand: str) -> tuple[str, str]:
    style = rng.randrange(3)
    if style == 0 or len(number) not in (14, 15, 16, 19):
        return number, "plain"
    sep = " " if style == 1 else "-"
    if brand in ("amex", "diners"):  # 4-6-5 and 4-6-4
        groups = [number[:4], number[4:10], number[10:]]
    else:
        groups = [number[i:i + 4] for i in range(0, len(number), 4)]
    return sep.join(groups), "spaced" if sep == " " else "dashed"


def credit_card(rng: random.Random) -> Value:
    brand = pick(rng, list(CARD_PREFIXES))
    number = card_number(rng, brand)
    text, style = format_card(rng, number, brand)
    variant = brand if brand == "diners" else f"{brand}_{style}"
    return Value(text, variant, edge=is_edge("pii.credit_card", variant))


def non_luhn_card_number(rng: random.Random) -> str:
    """A 16-digit number with a card-brand prefix that fails the Luhn check (a near miss). Written in groups of
    four, no card-length run of whole groups inside it (``1234 5678 9012`` ...) passes the Luhn check either."""
    while True:
        number = rand_str(rng, DIGITS, 15)
        prefix = pick(rng, ["4", "51", "55", "6011"])
        number = (prefix + number)[:16]
        windows = (number, number[4:], number[:12])  # the runs of whole groups that are card-length
        if not any(luhn_valid(w) for w in windows):
            break
    if rng.random() < 0.5:
        return " ".join(number[i:i + 4] for i in range(0, len(number), 4))
    return number


# --- IBAN ------------------------------------------------------------------------------------------------------

IBAN_FORMATS = {  # country: BBAN layout (n digit, a letter, c alphanumeric); total lengths per the SWIFT registry
    "DE": "n" * 18, "GB": "aaaa" + "n" * 14, "FR": "n" * 10 + "c" * 11 + "nn", "NL": "aaaa" + "n" * 10,
    "ES": "n" * 20, "IT": "a" + "n" * 10 + "c" * 12, "CH": "n" * 5 + "c" * 12, "BE": "n" * 12, "AT": "n" * 16,
    "PL": "n" * 24, "SE": "n" * 20, "NO": "n" * 11, "IE": "aaaa" + "n" * 14, "PT": "n" * 21, "FI": "n" * 14,
    "DK": "n" * 14,
}
IBAN_LENGTH = {"DE": 22, "GB": 22, "FR": 27, "NL": 18, "ES": 24, "IT": 27, "CH": 21, "BE": 16, "AT": 20, "PL": 28,
               "SE": 24, "NO": 15, "IE": 22, "PT": 25, "FI": 18, "DK": 18}


def iban_compact(rng: random.Random, country: str | None = None) -> str:
    country = country or pick(rng, list(IBAN_FORMATS))
    alphabet = {"n": DIGITS, "a": UPPER, "c": DIGITS + UPPER}
    bban = "".join(pick(rng, alphabet[c]) for c in IBAN_FORMATS[country])
    iban = country + iban_check_digits(country, bban) + bban
    assert len(iban) == IBAN_LENGTH[country] and iban_valid(iban)
    return iban


def iban(rng: random.Random) -> Value:
    compact = iban_compact(rng)
    if rng.random() < 0.5:
        return Value(" ".join(compact[i:i + 4] for i in range(0, len(compact), 4)), compact[:2] + "_spaced")
    return Value(compact, compact[:2])


def bad_iban(rng: random.Random) -> str:
    good = iban_compact(rng)
    check = int(good[2:4])
    wrong = f"{(check + rng.randrange(1, 90)) % 97 + 2:02d}"
    bad = good[:2] + (wrong if wrong != good[2:4] else f"{(check + 1) % 97 + 2:02d}") + good[4:]
    assert not iban_valid(bad)
    return " ".join(bad[i:i + 4] for i in range(0, len(bad), 4))


# --- SSN -------------------------------------------------------------------------------------------------------

def ssn_digits(rng: random.Random) -> str:
    area = rng.randrange(1, 900)
    while area == 666:
        area = rng.randrange(1, 900)
    return f"{area:03d}{rng.randrange(1, 100):02d}{rng.randrange(1, 10000):04d}"


def us_ssn(rng: random.Random, json_field: bool = False) -> Value:
    d = ssn_digits(rng)
    dashed = f"{d[:3]}-{d[3:5]}-{d[5:]}"
    if json_field:
        if rng.random() < 0.25:
            return Value(d, "json_compact", edge=is_edge("pii.us_ssn", "json_compact"))
        return Value(dashed, "dashed")
    kind = rng.randrange(4)
    if kind <= 1:
        return Value(dashed, "dashed")
    if kind == 2:
        return Value(d, "keyword_compact", before=pick(rng, ["SSN: ", "SSN ", "SSN#", "social security number is "]))
    return Value(f"{d[:3]} {d[3:5]} {d[5:]}", "keyword_spaced", before=pick(rng, ["SSN: ", "Social Security No. "]))


def invalid_ssn(rng: random.Random) -> str:
    area = pick(rng, ["000", "666", f"9{rng.randrange(10)}{rng.randrange(10)}"])
    return f"{area}-{rng.randrange(10, 100):02d}-{rng.randrange(1000, 10000):04d}"


# --- network ---------------------------------------------------------------------------------------------------

def ipv4(rng: random.Random) -> Value:
    kind = rng.randrange(4)
    if kind == 0:
        octets = [10, rng.randrange(256), rng.randrange(256), rng.randrange(1, 255)]
    elif kind == 1:
        octets = [172, rng.randrange(16, 32), rng.randrange(256), rng.randrange(1, 255)]
    elif kind == 2:
        octets = [192, 168, rng.randrange(256), rng.randrange(1, 255)]
    else:
        octets = [pick(rng, [23, 34, 52, 81, 95, 104, 151, 185, 203, 212]), rng.randrange(256), rng.randrange(256),
                  rng.randrange(1, 255)]
    return Value(".".join(map(str, octets)), ["private10", "private172", "private192", "public"][kind])


def ipv6(rng: random.Random) -> Value:
    import ipaddress

    while True:
        kind = rng.randrange(3)
        if kind == 0:  # documentation/global prefix with a zero run in the middle
            groups = [0x2001, 0x0DB8, rng.randrange(1 << 16), 0, 0, rng.randrange(1, 1 << 16), rng.randrange(1 << 16),
                      rng.randrange(1, 1 << 16)]
        elif kind == 1:  # link local
            groups = [0xFE80, 0, 0, 0] + [rng.randrange(1, 1 << 16) for _ in range(4)]
        else:
            groups = [rng.randrange(0x2000, 0x3FFF)] + [rng.randrange(1, 1 << 16) for _ in range(7)]
        addr = ipaddress.IPv6Address(sum(g << (16 * (7 - i)) for i, g in enumerate(groups)))
        text = addr.exploded if kind == 2 and rng.random() < 0.3 else addr.compressed
        if sum(1 for g in text.split(":") if g) >= 3:
            return Value(text, ["doc_prefix", "link_local", "global"][kind])


# --- cloud / vendor secrets ------------------------------------------------------------------------------------

def aws_access_key(rng: random.Random) -> Value:
    prefix = pick(rng, ["AKIA", "AKIA", "ASIA"])
    while True:
        key = prefix + rand_str(rng, UPPER + "234567", 16)
        if not key.endswith("EXAMPLE"):
            return Value(key, prefix.lower())


AWS_SECRET_CONTEXTS = [
    ("aws_secret_access_key = ", "", "ini"),
    ("AWS_SECRET_ACCESS_KEY=", "", "env"),
    ('"SecretAccessKey": "', '"', "json"),
    ("secret_key: ", "", "yaml"),
    ("the AWS secret key is ", "", "prose"),
    ("aws_secret_access_key='", "'", "python"),
]


def aws_secret(rng: random.Random, context: str | None = None) -> Value:
    while True:
        key = rand_str(rng, ALNUM + "/+", 40)
        classes = (any(c.islower() for c in key), any(c.isupper() for c in key), any(c in DIGITS + "/+" for c in key))
        if all(classes) and entropy(key) >= 4.2 and not key.endswith("EXAMPLEKEY"):
            break
    options = [c for c in AWS_SECRET_CONTEXTS if context is None or c[2] == context]
    before, after, name = pick(rng, options)
    return Value(key, name, before=before, after=after)


def github_token(rng: random.Random) -> Value:
    if rng.random() < 0.3:
        return Value(f"github_pat_{rand_str(rng, ALNUM, 22)}_{rand_str(rng, ALNUM, 59)}", "fine_grained")
    prefix = pick(rng, ["ghp", "ghp", "gho", "ghu", "ghs", "ghr"])
    body = rand_str(rng, BASE62, 30)
    return Value(f"{prefix}_{body}{github_checksum(body)}", f"classic_{prefix}")


def github_bad_checksum(rng: random.Random) -> str:
    body = rand_str(rng, BASE62, 30)
    good = github_checksum(body)
    bad = rand_str(rng, BASE62, 6)
    while bad == good:
        bad = rand_str(rng, BASE62, 6)
    return f"ghp_{body}{bad}"


def gitlab_token(rng: random.Random) -> Value:
    return Value("glpat-" + rand_str(rng, ALNUM + "-_", 20), "pat")


def slack_token(rng: random.Random) -> Value:
    kind = rng.randrange(3)
    if kind == 0:
        return Value(f"xoxb-{rand_str(rng, DIGITS, 12)}-{rand_str(rng, DIGITS, 13)}-{rand_str(rng, ALNUM, 24)}", "bot")
    if kind == 1:
        return Value(f"xoxp-{rand_str(rng, DIGITS, 12)}-{rand_str(rng, DIGITS, 12)}-{rand_str(rng, DIGITS, 13)}-"
                     f"{rand_str(rng, '0123456789abcdef', 32)}", "user")
    team, hook = "T" + rand_str(rng, UPPER + DIGITS, 10), "B" + rand_str(rng, UPPER + DIGITS, 10)
    return Value(f"https://hooks.slack.com/services/{team}/{hook}/{rand_str(rng, ALNUM, 24)}", "webhook")


def stripe_key(rng: random.Random) -> Value:
    prefix = pick(rng, ["sk_live", "sk_live", "rk_live", "sk_test"])
    return Value(f"{prefix}_{rand_str(rng, ALNUM, pick(rng, [24, 99]))}", prefix)


def openai_key(rng: random.Random) -> Value:
    kind = rng.randrange(3)
    if kind == 0:
        return Value(f"sk-{rand_str(rng, ALNUM, 20)}T3BlbkFJ{rand_str(rng, ALNUM, 20)}", "legacy")
    tag = "proj" if kind == 1 else "svcacct"
    return Value(f"sk-{tag}-{rand_str(rng, URLSAFE, 74)}T3BlbkFJ{rand_str(rng, URLSAFE, 74)}", tag)


def anthropic_key(rng: random.Random) -> Value:
    return Value(f"sk-ant-api03-{rand_str(rng, URLSAFE, 93)}AA", "api03")


def google_api_key(rng: random.Random) -> Value:
    return Value("AIza" + rand_str(rng, URLSAFE, 35), "aiza")


def jwt(rng: random.Random) -> Value:
    alg = pick(rng, ["HS256", "RS256", "ES256"])
    header = {"alg": alg, "typ": "JWT"} if rng.random() < 0.6 else {"typ": "JWT", "alg": alg,
                                                                     "kid": rand_str(rng, "0123456789abcdef", 16)}
    iat = 1_700_000_000 + rng.randrange(50_000_000)
    payload = {"sub": rand_str(rng, DIGITS, 10), "name": f"{pick(rng, FIRST)} {pick(rng, LAST)}".title(),
               "iat": iat, "exp": iat + 3600, "scope": pick(rng, ["read", "read write", "admin"])}
    sig_len = {"HS256": 32, "RS256": 256, "ES256": 64}[alg]
    sig = bytes(rng.randrange(256) for _ in range(sig_len))
    token = ".".join((b64url(json.dumps(header, separators=(",", ":")).encode()),
                      b64url(json.dumps(payload, separators=(",", ":")).encode()), b64url(sig)))
    return Value(token, alg)


PEM_KINDS = {  # label: (DER prefix bytes, total DER length, line width)
    "RSA PRIVATE KEY": (bytes.fromhex("308204a402010002820101"), 1192, 64),
    "PRIVATE KEY": (bytes.fromhex("308204bd020100300d06092a864886f70d0101010500048204a7"), 1217, 64),
    "EC PRIVATE KEY": (bytes.fromhex("30770201010420"), 121, 64),
    "OPENSSH PRIVATE KEY": (b"openssh-key-v1\x00", 399, 70),
    "ENCRYPTED PRIVATE KEY": (bytes.fromhex("308205263050"), 1322, 64),
}


def pem_block(rng: random.Random, kind: str | None = None, indent: str = "", newline: str = "\n") -> tuple[str, str]:
    kind = kind or pick(rng, list(PEM_KINDS))
    prefix, total, width = PEM_KINDS[kind]
    der = prefix + bytes(rng.randrange(256) for _ in range(total - len(prefix)))
    body = base64.b64encode(der).decode()
    lines = [f"-----BEGIN {kind}-----"] + [body[i:i + width] for i in range(0, len(body), width)]
    lines.append(f"-----END {kind}-----")
    return (newline + indent).join(lines), kind.replace(" ", "_").lower()


def private_key(rng: random.Random, indent: str = "") -> Value:
    newline = "\r\n" if rng.random() < 0.1 else "\n"
    block, kind = pem_block(rng, indent=indent, newline=newline)
    return Value(block, kind + ("_crlf" if newline == "\r\n" else "") + ("_indented" if indent else ""))


URL_SCHEMES = ["postgres", "postgresql", "mysql", "redis", "amqp", "mongodb+srv", "https"]
PASSWORD_ALPHABET = ALNUM + "!$*-_.~"


def strong_password(rng: random.Random, n: int | None = None, alphabet: str = PASSWORD_ALPHABET) -> str:
    while True:
        pw = rand_str(rng, alphabet, n or rng.randrange(14, 29))
        low = pw.lower()
        if (pw[0] in ALNUM and pw[-1] in ALNUM and entropy(pw) >= 3.3 and len(set(pw)) > 6
                and not any(w in low for w in ("your", "my", "insert", "enter", "replace", "put", "example"))):
            return pw


_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def _dotted(password: str) -> bool:
    """Shaped like ``module.attribute`` (letters, digits, ``_`` and dots, no segment starting with a digit)."""
    return _DOTTED.fullmatch(password) is not None


def url_password(rng: random.Random) -> Value:
    scheme = pick(rng, URL_SCHEMES)
    user = pick(rng, ["app", "orders_rw", "admin", "svc-billing", "default", "etl", "deploy"])
    pw = strong_password(rng)
    host = pick(rng, HOSTS)
    port = {"postgres": 5432, "postgresql": 5432, "mysql": 3306, "redis": 6379, "amqp": 5672}.get(scheme)
    tail = f"@{host}" + (f":{port}" if port else "") + pick(rng, ["/orders", "/app?sslmode=require", "/0", "/", ""])
    if _dotted(pw):
        return Value(pw, "dotted", before=f"{scheme}://{user}:", after=tail,
                     edge=is_edge("secrets.url_password", "dotted"))
    return Value(pw, scheme, before=f"{scheme}://{user}:", after=tail)


ASSIGNMENT_KEYS = [  # (key as written, separator, quote, variant)
    ("password", "=", "", "password_eq"), ("DB_PASSWORD", "=", "", "env_password"),
    ("api_key", ": ", "", "yaml_api_key"), ("apiKey", ": ", '"', "json_apiKey"),
    ("client_secret", " = ", "'", "py_client_secret"), ("passwd", "=", '"', "passwd"),
    ("x-api-key", ": ", "", "header_api_key"), ("auth_token", " := ", '"', "go_token"),
    ("dbPassword", ": ", '"', "camel_password"), ("SMTP_PASSWORD", "=", '"', "env_quoted"),
    ("passphrase", " => ", "'", "ruby_passphrase"), ("access_token", "=", "", "access_token"),
]


def assignment(rng: random.Random, json_field: bool = False) -> Value:
    key, sep, quote, variant = pick(rng, ASSIGNMENT_KEYS)
    value = strong_password(rng, alphabet=ALNUM + "!#%^&*-_+.")
    if _dotted(value):
        variant = "dotted"
    if json_field:
        if variant == "dotted":
            return Value(value, variant, before=f'"{key}": "', after='"', edge=is_edge("secrets.assignment", variant))
        return Value(value, "json_" + key, before=f'"{key}": "', after='"')
    return Value(value, variant, before=f"{key}{sep}{quote}", after=quote, edge=is_edge("secrets.assignment", variant))


def customer_id(rng: random.Random) -> Value:
    return Value(f"CUST-{rand_str(rng, DIGITS, 8)}", "cust8")


GENERATORS = {
    "pii.email": email, "pii.phone": phone, "pii.credit_card": credit_card, "pii.iban": iban,
    "pii.us_ssn": us_ssn, "pii.ipv4": ipv4, "pii.ipv6": ipv6,
    "secrets.aws_access_key": aws_access_key, "secrets.aws_secret_key": aws_secret,
    "secrets.github_token": github_token, "secrets.gitlab_token": gitlab_token, "secrets.slack_token": slack_token,
    "secrets.stripe_key": stripe_key, "secrets.openai_key": openai_key, "secrets.anthropic_key": anthropic_key,
    "secrets.google_api_key": google_api_key, "secrets.jwt": jwt, "secrets.private_key": private_key,
    "secrets.url_password": url_password, "secrets.assignment": assignment, "customer_id": customer_id,
}
DETECTORS = tuple(GENERATORS)
"""Every detector the corpus plants values for (``customer_id`` is the repo policy's custom detector)."""
