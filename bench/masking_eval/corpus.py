"""The seeded evaluation corpus: documents with planted secrets/PII, and a benign-technical corpus of hard negatives.

    corpus = generate(seed=3)                 # deterministic per (seed, sizes)
    corpus.planted_docs[0].text               # prose, reasoning, code, config, logs, JSON tool arguments, markdown
    corpus.planted_docs[0].planted            # every planted value: detector, exact text, offset, variant
    corpus.benign_docs[0].negatives           # git SHAs, UUIDs, non-Luhn numbers, AWS example keys, ...

No external data: values come from :mod:`.values` (valid checksums computed there), the surrounding text from the
templates below. Planted values are spread evenly over the detectors (a shuffled deck per seed), so every type
gets a comparable number of samples. Each document has a ``channel`` — the response field the corpus upstream
sends it in (``reasoning`` = ``reasoning_content``, ``content``, ``tool_args`` = tool-call arguments).

``python -m bench.masking_eval.corpus --seed 1 [--show N]`` prints a summary (and N documents).
"""
from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from dataclasses import dataclass, field

from bench.masking_eval import values as V
from bench.masking_eval.values import DETECTORS, Value, pick, rand_str

PLANTED_KINDS = ("reasoning", "ticket", "code", "config", "log", "json", "markdown")
BENIGN_KINDS = ("changelog", "ci_log", "review", "config", "invoice", "json", "reasoning")
CHANNELS = ("reasoning", "content", "tool_args")


@dataclass(frozen=True, slots=True)
class Planted:
    detector: str
    """Catalog name of the detector that should mask it (``pii.email``, ``secrets.jwt``, ``customer_id``...)."""
    value: str
    """Exactly as it appears in the document text (inside JSON documents: JSON-escaped)."""
    start: int
    """Character offset in ``Doc.text``."""
    variant: str
    edge: bool = False
    """A structure the catalog is not required to catch (see ``values.EDGE_VARIANTS``)."""

    @property
    def end(self) -> int:
        return self.start + len(self.value)


@dataclass(frozen=True, slots=True)
class Negative:
    category: str
    """``git_sha``, ``uuid``, ``non_luhn_card``, ``version``, ``timestamp``, ``price``, ``aws_example`` ..."""
    text: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.text)


@dataclass(frozen=True, slots=True)
class Doc:
    id: str
    """``s{seed}-p{n}`` (planted) or ``s{seed}-b{n}`` (benign)."""
    kind: str
    channel: str
    text: str
    planted: tuple[Planted, ...] = ()
    negatives: tuple[Negative, ...] = ()

    @property
    def benign(self) -> bool:
        return not self.planted


@dataclass(frozen=True)
class Corpus:
    seed: int
    planted_docs: tuple[Doc, ...]
    benign_docs: tuple[Doc, ...]
    by_id: dict[str, Doc] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.by_id.update({d.id: d for d in self.planted_docs + self.benign_docs})

    def docs(self) -> tuple[Doc, ...]:
        return self.planted_docs + self.benign_docs


# --- document builder ------------------------------------------------------------------------------------------

class _Builder:
    def __init__(self, json_mode: bool = False) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.planted: list[Planted] = []
        self.negatives: list[Negative] = []
        self.json_mode = json_mode
        """Inside a JSON string: literal text and values are JSON-escaped as they are added."""

    def _esc(self, text: str) -> str:
        return json.dumps(text, ensure_ascii=False)[1:-1] if self.json_mode else text

    def raw(self, text: str) -> None:
        """Add text verbatim (JSON punctuation in JSON mode)."""
        self.parts.append(text)
        self.size += len(text)

    def text(self, text: str) -> None:
        self.raw(self._esc(text))

    def plant(self, detector: str, v: Value) -> None:
        self.text(v.before)
        value = self._esc(v.value)
        edge = v.edge
        variant = v.variant
        if self._esc(v.before + v.value + v.after) != v.before + v.value + v.after:
            # Inside a JSON string, newlines and quotes of the value or its context become escapes.
            variant = "json_escaped"
            edge = V.is_edge(detector, variant)
        self.planted.append(Planted(detector, value, self.size, variant, edge))
        self.raw(value)
        self.text(v.after)

    def negative(self, category: str, text: str) -> None:
        text = self._esc(text)
        self.negatives.append(Negative(category, text, self.size))
        self.raw(text)

    def segments(self, frame: str, fill: dict) -> None:
        """Add ``frame``, where ``{x}`` is a planted value/negative and ``{name}``-style keys are plain text.

        ``fill`` maps placeholder -> str (plain text) or a callable taking this builder (plants/negatives)."""
        i = 0
        while i < len(frame):
            j = frame.find("{", i)
            if j == -1:
                self.text(frame[i:])
                break
            k = frame.find("}", j)
            key = frame[j + 1:k]
            if k == -1 or key not in fill:
                self.text(frame[i:j + 1])
                i = j + 1
                continue
            self.text(frame[i:j])
            item = fill[key]
            if callable(item):
                item(self)
            else:
                self.text(item)
            i = k + 1

    def build(self) -> str:
        return "".join(self.parts)


