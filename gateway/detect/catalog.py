"""The built-in detectors (``pii.*`` and ``secrets.*``).

Every pattern here is written for exactness under streaming and windowed scanning (see :mod:`.model`): bounded
quantifiers (so ``max_len`` is a true bound), lookaround boundaries instead of ``\\b``, ASCII classes, and a
``trigger`` that occurs inside every raw match. ``tests/detect/test_catalog_contract.py`` checks the trigger and
bound claims on every sample.

Decisions worth knowing:

- ``pii.ipv4``: a standalone dotted quad with octets <= 255 is an address, even if it is really a version
  (``1.2.3.4``); ``v1.2.3.4``, ``1.2.3.4.5`` and anything glued to letters or further dots are not.
- ``pii.ipv6``: at least three non-empty groups, so ``::1``, ``fe80::1`` and ``a[::2]`` are left alone.
- ``pii.phone``: needs a ``+country`` prefix (8–15 digits) or the NANP 3-3-4 shape with separators; plain digit
  runs, dates (``2024-01-15``), versions and prices don't match. National formats of other countries without
  ``+`` (``020 7946 0958``) are not covered.
- ``pii.us_ssn``: ``123-45-6789`` anywhere; 9 bare digits (or space separated) only after ``SSN`` / ``social
  security number``, quotes allowed around key and value (``"ssn": "123456789"``, also JSON-escaped);
  area/group/serial rules in the validator.
- ``pii.credit_card``: contiguous 12–19 digits or 4-digit groups (Amex 4-6-5, Diners 4-6-4) with spaces/dashes;
  brand range + length + Luhn in the validator. A card glued to a further digit group
  (``4111 1111 1111 1111 2020``) fails validation as a whole and is not masked, and digit groups inside an
  IBAN-shaped token (``DE00 5077 3547 ...``, e.g. one with a wrong checksum) are never taken for a card.
- ``secrets.aws_secret_key``: 40 characters after a ``secret``-style key, or right after an ``AKIA``/``ASIA`` id
  and 1–6 separator characters (``AKIA… / <secret>``, ``"AKIA…","<secret>"``; spaces alone don't separate).
- ``secrets.private_key``: ``BEGIN … PRIVATE KEY`` up to the matching ``END`` line, also inside a JSON string
  (``\\n``/``\\r\\n`` escapes in the body); a block cut off before its ``END`` is masked from ``BEGIN``
  through the base64-looking text that follows.
- ``secrets.assignment`` / ``secrets.url_password``: values that are placeholders (``changeme``, ``${VAR}``,
  AWS's ``…EXAMPLE`` keys, code references like ``settings.SECRET_KEY``) are left alone; a random password with a
  dot (``Mksn0UHdy7pMpaiyOQZ.F``) is not a code reference (see ``validators.is_code_reference``).
"""
from __future__ import annotations

from gateway.detect import validators as v
from gateway.detect.model import Detector, ci

_NOT_AFTER_WORD = r"(?<![A-Za-z0-9_])"


def _email_hint(value: str) -> str:
    return "…" + value[value.index("@"):]


def _card_hint(value: str) -> str:
    return "…" + v.digits(value)[-4:]


def _phone_hint(value: str) -> str:
    return "…" + v.digits(value)[-2:]


def _iban_hint(value: str) -> str:
    return value[:2] + "…"


# Not the password of scheme://user:password@host (secrets.url_password masks that part). Spelled as fixed-length
# lookbehinds: the `regex` module's partial matching reports a variable-length lookbehind that reads back over
# text as "could still match", which would make the stream hold far too much.
_NOT_URL_PASSWORD = "(?:(?<!:)|" + "".join(rf"(?<!://[^\s/@:]{{{k}}}:)" for k in range(41)) + ")"

EMAIL = Detector(
    name="pii.email", label="EMAIL",
    pattern=(r"(?<![A-Za-z0-9_%+.-])" + _NOT_URL_PASSWORD + r"[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
             r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}"
             r"(?![A-Za-z0-9_-]|\.[A-Za-z0-9])"),
    trigger="@", max_len=640, max_pre=66, hint=_email_hint,
)

