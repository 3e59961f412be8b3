"""StreamMasker: holdback, flush, caps (size and time, fail closed), errors."""
from __future__ import annotations

import pytest

from gateway.detect import BUILTIN, Detector, keyword_detector
from gateway.masking import REDACTED, Masker, MaskingError, Scanner, StreamMasker, make_style
from tests.detect.samples import pem

KEY = "AKIAZ3MQXK7PLW2NRT5B"


@pytest.fixture
def masker(engine) -> Masker:
    return Masker(Scanner(list(BUILTIN) + [keyword_detector("design_docs", ["Project Falcon"], "INTERNAL_DOC")],
                          engine=engine), make_style("label"))


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def stream(sm: StreamMasker, chunks) -> str:
    return "".join(sm.feed(c) for c in chunks) + sm.flush()


def test_secret_split_one_char_at_a_time(masker):
    text = f"The key is {KEY}, the mail john.doe@example.com and the card 4111 1111 1111 1111."
    expected, counts = masker.mask_text(text)
    assert expected == ("The key is [AWS_ACCESS_KEY], the mail [EMAIL] and the card [CREDIT_CARD].")
    assert counts == {"secrets.aws_access_key": 1, "pii.email": 1, "pii.credit_card": 1}
    sm = masker.stream()
    outs = [sm.feed(c) for c in text]
    assert "".join(outs) + sm.flush() == expected
    assert sm.counts == counts
    released = "".join(outs)
    for secret in (KEY, "john.doe", "4111"):
        assert secret[:max(2, len(secret) // 2)] not in released


def test_holds_only_what_could_still_match(masker):
    sm = masker.stream()
    assert sm.feed("Let me think about the") == "Let me think about "
    assert sm.held == 3  # "the" could still be an email's local part
    assert sm.feed(" answer, ") == "the answer, "
    assert sm.held == 0
    assert sm.feed("the key AKIA12") == "the key "
    assert sm.held == 6
    assert sm.feed("34567890ABCDEF and more") == "[AWS_ACCESS_KEY] and "
    assert sm.feed(" Project ") == "more "  # the keyword's first word is held with its space
    # "Falcon." could still grow into an email local part that would overlap the keyword: held.
    assert sm.feed("Falcon.") == ""
    assert sm.feed(" Next") == "[INTERNAL_DOC]. "
    assert sm.flush() == "Next"


def test_open_pem_block_is_held_until_its_end(masker):
    key = pem(lines=4)
    sm = masker.stream()
    out = sm.feed("Here:\n" + key[:-40])
    assert out == "Here:\n" and sm.held == len(key) - 40
    assert sm.feed(key[-40:] + "\nDone.") == "[PRIVATE_KEY]\n"
    assert sm.flush() == "Done."


def test_flush_masks_what_is_left(masker):
    sm = masker.stream()
    assert sm.feed("write to john@example.com") == "write to "
    assert sm.flush() == "[EMAIL]"
    sm = masker.stream()
    assert sm.feed("plain words") == "plain "
    assert sm.flush() == "words"


def test_empty_feed_and_held_property(masker):
    sm = masker.stream()
    assert sm.feed("") == ""
    assert sm.held == 0


def test_size_cap_masks_held_text_and_keeps_masking_its_continuation(masker):
    key = pem(lines=8)
    text = "pre " + key + " after the key."
    sm = masker.stream(max_hold_chars=64)
    out = "".join(sm.feed(text[i:i + 10]) for i in range(0, len(text), 10)) + sm.flush()
    assert out.startswith("pre " + REDACTED)
    assert out.endswith("[PRIVATE_KEY] after the key.")
    assert sm.cap_redactions >= 1
    body = key.split("\n")[1:-1]
    for line in body:
        for i in range(len(line) - 8):
            assert line[i:i + 8] not in out
    assert "BEGIN" not in out and "END" not in out


def test_size_cap_never_releases_held_text(engine):
    d = Detector(name="open", label="OPEN", pattern=r"<<[^>]{0,10000}>>", trigger="<<", max_len=10004)
    sm = Masker(Scanner([d], engine=engine), make_style("label")).stream(max_hold_chars=20)
    out = sm.feed("a <<" + "s" * 30)
    assert out == "a " + REDACTED and sm.held == 0
    assert sm.feed("s" * 5) == ""  # still inside the open value: held again, never released
    assert sm.feed(">> b") + sm.flush() == "[OPEN] b"


def test_time_cap_with_fake_clock(masker):
    clock = FakeClock()
    sm = masker.stream(max_hold_s=5.0, clock=clock)
    assert sm.feed("key AKIA") == "key "
    clock.now += 4.9
    assert sm.poll() == ""
    clock.now += 0.2
    assert sm.poll() == REDACTED
    assert sm.held == 0
    # The rest of the key arrives: it continues a match that began in redacted text, so it is masked too.
    assert sm.feed("Z3MQXK7PLW2NRT5B rest") == "[AWS_ACCESS_KEY] "
    assert sm.flush() == "rest"


def test_time_cap_checked_on_feed(masker):
    clock = FakeClock()
    sm = masker.stream(max_hold_s=1.0, clock=clock)
    assert sm.feed("x +1 (415) ") == "x "
    clock.now += 2
    assert sm.feed("555") == REDACTED
    clock.now += 0.1
    assert sm.feed("-0134 ok") == "[PHONE] "


def test_time_cap_measures_the_oldest_held_character(masker):
    clock = FakeClock()
    sm = masker.stream(max_hold_s=1.0, clock=clock)
    assert sm.feed("a b") == "a "
    clock.now += 0.8
    assert sm.feed("c d") == "bc "  # "b" (0.8 s old) was released; "d" is new
    clock.now += 0.8
    assert sm.poll() == ""  # "d" is 0.8 s old
    clock.now += 0.3
    assert sm.poll() == REDACTED


def test_retained_redacted_text_is_bounded(engine):
    d = Detector(name="open", label="OPEN", pattern=r"<<[^>]{0,100000}>>", trigger="<<", max_len=100004)
    sm = StreamMasker(Scanner([d], engine=engine), make_style("label"), max_hold_chars=16, retain_chars=64)
    sm.feed("<<")
    for _ in range(200):
        sm.feed("x" * 7)
        assert len(sm._buf) <= 64 + 7 + 16
    assert sm.cap_redactions > 1


def test_errors(masker):
    sm = masker.stream()
    sm.feed("abc")
    sm.flush()
    with pytest.raises(MaskingError):
        sm.feed("more")
    with pytest.raises(MaskingError):
        sm.flush()
    sm = masker.stream()
    with pytest.raises(MaskingError):
        sm.feed(b"bytes")  # type: ignore[arg-type]
    assert sm.closed
    with pytest.raises(ValueError):
        masker.stream(max_hold_chars=0)


def test_validator_error_terminates_the_stream(engine):
    def boom(_value):
        raise RuntimeError
    d = Detector(name="x", label="X", pattern="abc", validator=boom, trigger="abc", max_len=3)
    sm = Masker(Scanner([d], engine=engine), make_style("label")).stream()
    with pytest.raises(MaskingError):
        sm.feed("xx abc yy")
    assert sm.closed
    with pytest.raises(MaskingError):
        sm.feed("more")


def test_long_token_runs_are_not_held(masker):
    """A long run of token characters can't all be a match prefix: only a bounded tail is held."""
    import random
    import string
    rng = random.Random(5)
    blob = "".join(rng.choice(string.ascii_letters + string.digits + "+/") for _ in range(20000))
    sm = masker.stream(max_hold_chars=256)
    out = []
    for i in range(0, len(blob), 20):
        out.append(sm.feed(blob[i:i + 20]))
        assert sm.held <= 200
    out.append(sm.flush())
    assert sm.cap_redactions == 0
    assert "".join(out) == masker.mask_text(blob)[0]


def test_non_ascii_keyword_split_anywhere(engine):
    d = keyword_detector("codename", ["Café Olé", "Zürich"], "CODENAME")
    m = Masker(Scanner([d], engine=engine), make_style("label"))
    text = "meet at Café Olé in Zürich, not café olé or Zurich."
    expected = m.mask_text(text)[0]
    assert expected == "meet at [CODENAME] in [CODENAME], not [CODENAME] or Zurich."
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            sm = m.stream()
            assert sm.feed(text[:i]) + sm.feed(text[i:j]) + sm.feed(text[j:]) + sm.flush() == expected