# --- text around planted values ----------------------------------------------------------------------------------

NOUN = {
    "pii.email": "email address", "pii.phone": "phone number", "pii.credit_card": "card number", "pii.iban": "IBAN",
    "pii.us_ssn": "SSN", "pii.ipv4": "IP address", "pii.ipv6": "IPv6 address",
    "secrets.aws_access_key": "AWS access key id", "secrets.aws_secret_key": "AWS secret",
    "secrets.github_token": "GitHub token", "secrets.gitlab_token": "GitLab token",
    "secrets.slack_token": "Slack credential", "secrets.stripe_key": "Stripe key", "secrets.openai_key": "OpenAI key",
    "secrets.anthropic_key": "Anthropic key", "secrets.google_api_key": "Maps API key",
    "secrets.jwt": "bearer token", "secrets.private_key": "private key", "secrets.url_password": "connection string",
    "secrets.assignment": "config line", "customer_id": "customer id",
}
LOGKEY = {
    "pii.email": "email", "pii.phone": "phone", "pii.credit_card": "pan", "pii.iban": "iban", "pii.us_ssn": "ssn",
    "pii.ipv4": "client_ip", "pii.ipv6": "client_ip", "secrets.aws_access_key": "key_id",
    "secrets.github_token": "gh", "secrets.gitlab_token": "gl", "secrets.slack_token": "slack",
    "secrets.stripe_key": "stripe", "secrets.openai_key": "upstream_key", "secrets.anthropic_key": "upstream_key",
    "secrets.google_api_key": "maps", "secrets.jwt": "bearer", "customer_id": "customer",
}
JSONKEY = {
    "pii.email": "email", "pii.phone": "phone", "pii.credit_card": "card_number", "pii.iban": "iban",
    "pii.us_ssn": "ssn", "pii.ipv4": "source_ip", "pii.ipv6": "source_ip6", "secrets.aws_access_key": "AccessKeyId",
    "secrets.github_token": "github_token", "secrets.gitlab_token": "gitlab_token", "secrets.slack_token": "slack",
    "secrets.stripe_key": "stripe_key", "secrets.openai_key": "openai_api_key",
    "secrets.anthropic_key": "anthropic_api_key", "secrets.google_api_key": "maps_key", "secrets.jwt": "id_token",
    "secrets.private_key": "private_key", "secrets.url_password": "database_url", "customer_id": "customer_id",
}

