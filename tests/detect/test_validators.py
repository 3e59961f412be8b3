"""Validator edge cases: checksums, ranges and decodings the regexes can't express."""
from __future__ import annotations

import binascii

import pytest

from gateway.detect import validators as v
from tests.detect.samples import aws_secret, card, github_classic, jwt


@pytest.mark.parametrize("number,ok", [
    ("4111111111111111", True), ("4111111111111112", False), ("79927398713", True), ("79927398710", False),
    ("0", True),
])
def test_luhn(number, ok):
    assert v.luhn_ok(number) is ok


@pytest.mark.parametrize("number,brand", [
    ("4111111111111111", "visa"), ("4222222222222", "visa"), ("5555555555554444", "mastercard"),
    ("2221000000000009", "mastercard"), ("2720999999999996", "mastercard"), ("378282246310005", "amex"),
    ("6011111111111117", "discover"), ("6500000000000002", "discover"), ("6440000000000000", "discover"),
    ("3528000000000007", "jcb"), ("5018000000000009", "maestro"),
    ("2220990000000000", None), ("2721000000000000", None), ("341111111111111111", None), ("9111111111111111", None),
    ("411111111111111", None),  # Visa with 15 digits
])
def test_card_brand(number, brand):
    assert v.card_brand(number) == brand


def test_credit_card_needs_brand_and_luhn():
    good = card("4", 16)
    assert v.credit_card_ok(good) and v.credit_card_ok(" ".join(good[i:i + 4] for i in range(0, 16, 4)))
    assert not v.credit_card_ok(good[:-1] + str((int(good[-1]) + 1) % 10))
    assert not v.credit_card_ok(card("9", 16))


@pytest.mark.parametrize("iban,ok", [
    ("GB82 WEST 1234 5698 7654 32", True), ("GB82WEST12345698765432", True), ("DE89370400440532013000", True),
    ("NO9386011117947", True), ("GB82 WEST 1234 5698 7654 33", False),  # checksum
    ("GB82WEST1234569876543", False),  # length for GB is 22
    ("XX82WEST12345698765432", False),  # unknown country
    ("DE8937040044053201300", False), ("GB82-WEST-1234", False),
])
def test_iban(iban, ok):
    assert v.iban_ok(iban) is ok


@pytest.mark.parametrize("ssn,ok", [
    ("123-45-6789", True), ("078-05-1120", True), ("899-99-9999", True),
    ("000-12-3456", False), ("666-12-3456", False), ("900-12-3456", False), ("999-99-9999", False),
    ("123-00-4567", False), ("123-45-0000", False), ("12-345-6789", True), ("1234567890", False),
])
def test_us_ssn(ssn, ok):
    assert v.us_ssn_ok(ssn) is ok


@pytest.mark.parametrize("ip,ok", [
    ("192.168.1.1", True), ("0.0.0.0", True), ("255.255.255.255", True), ("999.1.1.1", False),
    ("256.1.1.1", False), ("1.2.3", False), ("01.2.3.4", False),
])
def test_ipv4(ip, ok):
    assert v.ipv4_ok(ip) is ok


@pytest.mark.parametrize("ip,ok", [
    ("2001:db8::8a2e:370:7334", True), ("::ffff:192.0.2.128", True), ("::1", False), ("fe80::1", False),
    ("12:30:45", False), ("2001:db8::g", False), ("1:2:3:4:5:6:7:8:9", False),
])
def test_ipv6(ip, ok):
    assert v.ipv6_ok(ip) is ok


def test_github_checksum_matches_crc32_base62():
    body = "a" * 30
    crc = binascii.crc32(body.encode())
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    enc = ""
    while crc:
        crc, r = divmod(crc, 62)
        enc = digits[r] + enc
    assert v.github_checksum(body) == enc.rjust(6, "0")
    tok = github_classic()
    assert v.github_classic_ok(tok)
    assert not v.github_classic_ok(tok[:-1] + ("x" if tok[-1] != "x" else "y"))
    changed = tok[:4] + ("B" if tok[4] == "A" else "A") + tok[5:]  # one random character changed
    assert not v.github_classic_ok(changed)


def test_aws_keys():
    assert not v.aws_access_key_ok("AKIAIOSFODNN7EXAMPLE")
    assert v.aws_access_key_ok("AKIAZ3MQXK7PLW2NRT5B")
    assert not v.aws_secret_key_ok("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    assert v.aws_secret_key_ok(aws_secret())
    assert not v.aws_secret_key_ok("a" * 40)


def test_jwt_header_must_be_json_with_alg():
    assert v.jwt_ok(jwt())
    assert not v.jwt_ok(jwt({"typ": "JWT"}))
    assert not v.jwt_ok("eyJub3QganNvbg.eyJ9.x")
    assert not v.jwt_ok("eyJ%%%.a.b")
    assert not v.jwt_ok(jwt(["alg"]))  # JSON, but not an object


def test_entropy_and_placeholders():
    assert v.shannon_entropy("") == 0
    assert v.shannon_entropy("aaaa") == 0
    assert abs(v.shannon_entropy("abcd") - 2.0) < 1e-9
    for p in ("changeme", "<your-key>", "${VAR}", "$VAR", "xxxx", "****", "your_api_key_here", "{{ secret }}",
              "%(pw)s", "os.environ['X']", "settings.SECRET_KEY", "get_password()", "...", "aaaaaaaa"):
        assert v.is_placeholder(p), p
    for s in ("Xk9#mQ2$vLp8", "6fd8c1b0e7a94f2c", "hunter2-Correct"):
        assert not v.is_placeholder(s), s
    assert v.assignment_value_ok("Xk9#mQ2$vLp8")
    assert not v.assignment_value_ok("hunter2")  # too short
    assert not v.assignment_value_ok("aaaaaaaaab")  # low entropy