PHONE = Detector(
    name="pii.phone", label="PHONE",
    pattern=(r"(?:(?<![A-Za-z0-9_+])\+[1-9][0-9]{0,2}(?:[ .-]?(?:\([0-9]{1,4}\)|[0-9]{1,4})){2,6}"
             r"|(?<![A-Za-z0-9_+.-])(?:1[ .-]?)?(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .-])[2-9][0-9]{2}[ .-][0-9]{4})"
             r"(?![0-9]|[.-][0-9])"),
    validator=v.phone_ok, trigger=r"\+[1-9]|[0-9]{3}[ .-][0-9]{4}", max_len=64, max_pre=12, hint=_phone_hint,
)

US_SSN = Detector(
    name="pii.us_ssn", label="US_SSN",
    pattern=(r"(?:(?<![A-Za-z0-9_-])(?P<v>[0-9]{3}-[0-9]{2}-[0-9]{4})(?![0-9]|-[0-9])"
             rf"|{_NOT_AFTER_WORD}(?:{ci('ssn')}|{ci('social security')}(?: {ci('number')}| {ci('no')}\.?)?)"
             r"""(?:\\?["'])?(?:[ \t]{0,3}[:#=-]|[ \t]is)?[ \t]{0,3}(?:\\?["'])?"""
             r"(?P<v>[0-9]{3}[ -]?[0-9]{2}[ -]?[0-9]{4})(?![0-9]))"),
    validator=v.us_ssn_ok, value_group="v",
    trigger=rf"[0-9]{{3}}[ -]?[0-9]{{2}}[ -]?[0-9]{{4}}|{ci('ssn')}|{ci('social')}", max_len=64, max_pre=0,
)

# Not a digit group of an IBAN written in groups (``DE00 5012 3456 ...``, wrong checksum): one fixed-length
# lookbehind per number of groups before the card's first digit (an IBAN is at most 34 characters; a card needs at
# least 3 groups). They are checked after the first digit is consumed, so they only run where a number starts
# (3x faster on prose than lookbehinds at every position).
_NOT_IN_IBAN = "".join(rf"(?<![A-Z]{{2}}[0-9]{{2}}(?: [A-Z0-9]{{4}}){{{k}}} [0-9])" for k in range(7))

CREDIT_CARD = Detector(
    name="pii.credit_card", label="CREDIT_CARD",
    pattern=(r"(?<![A-Za-z0-9_-])[0-9]" + _NOT_IN_IBAN  # the first digit, then the rest of the number:
             + r"(?:[0-9]{11,18}|[0-9]{3}[ -][0-9]{4}[ -][0-9]{4}(?:[ -][0-9]{1,4}){0,2}"
             r"|[0-9]{3}[ -][0-9]{6}[ -][0-9]{4,5})(?![0-9])"),
    validator=v.credit_card_ok, trigger=r"[0-9]{4}[ -]?[0-9]{4}", max_len=32, hint=_card_hint,
)

IBAN = Detector(
    name="pii.iban", label="IBAN",
    pattern=(r"(?<![A-Za-z0-9_])[A-Z]{2}[0-9]{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)"
             r"(?![A-Za-z0-9_])"),
    validator=v.iban_ok, trigger=r"[A-Z]{2}[0-9]{2}", max_len=48, max_pre=0, hint=_iban_hint,
)

IPV4 = Detector(
    name="pii.ipv4", label="IPV4",
    pattern=r"(?<![A-Za-z0-9_.])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?![A-Za-z0-9_]|\.[0-9])",
    validator=v.ipv4_ok, trigger=r"[0-9]\.[0-9]{1,3}\.[0-9]", max_len=20, max_pre=2,
)

IPV6 = Detector(
    name="pii.ipv6", label="IPV6",
    pattern=(r"(?<![A-Za-z0-9_:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:(?:\.[0-9]{1,3}){3})?"
             r"(?![A-Za-z0-9_:]|\.[0-9])"),
    validator=v.ipv6_ok, trigger=r":[0-9A-Fa-f]{0,4}:", max_len=64, max_pre=4,
)