PROSE_FRAMES = [
    "{name} asked us to update the {noun} on file to {x} before the next invoice run.",
    "For reference, the {noun} they gave was {x}.",
    "Please double-check {x} — {name} says that {noun} is no longer valid.",
    "Noted the {noun} ({x}) in the case history.",
    "“{x}” is the {noun} from the signup form.",
    "{name}'s {noun}: {x}",
    "We can't process the refund until the {noun} {x} is verified by finance.",
]
REASONING_FRAMES = [
    "Let me think... the user's {noun} {x} shows up in the logs, so the request did reach us.",
    "Hmm, wait — {x} is a {noun}. I shouldn't repeat it in the answer.",
    "Okay, so the {noun} is {x}. That matches what {name} said earlier.",
    "First, look at the {noun}: {x}… then compare it with the account record.",
    "The tool output contained {x} (a {noun}); I'll summarise without it.",
    "So: {noun} → {x}, and nothing else seems off 🤔.",
    "Actually, the {noun} in the second message was {x}, not the one from the ticket.",
]
CONTEXT_FRAMES = [  # for values that carry their own context (``aws_secret_access_key = ...``, URLs, assignments)
    "Let me think... the pasted config has {x} in it, which means it leaked.",
    "Found this line in their message: {x}",
    "They ran the script with {x} and it still failed.",
    "The traceback shows {x}; that should never be in a log.",
    "Hmm, {x} — so the credential is hard-coded. I'll tell them to rotate it.",
]
CODE_FRAMES = {
    "pii.email": ['ADMIN_EMAIL = "{x}"', 'send_mail(to="{x}", subject="Quarterly report")', "  contact: {x}"],
    "pii.phone": ['SUPPORT_PHONE = "{x}"', '  phone: "{x}"', "// call {x} if the pager fails"],
    "pii.credit_card": ['card = "{x}"  # from the failing test', 'charge(amount=4999, pan="{x}")'],
    "pii.iban": ['payout_iban = "{x}"', "  iban: {x}"],
    "pii.us_ssn": ['applicant.ssn = "{x}"', '  ssn: "{x}"'],
    "pii.ipv4": ["upstream backend { server {x}:8443; }", 'ALLOWED_HOSTS = ["{x}"]', "  host: {x}"],
    "pii.ipv6": ["listen [{x}]:443;", 'BIND_ADDR = "{x}"'],
    "secrets.aws_access_key": ["aws_access_key_id = {x}", "AWS_ACCESS_KEY_ID={x}",
                               's3 = boto3.client("s3", aws_access_key_id="{x}")'],
    "secrets.github_token": ["GITHUB_TOKEN={x}", "git clone https://{x}@github.com/acme/infra.git",
                             'gh = Github("{x}")'],
    "secrets.gitlab_token": ["GITLAB_TOKEN={x}",
                             'curl --header "PRIVATE-TOKEN: {x}" https://gitlab.example.com/api/v4/projects'],
    "secrets.slack_token": ['client = WebClient(token="{x}")', "SLACK_BOT_TOKEN={x}"],
    "secrets.stripe_key": ['stripe.api_key = "{x}"', "STRIPE_SECRET_KEY={x}"],
    "secrets.openai_key": ['client = OpenAI(api_key="{x}")', "OPENAI_API_KEY={x}"],
    "secrets.anthropic_key": ['client = anthropic.Anthropic(api_key="{x}")', "ANTHROPIC_API_KEY={x}",
                              "  -H 'x-api-key: {x}' \\"],
    "secrets.google_api_key": ['url = f"https://maps.googleapis.com/maps/api/geocode/json?address={city}&key={x}"',
                               "GOOGLE_API_KEY={x}"],
    "secrets.jwt": ['headers = {"Authorization": "Bearer {x}"}',
                    'curl -H "Authorization: Bearer {x}" https://api.acme-corp.com/v2/me',
                    'document.cookie = "session={x}; path=/";'],
    "customer_id": ['customer = Customer.get("{x}")', "SELECT * FROM invoices WHERE customer_id = '{x}';"],
}
WEBHOOK_FRAMES = ['requests.post("{x}", json=payload)', "SLACK_WEBHOOK_URL={x}"]
CONTEXT_CODE_FRAMES = ["{x}", "    {x}", "export {x}", "{x}  # TODO move to the vault"]
URL_FRAMES = ["DATABASE_URL={x}", 'engine = create_engine("{x}")', "spring.datasource.url={x}", "  url: {x}"]
PEM_FRAMES = ['KEY = """{x}"""', "```\n{x}\n```", "{x}", "  tls.key: |\n    {x}"]

FILLER = [
    "We rolled the change out to the canary pool first.", "The retry budget is shared across all workers.",
    "Nothing in the runbook mentions this case.", "I'll keep the summary short and skip the raw data.",
    "The migration ran without errors on staging.", "Users in the EU region saw slightly higher latency.",
    "That explains the duplicate notifications.", "Naïve retries made the outage worse.",
    "Next step → confirm with the on-call engineer.", "Der Bericht ist fertig; Grüße aus München.",
    "日本のチームにも共有します。", "C'est déjà réglé, merci !", "✅ Tests pass locally.",
    "The quote said \"ship it\" but the checklist wasn't done.", "Logs are under C:\\Users\\build\\logs on Windows.",
    "Use a pattern like ^\\w+$ for the slug.", "The café's Wi-Fi isn't the problem — the VPN is.",
    "Señora Ibáñez confirmed the address change by phone.", "The dashboard shows a spike around lunch time.",
    "Ideally the batch job should be idempotent.", "We agreed to revisit this after the freeze.",
    "Zoë's team owns the billing service now.", "Keep an eye on the queue depth — it was climbing.",
    "Tab\tseparated values broke the importer again.", "The answer should be polite and brief 🙂.",
]
THOUGHTS = ["Let me think.", "Hmm.", "Wait, that's not quite right.", "Okay.", "So the plan is:", "Actually,",
            "I need to be careful here.", "Let me re-read the question.", "Right —"]
