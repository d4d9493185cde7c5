"""Where Presidio's English recognizers fall short: street addresses, postcodes and names
introduced by context."""

from __future__ import annotations

import regex
from presidio_analyzer import EntityRecognizer

from app.pii.recognizers.base import PatternUnit

# "St" before a capitalised word is Saint (St Louis, Paris St Germain), not Street.
SUFFIXES = (
    r"Street|St(?!\.?[ ]+\p{Lu}\p{Ll})|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Dr|Boulevard|Blvd|Court|"
    "Ct|Place|Pl|Way|Terrace|Circle|Cir|Highway|Hwy|Parkway|Pkwy|Square|Sq|Trail|Crescent|Close|Row|Walk|Loop|"
    "Alley|Plaza|Heights|Gardens|Greens?|Hill|View|Ridge|Mews|Grove|Rise|Wharf|Quay|Mall|"
    "Esplanade|Promenade|Causeway|Crossing|Pike|Point|Meadows?|Mills?|Park|Estate|Str"
)
# Without a house number only these make a street: Park, Hill or Point name clubs and estates.
STREET_SUFFIXES = (
    r"Street|St(?!\.?[ ]+\p{Lu}\p{Ll})|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Boulevard|Blvd|Terrace|"
    "Highway|Hwy|Parkway|Pkwy|Crescent|Close|Row|Mews|Str"
)
PREFIXES = (
    "Via|Viale|Piazza|Corso|Largo|Vicolo|Rue|Avenue|Boulevard|Chemin|Allée|Impasse|Calle|"
    "Avenida|Paseo|Camino|Carrer|Plaza|Rua|Travessa|Estrada|Alameda|Bairro|Strada|Ulica|Ul\\.|"
    "R\\.|Av\\.|Avda\\.?"
)
# Street words that end in a suffix glued to the name: Hadikgasse, Paul-Nevermann-Platz, ...
GLUED = "(?:strasse|straße|str\\.|gasse|platz|weg|allee|ring|damm|gade|vej|gatan|vägen|väg|" \
        "laan|straat|plein|utca|út|tér|ulica|vei|veien|katu|kuja|tie|braut|gata|stræde|vegur)"
CAP = r"\p{Lu}[\p{L}\p{M}'’.\-]*"
LINK = r"(?:de|da|do|das|dos|del|della|di|du|la|le|les|van|von|der|den|St\.?|Sainte?)"
NAME = rf"{CAP}(?:[ ]+(?:{CAP}|{LINK}))*"
NUM = r"\d{1,6}[A-Za-z]?"
UNIT = r"(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|Flat|Floor|Fl\.?|Room|Rm\.?|Box)[ ]*#?[ ]*\d{1,5}"

ADDRESS_PATTERNS = [
    rf"\b{NUM}[ ]+(?:{NAME}[ ]+)?(?:{SUFFIXES})\b\.?",                      # 22 Pollen Crescent
    rf"\b(?:{PREFIXES})[ ]+{NAME}(?:[ ]+{NUM})?\b",                          # Via Leopardi 83
    rf"\b(?:{CAP})?{GLUED}[ ]+{NUM}\b",                                      # Hadikgasse 49
    rf"\b{UNIT}\b",                                                          # Apt. 559
    rf"\b{CAP}(?:[ ]+{CAP}){{0,2}}[ ]+(?:{STREET_SUFFIXES})\b\.?",            # Pisano Row
    r"\bP\.?[ ]?O\.?[ ]+Box[ ]+\d{1,6}\b",
    r"\bPSC[ ]+\d{3,5}(?:,[ ]*Box[ ]+\d{1,5})?\b",
    r"\b(?:APO|FPO|DPO)[ ]+(?:AA|AE|AP)[ ]+\d{5}\b",
]
PLACE_AFTER = (
    r"(?:moved here from|moved to|moving to|move to|live in|lives in|living in|I'm in|I am in|"
    r"located in|based in|born in|city of|town of|village of|trip to|travel(?:l?ing|l?ed)? to|"
    r"visit(?:ing|ed)?|from the)"
)
PLACE_PATTERNS = [
    rf"(?i:\b{PLACE_AFTER})[ ]+\K(?:{CAP}|\p{{Lu}}{{2,}})(?:[ ]+(?:{CAP}|{LINK})){{0,3}}",
]
ADDRESS_CONTEXT = ("address", "lives", "live", "located", "street", "avenue", "road", "mail",
                   "ship", "deliver", "post", "apartment")
