"""Validators: checks on a matched value that a regex alone can't express (checksums, ranges, decodings).

Each takes the matched value (the value group when the detector has one) and returns True to keep the match.
They never raise on odd input; a validator that raises is a bug the scanner reports as a masking error.
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import math
import re
from collections import Counter

_NOT_DIGIT = re.compile(r"[^0-9]")


def digits(value: str) -> str:
    """The ASCII digits of ``value``, separators dropped."""
    return _NOT_DIGIT.sub("", value)


# --- cards -------------------------------------------------------------------------------------------------------

def luhn_ok(number: str) -> bool:
    """Luhn (mod 10) check over a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_brand(number: str) -> str | None:
    """Brand whose issuer range *and* length fit ``number`` (digits only), or None."""
    n = len(number)
    two, four = int(number[:2]), int(number[:4])
    if number[0] == "4" and n in (13, 16, 19):
        return "visa"
    if (51 <= two <= 55 or 2221 <= four <= 2720) and n == 16:
        return "mastercard"
    if two in (34, 37) and n == 15:
        return "amex"
    if (number.startswith("6011") or two == 65 or 644 <= int(number[:3]) <= 649) and 16 <= n <= 19:
        return "discover"
    if 3528 <= four <= 3589 and 16 <= n <= 19:
        return "jcb"
    if (two == 50 or 56 <= two <= 69) and 12 <= n <= 19:
        return "maestro"
    if (300 <= int(number[:3]) <= 305 or two in (36, 38, 39)) and n == 14:
        return "diners"
    return None


def credit_card_ok(value: str) -> bool:
    number = digits(value)
    return 12 <= len(number) <= 19 and card_brand(number) is not None and luhn_ok(number)


# --- IBAN --------------------------------------------------------------------------------------------------------

IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29,
    "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
    "YE": 30,
}
"""IBAN length per country (SWIFT IBAN registry)."""


def iban_ok(value: str) -> bool:
    """Country length table plus the ISO 13616 mod-97 check."""
    iban = value.replace(" ", "").upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum() or not iban.isascii():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


# --- national ids, phones, addresses -----------------------------------------------------------------------------

def us_ssn_ok(value: str) -> bool:
    """Area not 000/666/9xx, group not 00, serial not 0000 (SSA rules since 2011 randomisation)."""
    d = digits(value)
    if len(d) != 9:
        return False
    area, group, serial = d[:3], d[3:5], d[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def phone_ok(value: str) -> bool:
    """International numbers carry 8–15 digits (E.164); national (NANP) ones 10, or 11 with the leading 1."""
    d = digits(value)
    if value.lstrip().startswith("+"):
        return 8 <= len(d) <= 15
    return len(d) == 10 or (len(d) == 11 and d[0] == "1")


def ipv4_ok(value: str) -> bool:
    parts = value.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) <= 255 and (p == "0" or p[0] != "0") for p in parts)


def ipv6_ok(value: str) -> bool:
    """A valid IPv6 address with at least three non-empty groups (so ``::1``, ``fe80::1``, ``a::b`` pass)."""
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    groups = [g for g in value.split(":") if g]
    weight = sum(2 if "." in g else 1 for g in groups)
    return weight >= 3


# --- secrets -----------------------------------------------------------------------------------------------------

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62_encode(number: int, width: int = 6) -> str:
    out = []
    while number:
        number, rem = divmod(number, 62)
        out.append(_BASE62[rem])
    return "".join(reversed(out)).rjust(width, "0")


def github_checksum(random_part: str) -> str:
    """The 6-character base62 CRC32 GitHub appends to the 30 random characters of a classic token."""
    return base62_encode(binascii.crc32(random_part.encode("ascii")))


def github_classic_ok(value: str) -> bool:
    """``gh?_`` + 30 random base62 chars + their CRC32 in base62 (6 chars)."""
    body = value[4:]
    return len(body) == 36 and body.isascii() and github_checksum(body[:30]) == body[30:]


def aws_access_key_ok(value: str) -> bool:
    """Excludes AWS's documented example keys (``AKIAIOSFODNN7EXAMPLE`` and anything ending ``EXAMPLE``)."""
    return not value.endswith("EXAMPLE")


def aws_secret_key_ok(value: str) -> bool:
    """Not AWS's documented example, mixed character classes, and entropy of a random key."""
    if value.endswith("EXAMPLEKEY"):
        return False
    classes = sum((any(c.islower() for c in value), any(c.isupper() for c in value),
                   any(c.isdigit() or c in "/+" for c in value)))
    return classes >= 3 and shannon_entropy(value) >= 4.0


def jwt_ok(value: str) -> bool:
    """The header segment decodes (base64url) to a JSON object naming an ``alg``."""
    header = value.split(".", 1)[0]
    try:
        raw = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(obj, dict) and "alg" in obj


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value``'s character distribution."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