SERVICES = ["billing", "auth", "checkout", "gateway", "search", "notifier", "ledger"]
CITIES = ["Berlin", "São Paulo", "Zürich", "Kraków", "Montréal", "Osaka", "Reykjavík"]


def _timestamp(rng: random.Random) -> str:
    return (f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T{rng.randrange(24):02d}:"
            f"{rng.randrange(60):02d}:{rng.randrange(60):02d}.{rng.randrange(1000):03d}Z")


def _uuid(rng: random.Random) -> str:
    h = rand_str(rng, "0123456789abcdef", 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{pick(rng, '89ab')}{h[17:20]}-{h[20:]}"


def _value_for(detector: str, kind: str, rng: random.Random) -> Value:
    gen = V.GENERATORS[detector]
    if detector == "secrets.aws_secret_key":
        context = {"json": "json", "config": pick(rng, ["ini", "env", "yaml"]), "code": pick(rng, ["python", "env"])}
        return gen(rng, context.get(kind, pick(rng, ["prose", "ini", "env"])))
    if detector in ("pii.us_ssn", "secrets.assignment"):
        return gen(rng, json_field=kind == "json")
    if detector == "secrets.private_key" and kind in ("code", "config") and rng.random() < 0.4:
        return V.private_key(rng, indent="    ")
    return gen(rng)


def _plant_unit(b: _Builder, detector: str, kind: str, rng: random.Random) -> None:
    """One sentence/line/field of a ``kind`` document carrying one planted value."""
    v = _value_for(detector, kind, rng)
    x = lambda bb: bb.plant(detector, v)  # noqa: E731
    fill = {"x": x, "noun": NOUN[detector], "name": pick(rng, V.DISPLAY_NAMES), "city": pick(rng, CITIES)}
    carries_context = bool(v.before or v.after)
    if detector == "secrets.private_key":
        if v.variant.endswith("_indented"):
            b.segments("  tls.key: |\n    {x}", fill)
        elif kind in ("code", "config", "markdown"):
            b.segments(pick(rng, PEM_FRAMES[:3]), fill)
        else:
            b.segments(pick(rng, ["The key they pasted:\n{x}\nThat has to be revoked.",
                                  "Let me think... the file contains\n{x}\nso the deploy key is exposed."]), fill)
        return
    if kind in ("code", "config", "markdown") and not (kind == "markdown" and rng.random() < 0.5):
        fence = kind == "markdown"
        if fence:
            b.text("\n```\n")
        if detector == "secrets.url_password":
            frame = pick(rng, URL_FRAMES)
        elif carries_context:
            frame = pick(rng, CONTEXT_CODE_FRAMES)
        elif detector == "secrets.slack_token" and v.variant == "webhook":
            frame = pick(rng, WEBHOOK_FRAMES)
        else:
            frame = pick(rng, CODE_FRAMES[detector])
        b.segments(frame, fill)
        if fence:
            b.text("\n```\n")
        return
    if kind == "log":
        head = f"{_timestamp(rng)} {pick(rng, ['INFO', 'WARN', 'ERROR'])} [{pick(rng, SERVICES)}] "
        event = pick(rng, ["request rejected", "payment declined", "login ok", "retrying upstream call",
                           "cache miss"])
        if carries_context or detector not in LOGKEY:
            b.segments(head + event + " {x}", fill)
        else:
            b.segments(head + event + f" {LOGKEY[detector]}={{x}} trace={_uuid(rng)}", fill)
        return
    frames = CONTEXT_FRAMES if carries_context else (REASONING_FRAMES if kind == "reasoning" else PROSE_FRAMES)
    b.segments(pick(rng, frames), fill)


def _json_field(b: _Builder, detector: str, rng: random.Random, indent: str) -> None:
    v = _value_for(detector, "json", rng)
    if v.before.startswith('"'):  # the value carries its own `"key": "` context
        b.raw(indent)
        b.raw(v.before)
        b.json_mode = True
        b.plant(detector, Value(v.value, v.variant, edge=v.edge))
        b.json_mode = False
        b.raw(v.after)
        return
    b.raw(f'{indent}"{JSONKEY[detector]}": "')
    b.json_mode = True
    b.plant(detector, v)
    b.json_mode = False
    b.raw('"')


def _planted_doc(doc_id: str, kind: str, channel: str, detectors: list[str], rng: random.Random) -> Doc:
    if kind == "json":
        return _json_doc(doc_id, channel, detectors, rng)
    b = _Builder()
    if kind == "markdown":
        b.text(f"## Incident notes — {pick(rng, SERVICES)}\n\n")
    elif kind == "ticket":
        b.text(f"Hi team,\n\n{pick(rng, FILLER)} ")
    elif kind == "reasoning":
        b.text(f"{pick(rng, THOUGHTS)} {pick(rng, FILLER)} ")
    for i, detector in enumerate(detectors):
        if kind in ("code", "config"):
            if rng.random() < 0.4:
                b.text(f"# {pick(rng, FILLER)}\n")
            _plant_unit(b, detector, kind, rng)
            b.text("\n")
        elif kind == "log":
            _plant_unit(b, detector, kind, rng)
            b.text("\n")
            if rng.random() < 0.5:
                b.text(f"{_timestamp(rng)} DEBUG [{pick(rng, SERVICES)}] {pick(rng, FILLER)}\n")
        else:
            if kind == "markdown" and rng.random() < 0.4:
                b.text("- ")
            _plant_unit(b, detector, kind, rng)
            last = i == len(detectors) - 1
            if last and rng.random() < 0.3:
                break  # the document ends right after a value: the masker must flush at end of stream
            sep = "\n\n" if kind in ("ticket", "markdown") and rng.random() < 0.3 else " "
            b.text(sep + " ".join(pick(rng, FILLER + THOUGHTS) for _ in range(rng.randrange(1, 4))) + sep)
    return Doc(doc_id, kind, channel, b.build(), tuple(b.planted), tuple(b.negatives))


def _json_doc(doc_id: str, channel: str, detectors: list[str], rng: random.Random) -> Doc:
    """Tool-call arguments: a JSON object holding the values in fields and in a free-text note."""
    b = _Builder()
    pretty = rng.random() < 0.5
    nl, ind = ("\n", "  ") if pretty else ("", "")
    sep = "," + nl if pretty else ", "
    b.raw("{" + nl + f'{ind}"action": "{pick(rng, ["crm.update_contact", "vault.write", "deploy.configure"])}"')
    note_detector = detectors[-1] if len(detectors) > 2 and detectors[-1] != "secrets.private_key" else None
    for detector in detectors if note_detector is None else detectors[:-1]:
        b.raw(sep)
        _json_field(b, detector, rng, ind)
    if note_detector:
        b.raw(sep + f'{ind}"note": "')
        b.json_mode = True
        _plant_unit(b, note_detector, "ticket", rng)
        b.text(" " + pick(rng, FILLER))
        b.json_mode = False
        b.raw('"')
    b.raw(nl + "}")
    return Doc(doc_id, "json", channel, b.build(), tuple(b.planted), ())


# --- benign technical text (hard negatives) ------------------------------------------------------------------------

def _hex(rng: random.Random, n: int) -> str:
    return rand_str(rng, "0123456789abcdef", n)


def _b64(rng: random.Random, n_bytes: int) -> str:
    import base64

    return base64.b64encode(bytes(rng.randrange(256) for _ in range(n_bytes))).decode()


def _version(rng: random.Random) -> str:
    a, b, c = rng.randrange(0, 30), rng.randrange(0, 40), rng.randrange(0, 200)
    return pick(rng, [f"v{a}.{b}.{c}", f"{a}.{b}.{c}", f"{a}.{b}.{c}-rc.{rng.randrange(1, 6)}",
                      f"10.0.{rng.randrange(10000, 30000)}.{rng.randrange(1, 5000)}",
                      f"v{a}.{b}.{c}.{rng.randrange(9)}",
                      f"{a}.{b}.{c}.{rng.randrange(9)}.{rng.randrange(9)}", f"6.{b}.0-{c}-generic"])


def _date(rng: random.Random) -> str:
    y, m, d = rng.randrange(2015, 2031), rng.randrange(1, 13), rng.randrange(1, 29)
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    return pick(rng, [f"{y}-{m:02d}-{d:02d}", f"{d:02d}/{m:02d}/{y}", f"{months[m - 1]} {d}, {y}",
                      f"{y}{m:02d}{d:02d}", f"{d}. {months[m - 1]} {y}"])


def _time(rng: random.Random) -> str:
    return pick(rng, [_timestamp(rng), f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}",
                      f"Mon, 04 Mar 2024 {rng.randrange(24):02d}:{rng.randrange(60):02d}:00 GMT",
                      f"2024-03-04 {rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d},"
                      f"{rng.randrange(1000):03d}"])


