"""News text: datelines in capitals, country names, nationalities, results lists and tables."""

from __future__ import annotations

import pytest

from app.pii.engine import PiiEngine
from tests.pii.conftest import found


@pytest.mark.parametrize(("text", "expected"), [
    ("BONN 1996-08-22\nThe German government said on Thursday it would act.",
     ("LOCATION", "BONN")),
    ("TIRANA (Reuters) - Albania's parliament met on Monday.", ("LOCATION", "TIRANA")),
    ("JYVASKYLA, Finland, Aug 23 - The rally starts today.", ("LOCATION", "JYVASKYLA, Finland")),
    ("Sri Lanka won the toss and chose to bat.", ("LOCATION", "Sri Lanka")),
    ("Malawi's finance minister resigned.", ("LOCATION", "Malawi")),
    ("SOCCER - JAPAN GET LUCKY WIN, CHINA IN SURPRISE DEFEAT.", ("LOCATION", "CHINA")),
    ("4. Elijah Maru (Kenya) 3:33.64", ("PERSON", "Elijah Maru")),
    ("Meluawati (Indonesia) beat Chan Chia Fong (Malaysia) 11-6", ("PERSON", "Meluawati")),
])
def test_news_places_and_competitors(engine: PiiEngine, text: str,
                                     expected: tuple[str, str]) -> None:
    assert expected in found(engine, text, "en")


@pytest.mark.parametrize(("text", "value"), [
    ("Chad Smith called the office on Friday.", "Chad"),  # an ambiguous country name is left out
    ("Jordan said the talks would resume.", "Jordan"),
    ("Iraqi officials said the talks would resume.", "Iraqi"),  # a nationality, not a place
])
def test_ambiguous_names_are_not_countries(engine: PiiEngine, text: str, value: str) -> None:
    assert ("LOCATION", value) not in found(engine, text, "en")


def test_nationality_is_reported_as_nrp(engine: PiiEngine) -> None:
    assert ("NRP", "Iraqi") in found(engine, "Iraqi officials said the talks would resume.", "en")


def test_a_country_does_not_split_a_longer_name(engine: PiiEngine) -> None:
    findings = found(engine, "The Bank of Japan raised rates.", "en")
    assert ("LOCATION", "Japan") not in findings


@pytest.mark.parametrize("text", [
    "HOUSTON 68 61 .527 1/2",
    "Halifax 64 Leeds 24",
    "Bradford 22 17 0 5 767 409 34",
])
def test_places_in_results_tables_are_teams(engine: PiiEngine, text: str) -> None:
    assert not [value for kind, value in found(engine, text, "en") if kind == "LOCATION"]


def test_a_place_with_its_postcode_stays_a_place(engine: PiiEngine) -> None:
    assert ("LOCATION", "Paris 75008") in found(engine, "Send it to Paris 75008.", "en")


def test_the_venue_of_a_fixture_stays_a_place(engine: PiiEngine) -> None:
    findings = found(engine, "TORONTO AT CHICAGO", "en")
    assert ("LOCATION", "CHICAGO") in findings
    assert ("LOCATION", "TORONTO") not in findings