PLACEHOLDER_WORDS = frozenset({
    "changeme", "change_me", "changeit", "password", "passwd", "secret", "example", "placeholder", "redacted",
    "none", "null", "undefined", "true", "false", "your_password", "yourpassword", "notasecret", "dummy",
    "required", "optional", "string", "sample", "test1234", "12345678", "123456789", "qwertyui",
})

_PLACEHOLDER_SHAPES = re.compile(
    r"""^(?:
        \$\{[^}]*\}? | \$[A-Za-z_][A-Za-z0-9_]* | \$\([^)]*\)?     # ${VAR}, $VAR, $(cmd)
      | \{\{.*\}?\}? | \{%.*                                       # {{ template }}
      | <[^>]*>? | \[[^\]]*\]?                                     # <your-key>, [token]
      | %\([A-Za-z_]+\)s | %s                                      # %(pw)s
      | (?:os\.environ|os\.getenv|getenv|process\.env|env\.|ENV\[|secrets\.|vault:).*
      | ([xX*#._-])\1* | [xX*]+[-_.]?[xX*]*                        # xxxx, ****, ....
      | \.\.\.+.* | .*\.\.\.
      | [A-Za-z_][A-Za-z0-9_]*\(.*                                    # get_password()
    )$""",
    re.VERBOSE,
)
_DOTTED_CALL = re.compile(r"([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)+)(?:\(.*)?")
_IDENTIFIER_PART = re.compile(
    r"_{0,2}(?:[a-z]+[0-9]*(?:_[a-z0-9]+)*"                 # snake_case / lower: settings, db_password, v2
    r"|[A-Z]+[0-9]*(?:_[A-Z0-9]+)*"                         # CONSTANT_CASE: SECRET_KEY
    r"|[a-z]+[0-9]*(?:[A-Z][a-z]+[0-9]*)*(?:[A-Z]+[0-9]*)?"  # camelCase: apiKey, getSecretValue, getURL
    r"|(?:[A-Z][a-z]+[0-9]*)+(?:[A-Z]+[0-9]*)?"             # PascalCase: DbPassword
    r")_{0,2}"
)
_WORD_SPLIT = re.compile(r"_+|(?<=[a-z0-9])(?=[A-Z])")
_DIGIT_RUN = re.compile(r"[0-9]+")


def is_code_reference(value: str) -> bool:
    """``settings.SECRET_KEY``, ``config.db.password``, ``cfg.get(...)``: dotted parts that are all word-shaped
    identifiers (one case style each, at most one digit run, words of 2.5 letters on average).

    Random passwords with a dot (``Mksn0UHdy7pMpaiyOQZ.F``, ``x7.Qp2Lr9VkZt``) mix cases and digits inside a part
    or are made of one- and two-letter humps, so they are not taken for code."""
    m = _DOTTED_CALL.fullmatch(value)
    if m is None:
        return False
    letters = words = 0
    for part in m.group(1).split("."):
        if not _IDENTIFIER_PART.fullmatch(part) or len(_DIGIT_RUN.findall(part)) > 1:
            return False
        for w in _WORD_SPLIT.split(part):
            if w:
                words += 1
                letters += sum(c.isalpha() for c in w)
    return words > 0 and letters >= 2.5 * words


_YOUR_SOMETHING = re.compile(r"(?i)(?:your|my|insert|enter|replace|put)[_-]?.*(?:key|token|secret|pass|here)")


def is_placeholder(value: str) -> bool:
    """Values that only look like secrets: ``changeme``, ``<your-key>``, ``${VAR}``, ``xxxx``, ``your_api_key_here``."""
    v = value.strip("\"'`")
    if v.endswith(("EXAMPLE", "EXAMPLEKEY")):  # AWS's documented keys: AKIAIOSFODNN7EXAMPLE, ...EXAMPLEKEY
        return True
    if (v.lower() in PLACEHOLDER_WORDS or _PLACEHOLDER_SHAPES.match(v) or _YOUR_SOMETHING.search(v)
            or is_code_reference(v)):
        return True
    return len(set(v.lower())) <= 2


def url_password_ok(value: str) -> bool:
    return not is_placeholder(value)


ASSIGNMENT_MIN_ENTROPY = 3.0
"""Bits/char a ``password=...``-style value needs to be treated as a secret (English words sit near 2.5–3)."""
ASSIGNMENT_MIN_LEN = 8


def assignment_value_ok(value: str) -> bool:
    return (len(value) >= ASSIGNMENT_MIN_LEN and not is_placeholder(value)
            and shannon_entropy(value) >= ASSIGNMENT_MIN_ENTROPY)