def _epoch(rng: random.Random) -> str:
    s = 1_600_000_000 + rng.randrange(200_000_000)
    return pick(rng, [str(s), f"{s}{rng.randrange(1000):03d}"])


def _price(rng: random.Random) -> str:
    n = rng.randrange(1, 20000)
    cents = rng.randrange(100)
    return pick(rng, [f"${n:,}.{cents:02d}", f"€{n}.{cents:02d}", f"USD {n:,}.{cents:02d}",
                      f"{n:,}.{cents:02d} €".replace(",", "X").replace(".", ",").replace("X", "."), f"¥{n * 100:,}",
                      f"£{n}.{cents:02d}"])


def _order_number(rng: random.Random) -> str:
    d = lambda n: rand_str(rng, V.DIGITS, n)  # noqa: E731
    return pick(rng, [f"ORD-2024-{d(6)}", f"#{rng.randrange(200, 1000)}-{d(4)}-{d(3)}", f"SO {d(5)}-{d(4)}-{d(1)}",
                      f"RMA {rng.randrange(2015, 2031)}{d(4)}-{d(4)}", f"INV/{d(4)}/{d(5)}"])


def _mac(rng: random.Random) -> str:
    return ":".join(_hex(rng, 2) for _ in range(6))


AWS_EXAMPLE_IDS = ["AKIAIOSFODNN7EXAMPLE", "AKIAI44QH8DHBEXAMPLE"]
AWS_EXAMPLE_SECRETS = ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"]
PLACEHOLDER_ASSIGNMENTS = [
    "password=changeme", "api_key: <your-api-key>", "token = ${GITHUB_TOKEN}", 'password: "{{ vault_db_password }}"',
    "DB_PASSWORD=your_password_here", "secret: '********'", 'api_key = os.environ["API_KEY"]',
    "password=xxxxxxxxxx", "client_secret: $CLIENT_SECRET", "passwd = <redacted>",
]

