"""Phone numbers: E.164 normalisation, masking in logs, keyed pseudonyms."""

from __future__ import annotations

import logging

import pytest

from callcenter.phones import (
    InvalidPhone,
    MaskPhonesFilter,
    mask_phone,
    normalize_phone,
    pseudonym,
    pseudonymous_phone,
)


@pytest.mark.parametrize(
    "raw",
    [
        "0912345678",
        "+218912345678",
        "00218912345678",
        "218912345678",
        "٠٩١٢٣٤٥٦٧٨",
        "۰۹۱۲۳۴۵۶۷۸",
        " 091-234 5678 ",
        "\u200e+218 91 234 5678",
    ],
)
def test_libyan_numbers_in_every_shape_normalise_to_e164(raw: str) -> None:
    assert normalize_phone(raw) == "+218912345678"


@pytest.mark.parametrize("raw", ["", "123", "abc", "091234567", "+21891234567890123", "٠٩"])
def test_numbers_that_are_not_numbers_are_refused_without_echoing_them(raw: str) -> None:
    with pytest.raises(InvalidPhone) as caught:
        normalize_phone(raw)
    assert (raw not in str(caught.value)) or len(raw) < 4


def test_masks_keep_only_the_country_code_and_the_last_two_digits() -> None:
    assert mask_phone("+218912345678") == "+218*******78"
    assert mask_phone("0912345678") == "09******78"
    assert mask_phone("12") == "**"


def test_every_log_line_has_its_phone_numbers_masked(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.masking")
    logger.addFilter(MaskPhonesFilter())
    with caplog.at_level(logging.INFO, logger="test.masking"):
        logger.info("reply from %s and %s", "+218912345678", "0923456789")
        logger.info("params (%r,)", "+218 91 234 5678")
    text = caplog.text
    assert "912345678" not in text and "923456789" not in text and "234 5678" not in text
    assert "+218*******78" in text


def test_pseudonyms_are_stable_per_key_and_do_not_reveal_the_number() -> None:
    a = pseudonym("+218912345678", "k1")
    assert a == pseudonym("+218912345678", "k1") != pseudonym("+218912345678", "k2")
    assert a != pseudonym("+218912345679", "k1") and "912345678" not in a and len(a) == 16


@pytest.mark.parametrize("scope", [0, 1, 35, 36, 2**31 - 1])
def test_a_pseudonymous_stand_in_gives_back_the_pseudonym_and_fits_a_phone_column(scope: int) -> None:
    stand_in = pseudonymous_phone("+218912345678", "k1", scope)
    assert stand_in.startswith("p:") and len(stand_in) <= 20 and "912345678" not in stand_in
    assert pseudonym(stand_in, "any key") == pseudonym("+218912345678", "k1")
    assert stand_in != pseudonymous_phone("+218912345678", "k1", scope + 1)