POSTCODE_CONTEXT = ("zip", "zipcode", "postal", "postcode", "post code", "zip code")


WORD = r"\p{L}[\p{L}\p{M}'’\-]+"
CAPWORD = r"\p{Lu}[\p{L}\p{M}'’\-]+"
INITIAL = r"\p{Lu}\.?"
CAPNAME = rf"{CAPWORD}(?:[ ]+(?:{INITIAL}[ ]+)?{CAPWORD}){{0,2}}"
NOT_NAMES = frozenset(
    "there all everyone team sir madam customer friend friends guys folks again so very much "
    "and or but the a an to for of in on at is am are was were be been i you he she we they it "
    "my your his her our their this that name address phone email fax mobile desk office zip "
    "tel date note subject re from sent please thanks thank hello hi hey dear".split()
)
# A name follows an introduction or greeting, or precedes a verb of speech; case-insensitive
# after "my name is" and "call me", where people type their names in lower case.
PERSON_PATTERNS = [
    rf"(?i:\bmy name is|\bmy name's|\bname:|\bcall me|\bcalls me)[ \t]+\K{WORD}(?:[ ]+{WORD})?",
    rf"\b(?:Hi|Hello|Hey|Dear|Thanks|Mr\.?|Mrs\.?|Ms\.?|Miss|Dr\.?|Prof\.?)[ ]+\K{CAPNAME}",
    rf"(?m)^[ \t]*\K{CAPWORD}(?=:[ ]+\S)",
]
# Before a verb of speech: countries and companies say things too, so this only adds names the
# model missed and loses to any entity the model found there (its score is lower).
SPEAKER_PATTERNS = [
    rf"\b{CAPNAME}(?=[ ]+(?:said|says|shouted|asked|told|lives|had given|was born|is from|has been|"
    r"wrote|replied|called)\b)",
]


def _person_score(value: str) -> float | None:
    words = value.split()
    if not words or words[0].lower() in NOT_NAMES or words[-1].lower() in NOT_NAMES:
        return None
    return 0.9


def _speaker_score(value: str) -> float | None:
    return None if _person_score(value) is None else 0.5


def _place_score(value: str) -> float | None:
    return None if value.split()[0].lower() in NOT_NAMES else 0.9


def _address_score(value: str) -> float | None:
    return 0.6 if any(c.isalpha() for c in value) else None


def recognizers() -> list[EntityRecognizer]:
    return [
        PatternUnit(name="StreetAddressRecognizer", entity="LOCATION", language="en",
                    patterns=ADDRESS_PATTERNS, score=_address_score, context=ADDRESS_CONTEXT),
        PatternUnit(name="PlaceContextRecognizer", entity="LOCATION", language="en",
                    patterns=PLACE_PATTERNS, score=_place_score),
        PatternUnit(name="UkPostcodeRecognizer", entity="LOCATION", language="en",
                    patterns=[r"\b[A-Z]{1,2}\d[A-Z\d]?[ ]\d[A-Z]{2}\b"],
                    score=lambda value: 0.5, context=POSTCODE_CONTEXT),
        PatternUnit(name="PersonContextRecognizer", entity="PERSON", language="en",
                    patterns=PERSON_PATTERNS, score=_person_score),
        PatternUnit(name="SpeakerRecognizer", entity="PERSON", language="en",
                    patterns=SPEAKER_PATTERNS, score=_speaker_score),
        PatternUnit(name="PostcodeRecognizer", entity="LOCATION", language="en",
                    patterns=[r"\b\d{4,5}(?:-\d{4})?\b"],
                    score=lambda value: 0.1, context=POSTCODE_CONTEXT, flags=regex.IGNORECASE),
    ]