NEGATIVE_UNITS = {  # category -> list of (frame, generator); the generated text is the recorded negative
    "git_sha": [("Merged {x} into main after review.", lambda r: _hex(r, 40)),
                ("Reverted {x} because it broke the build.", lambda r: _hex(r, 40)),
                ("fixed in {x}", lambda r: _hex(r, r.randrange(7, 13)))],
    "uuid": [("request_id={x} finished in 212 ms", _uuid), ("The trace {x} shows the retry.", _uuid),
             ("Object {x} was garbage-collected.", lambda r: _uuid(r).upper())],
    "non_luhn_card": [("order reference {x} (not a card number)", V.non_luhn_card_number),
                      ("Tracking: {x}", V.non_luhn_card_number)],
    "version": [("Bump requests from {x} to the latest patch.", _version),
                ("Running kernel {x} on the nodes.", _version),
                ("node {x} is the minimum supported runtime.", _version)],
    "timestamp": [("{x} worker started", _time), ("The job finished at {x}.", _time),
                  ("last_seen: {x}", _time), ("epoch {x} in the export", _epoch)],
    "date": [("Released on {x}.", _date), ("The freeze ends {x}.", _date)],
    "price": [("The plan costs {x} per month.", _price), ("Refunded {x} to the customer.", _price),
              ("total: {x}", _price)],
    "aws_example": [("The AWS docs use {x} as the sample key id.", lambda r: pick(r, AWS_EXAMPLE_IDS)),
                    ("aws_access_key_id = {x}", lambda r: pick(r, AWS_EXAMPLE_IDS)),
                    ("aws_secret_access_key = {x}", lambda r: pick(r, AWS_EXAMPLE_SECRETS))],
    "placeholder_assignment": [("{x}", lambda r: pick(r, PLACEHOLDER_ASSIGNMENTS))],
    "hex_hash": [("image digest sha256:{x}", lambda r: _hex(r, 64)),
                 ("md5 {x} matches the mirror.", lambda r: _hex(r, 32)),
                 ('ETag: "{x}"', lambda r: _hex(r, 32))],
    "base64_blob": [("The attachment starts with {x}", lambda r: _b64(r, r.randrange(24, 90))),
                    ("checksum {x}", lambda r: _b64(r, 30)),
                    ("data:image/png;base64,{x}", lambda r: _b64(r, r.randrange(30, 120)))],
    "order_number": [("Customer asked about {x}.", _order_number), ("Shipment {x} left the warehouse.", _order_number)],
    "customer_id_near_miss": [("legacy id CUST-{x} (pre-migration format)", lambda r: rand_str(r, V.DIGITS, 7)),
                              ("batch CUST-{x} is a job name, not a customer", lambda r: rand_str(r, V.DIGITS, 9))],
    "invalid_ssn": [("{x} is a test value the validator must reject", V.invalid_ssn)],
    "invalid_iban": [("The IBAN {x} failed the checksum, so the form rejected it.", V.bad_iban)],
    "github_bad_checksum": [("a fake token like {x} in the docs", V.github_bad_checksum)],
    "mac_address": [("NIC {x} came up on eth0.", _mac)],
    "oid": [("OID 1.3.6.1.4.1.{x} identifies the vendor MIB.", lambda r: rand_str(r, V.DIGITS, 5))],
}
NEGATIVE_CATEGORIES = tuple(NEGATIVE_UNITS)

