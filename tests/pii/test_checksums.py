import pytest

from app.pii.checksums import (
    luhn_valid,
    resident_id_birth_date,
    valid_old_resident_id,
    valid_resident_id,
    valid_uscc,
)


@pytest.mark.parametrize("value", ["11010519491231002X", "440524188001010014",
                                   "11010519491231002x"])
def test_valid_resident_ids(value: str) -> None:
    assert valid_resident_id(value)


@pytest.mark.parametrize("value", [
    "110105194912310021",  # wrong check character
    "110105194902301234",  # 30 February
    "99010519491231002X",  # no such region
    "1101051949123100",  # too short
])
def test_invalid_resident_ids(value: str) -> None:
    assert not valid_resident_id(value)


def test_old_fifteen_digit_id() -> None:
    assert valid_old_resident_id("110105491231002")
    assert not valid_old_resident_id("11010549123100")
    assert not valid_old_resident_id("110105491331002")  # month 13
    assert str(resident_id_birth_date("110105491231002")) == "1949-12-31"


def test_luhn() -> None:
    assert luhn_valid("6222026006705354216")
    assert not luhn_valid("6222026006705354217")


def test_uscc() -> None:
    assert valid_uscc("913502000728319549")
    assert not valid_uscc("913502000728319548")
    assert not valid_uscc("91350200072831954I")  # I is not in the alphabet


@pytest.mark.parametrize("value", ["91310115MA1K3BTP2B", "91340600MA2PBM9HXD",
                                   "92340621MA2UK3CE6L"])
def test_uscc_organisation_code_values_letters_as_gb_11714(value: str) -> None:
    assert valid_uscc(value)  # letters A=10 ... Z=35 in chars 9-17, not their USCC places


def test_foreigners_permanent_residence_id() -> None:
    assert valid_resident_id("932682198501010017")
    assert not valid_resident_id("992682198501010017")  # 99 is no province