AWS_ACCESS_KEY = Detector(
    name="secrets.aws_access_key", label="AWS_ACCESS_KEY",
    pattern=r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])",
    validator=v.aws_access_key_ok, trigger=r"A(?:KIA|SIA|BIA|CCA)", max_len=22, max_pre=0,
)

AWS_SECRET_KEY = Detector(
    name="secrets.aws_secret_key", label="AWS_SECRET_KEY",
    pattern=(rf"(?:(?:(?<![A-Za-z0-9]){ci('secret')}|(?<=[a-z0-9])Secret)(?:[_ -]?{ci('access')})?"
             rf"(?:[_ -]?{ci('key')})?"
             r"""["']?[ \t]{0,3}(?:[:=]|=>|:=|[ \t]is)?[ \t]{0,3}["']?"""
             # or its access key id a few separator characters before: `AKIA... / <secret>`, `"AKIA...","<secret>"`.
             # Spaces alone don't separate (`AKIA... then ...` is prose: the id is not held back for the next word).
             r"""|(?<![A-Za-z0-9])A(?:KIA|SIA)[A-Z0-9]{16}(?! {1,6}[A-Za-z0-9+])[\s"'`,:;|/=\\]{1,6})"""
             r"(?P<v>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"),
    validator=v.aws_secret_key_ok, value_group="v", trigger=rf"{ci('secret')}|A(?:KIA|SIA)", max_len=96, max_pre=0,
)

GITHUB_TOKEN = Detector(
    name="secrets.github_token", label="GITHUB_TOKEN",
    pattern=(r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})"
             r"(?![A-Za-z0-9_])"),
    validator=lambda s: s.startswith("github_pat_") or v.github_classic_ok(s),
    trigger=r"gh[pousr]_|github_pat_", max_len=100, max_pre=0,
)

GITLAB_TOKEN = Detector(
    name="secrets.gitlab_token", label="GITLAB_TOKEN",
    pattern=r"(?<![A-Za-z0-9_-])glpat-[A-Za-z0-9_-]{20,255}",
    trigger="glpat-", max_len=261, max_pre=0,
)

SLACK_TOKEN = Detector(
    name="secrets.slack_token", label="SLACK_TOKEN",
    pattern=(r"(?<![A-Za-z0-9_-])xox[baprs]-[A-Za-z0-9-]{10,250}"
             r"|(?:https?://)?hooks\.slack\.com/services/T[A-Z0-9]{6,12}/B[A-Z0-9]{6,12}/[A-Za-z0-9]{20,32}"),
    trigger=r"xox[baprs]-|hooks\.slack\.com/services/", max_len=300, max_pre=8,
)

STRIPE_KEY = Detector(
    name="secrets.stripe_key", label="STRIPE_KEY",
    pattern=r"(?<![A-Za-z0-9_])(?:sk_live|rk_live|sk_test)_[A-Za-z0-9]{24,247}",
    trigger=r"[sr]k_(?:live|test)_", max_len=255, max_pre=0,
)

OPENAI_KEY = Detector(
    name="secrets.openai_key", label="OPENAI_KEY",
    pattern=(r"(?<![A-Za-z0-9_-])sk-(?:[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}(?![A-Za-z0-9])"
             r"|(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,250})"),
    trigger="sk-", max_len=264, max_pre=0,
)

ANTHROPIC_KEY = Detector(
    name="secrets.anthropic_key", label="ANTHROPIC_KEY",
    pattern=r"(?<![A-Za-z0-9_-])sk-ant-(?:api03|admin01)-[A-Za-z0-9_-]{32,250}",
    trigger="sk-ant-", max_len=266, max_pre=0,
)

GOOGLE_API_KEY = Detector(
    name="secrets.google_api_key", label="GOOGLE_API_KEY",
    pattern=r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])",
    trigger="AIza", max_len=40, max_pre=0,
)