BENIGN_FILLER = [
    "Refactored the retry helper and added jitter.", "The flaky test was waiting on a real clock.",
    "Moved the feature flag to the config service.", "Docs: clarify how the cache is warmed.",
    "Dropped support for the old CLI flags.", "CI now runs the linters before the unit tests.",
    "The p99 latency went down after the connection pool change.", "Renamed `userId` to `accountId` in the API.",
    "The Helm chart sets resource limits for every container.", "Cleaned up the Dockerfile layers.",
    "Ünïcode names in filenames are handled now — thanks, Zoë!", "日本語のログも正しく表示されます。",
    "The parser accepts \"quoted\" values and escaped \\n sequences.", "Use `--dry-run` to preview the plan.",
    "Memory usage is flat over a 24 h soak.", "The scheduler skips nodes that are cordoned.",
]


def _negative_unit(b: _Builder, category: str, rng: random.Random) -> None:
    frame, gen = pick(rng, NEGATIVE_UNITS[category])
    text = gen(rng)
    b.segments(frame, {"x": lambda bb: bb.negative(category, text)})


def _benign_doc(doc_id: str, kind: str, channel: str, categories: list[str], rng: random.Random) -> Doc:
    b = _Builder()
    if kind == "json":
        b.raw('{"tool": "changelog.write", "entries": [')
        b.json_mode = True
        for i, cat in enumerate(categories):
            b.raw(", " if i else "")
            b.raw('"')
            _negative_unit(b, cat, rng)
            b.text(" " + pick(rng, BENIGN_FILLER))
            b.raw('"')
        b.json_mode = False
        b.raw("]}")
        return Doc(doc_id, kind, channel, b.build(), (), tuple(b.negatives))
    head = {"changelog": "## Changelog\n\n", "ci_log": "", "review": "Review notes:\n",
            "config": "# generated config — do not edit\n", "invoice": "Invoice summary\n\n",
            "reasoning": f"{pick(rng, THOUGHTS)} "}[kind]
    b.text(head)
    for cat in categories:
        if kind == "changelog":
            b.text("- ")
        elif kind == "ci_log":
            b.text(f"[{pick(rng, ['INFO', 'WARN', 'DEBUG'])}] ")
        _negative_unit(b, cat, rng)
        if kind in ("changelog", "ci_log", "config", "invoice"):
            b.text(" " + " ".join(pick(rng, BENIGN_FILLER) for _ in range(rng.randrange(1, 3))) + "\n")
        else:
            b.text(" " + " ".join(pick(rng, BENIGN_FILLER + THOUGHTS) for _ in range(rng.randrange(1, 4))) + " ")
    return Doc(doc_id, kind, channel, b.build(), (), tuple(b.negatives))


# --- the corpus ----------------------------------------------------------------------------------------------------

def _channel_for(kind: str, rng: random.Random) -> str:
    if kind == "json":
        return "tool_args"
    if kind == "reasoning":
        return "reasoning"
    return "reasoning" if rng.random() < 0.55 else "content"


def generate(seed: int, planted_docs: int = 48, benign_docs: int = 16, values_per_doc: tuple[int, int] = (6, 13),
             negatives_per_doc: tuple[int, int] = (12, 22)) -> Corpus:
    """The corpus for ``seed``; the same arguments always give the same corpus."""
    rng = random.Random(f"masking-eval:{seed}")
    counts = [rng.randrange(*values_per_doc) for _ in range(planted_docs)]
    total = sum(counts)
    deck: list[str] = []
    while len(deck) < total:
        round_ = list(DETECTORS)
        rng.shuffle(round_)
        deck += round_
    kinds = [PLANTED_KINDS[i % len(PLANTED_KINDS)] for i in range(planted_docs)]
    rng.shuffle(kinds)
    docs: list[Doc] = []
    pos = 0
    for i, kind in enumerate(kinds):
        dets = deck[pos:pos + counts[i]]
        pos += counts[i]
        if kind == "json" and dets.count("secrets.private_key") > 1:
            dets = [d for d in dets if d != "secrets.private_key"] + ["secrets.private_key"]
        doc_rng = random.Random(f"masking-eval:{seed}:planted:{i}")
        docs.append(_unique(lambda r: _planted_doc(f"s{seed}-p{i:03d}", kind, _channel_for(kind, r), dets, r),
                            doc_rng))
    benign: list[Doc] = []
    for i in range(benign_docs):
        doc_rng = random.Random(f"masking-eval:{seed}:benign:{i}")
        kind = BENIGN_KINDS[i % len(BENIGN_KINDS)]
        n = doc_rng.randrange(*negatives_per_doc)
        cats = [NEGATIVE_CATEGORIES[(i * 7 + j) % len(NEGATIVE_CATEGORIES)] for j in range(n)]
        doc_rng.shuffle(cats)
        benign.append(_benign_doc(f"s{seed}-b{i:03d}", kind, _channel_for(kind, doc_rng), cats, doc_rng))
    return Corpus(seed, tuple(docs), tuple(benign))


def _unique(make, rng: random.Random) -> Doc:
    """Regenerate (deterministically) until no planted value occurs twice in the document."""
    for _ in range(20):
        doc = make(rng)
        vals = [p.value for p in doc.planted]
        if len(set(vals)) == len(vals) and all(doc.text.count(v) == 1 for v in vals if len(v) >= 8):
            return doc
    return doc


def summary(corpus: Corpus) -> dict:
    planted = [p for d in corpus.planted_docs for p in d.planted]
    return {
        "seed": corpus.seed,
        "planted_docs": len(corpus.planted_docs), "benign_docs": len(corpus.benign_docs),
        "planted_chars": sum(len(d.text) for d in corpus.planted_docs),
        "benign_bytes": sum(len(d.text.encode()) for d in corpus.benign_docs),
        "planted_values": len(planted), "edge_values": sum(p.edge for p in planted),
        "per_detector": dict(sorted(Counter(p.detector for p in planted).items())),
        "channels": dict(Counter(d.channel for d in corpus.docs())),
        "kinds": dict(Counter(d.kind for d in corpus.planted_docs)),
        "negatives": dict(sorted(Counter(n.category for d in corpus.benign_docs for n in d.negatives).items())),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.masking_eval.corpus", description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--show", type=int, default=0, help="print this many planted and benign documents")
    args = p.parse_args(argv)
    corpus = generate(args.seed)
    print(json.dumps(summary(corpus), indent=2, ensure_ascii=False))
    for doc in corpus.planted_docs[:args.show] + corpus.benign_docs[:args.show]:
        print(f"\n===== {doc.id} {doc.kind} -> {doc.channel} =====\n{doc.text}")
        for pl in doc.planted:
            print(f"  {pl.detector:24} {pl.variant:18} {pl.value[:60]!r}")


if __name__ == "__main__":
    main()