JWT = Detector(
    name="secrets.jwt", label="JWT",
    pattern=r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,2000}\.[A-Za-z0-9_-]{2,16000}\.[A-Za-z0-9_-]{0,2000}",
    validator=v.jwt_ok, trigger="eyJ", max_len=20010, max_pre=0,
)

# A PEM body: runs of base64/header characters (atomic, so failing attempts don't re-split them) or a dash that
# does not open the END line; then the END line when there is one. Greedy body + optional END, no lazy repeat:
# the `regex` module reports a lazy repeat followed by a literal as "could still match" up to the end of the
# text, which would hold a finished block until the stream ends.
_PEM_BODY = r"(?:(?>[A-Za-z0-9+/=\s:,]{1,128})|\\{1,2}[rnt/]|-(?!----)){0,600}"
_PEM_BEGIN = r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
_PEM_END = r"-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
PRIVATE_KEY = Detector(
    name="secrets.private_key", label="PRIVATE_KEY",
    pattern=rf"{_PEM_BEGIN}{_PEM_BODY}(?:{_PEM_END})?",
    trigger="-----BEGIN", max_len=77_000, max_pre=0,
)

URL_PASSWORD = Detector(
    name="secrets.url_password", label="PASSWORD",
    pattern=(r"""(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,30}://[^\s:/?#@"'<>]{0,128}"""
             r""":(?P<v>[^\s/?#@"'<>]{1,256})@(?=[A-Za-z0-9\[])"""),
    validator=v.url_password_ok, value_group="v", trigger="://", max_len=432, max_pre=31,
)

_ASSIGN_KEYS = "|".join(ci(k) for k in (
    "password", "passwd", "passphrase", "pwd", "secret", "api_key", "api-key", "apikey", "access_key",
    "access-key", "token", "credential", "private_key",
))
_ASSIGN_CAMEL = "Password|Passwd|Passphrase|Secret|Token|Credentials?|AccessKey|ApiKey|PrivateKey"
_ASSIGN_VALUE = (r"""(?:"(?P<v>[^"\r\n]{1,256})"|'(?P<v>[^'\r\n]{1,256})'|`(?P<v>[^`\r\n]{1,256})`"""
                 r"""|\\"(?P<v>[^"\\\r\n]{1,256})\\["]"""  # inside a JSON string: key: \"value\"
                 r"""|(?P<v>[^\s"'`,;)\]}>]{0,255}[^\s"'`,;)\]}>.:]))""")  # unquoted: no final '.' or ':'
ASSIGNMENT = Detector(
    name="secrets.assignment", label="SECRET",
    pattern=(rf"(?:(?<![A-Za-z0-9])(?:{_ASSIGN_KEYS})|(?<=[a-z0-9])(?:{_ASSIGN_CAMEL}))"
             r"""(?:[_.-][A-Za-z0-9]{1,16}){0,2}(?:\\?["'])?[ \t]{0,4}(?::=|=>|[:=])[ \t]{0,4}"""
             + _ASSIGN_VALUE),
    validator=v.assignment_value_ok, value_group="v",
    trigger=rf"{_ASSIGN_KEYS}|{_ASSIGN_CAMEL}", max_len=360, max_pre=0,
)

BUILTIN: tuple[Detector, ...] = (
    # Specific secret formats first: on a tie in merged-span length the earlier detector names the span.
    PRIVATE_KEY, AWS_ACCESS_KEY, AWS_SECRET_KEY, GITHUB_TOKEN, GITLAB_TOKEN, SLACK_TOKEN, STRIPE_KEY,
    ANTHROPIC_KEY, OPENAI_KEY, GOOGLE_API_KEY, JWT, URL_PASSWORD,
    EMAIL, CREDIT_CARD, IBAN, US_SSN, PHONE, IPV4, IPV6,
    ASSIGNMENT,
)
"""All built-in detectors, in tie-break order."""

BY_NAME: dict[str, Detector] = {d.name: d for d in BUILTIN}
