"""Places a small English model misses: countries and continents by name, and the place of a
news dateline (`BONN 1996-08-22`, `PARIS (Reuters) -`), written in capitals.

Country names: the ISO 3166-1 short and common names of pycountry 26.2.16 (its data comes from
Debian's iso-codes, LGPL-2.1), minus those that are also common names or words (Chad, Georgia,
Jordan, Jersey, Dominica) and a few uninhabited territories, plus the English forms news uses
(Russia, Britain, Ivory Coast) and the continents, which we added. They count only as whole,
capitalised or all-capitals words; the engine lets them relabel a model finding of exactly the
same span (`Sri Lanka` taken for a person), never split a longer one (`Bank of Japan`).
"""

from __future__ import annotations

import regex
from presidio_analyzer import EntityRecognizer

from app.pii.recognizers.base import PatternUnit

ISO_NAMES = (
    'Afghanistan', 'Albania', 'Algeria', 'American Samoa', 'Andorra', 'Angola', 'Anguilla',
    'Antigua and Barbuda', 'Argentina', 'Armenia', 'Aruba', 'Australia', 'Austria', 'Azerbaijan',
    'Bahamas', 'Bahrain', 'Bangladesh', 'Barbados', 'Belarus', 'Belgium', 'Belize', 'Benin',
    'Bermuda', 'Bhutan', 'Bolivia', 'Bosnia and Herzegovina', 'Botswana', 'Bouvet Island',
    'Brazil', 'Brunei Darussalam', 'Bulgaria', 'Burkina Faso', 'Burundi', 'Cabo Verde', 'Cambodia',
    'Cameroon', 'Canada', 'Cayman Islands', 'Central African Republic', 'Chile', 'China',
    'Christmas Island', 'Colombia', 'Comoros', 'Congo', 'Cook Islands', 'Costa Rica', 'Croatia',
    'Cuba', 'Curaçao', 'Cyprus', 'Czechia', "Côte d'Ivoire", 'Denmark', 'Djibouti',
    'Dominican Republic', 'Ecuador', 'Egypt', 'El Salvador', 'Equatorial Guinea', 'Eritrea',
    'Estonia', 'Eswatini', 'Ethiopia', 'Faroe Islands', 'Fiji', 'Finland', 'France',
    'French Guiana', 'French Polynesia', 'French Southern Territories', 'Gabon', 'Gambia',
    'Germany', 'Ghana', 'Gibraltar', 'Greece', 'Greenland', 'Grenada', 'Guadeloupe', 'Guam',
    'Guatemala', 'Guinea', 'Guinea-Bissau', 'Guyana', 'Haiti', 'Honduras', 'Hong Kong', 'Hungary',
    'Iceland', 'India', 'Indonesia', 'Iran', 'Iraq', 'Ireland', 'Isle of Man', 'Israel', 'Italy',
    'Jamaica', 'Japan', 'Kazakhstan', 'Kenya', 'Kiribati', 'Kuwait', 'Kyrgyzstan', 'Laos',
    'Latvia', 'Lebanon', 'Lesotho', 'Liberia', 'Libya', 'Liechtenstein', 'Lithuania', 'Luxembourg',
    'Macao', 'Madagascar', 'Malawi', 'Malaysia', 'Maldives', 'Mali', 'Malta', 'Marshall Islands',
    'Martinique', 'Mauritania', 'Mauritius', 'Mexico', 'Moldova', 'Monaco', 'Mongolia',
    'Montenegro', 'Montserrat', 'Morocco', 'Mozambique', 'Myanmar', 'Namibia', 'Nauru', 'Nepal',
    'Netherlands', 'New Caledonia', 'New Zealand', 'Nicaragua', 'Niger', 'Nigeria',
    'Norfolk Island', 'North Korea', 'North Macedonia', 'Northern Mariana Islands', 'Norway',
    'Oman', 'Pakistan', 'Palau', 'Panama', 'Papua New Guinea', 'Paraguay', 'Peru', 'Philippines',
    'Poland', 'Portugal', 'Puerto Rico', 'Qatar', 'Romania', 'Russian Federation', 'Rwanda',
    'Réunion', 'Saint Barthélemy', 'Saint Lucia', 'Samoa', 'San Marino', 'Saudi Arabia', 'Senegal',
    'Serbia', 'Seychelles', 'Sierra Leone', 'Singapore', 'Slovakia', 'Slovenia', 'Solomon Islands',
    'Somalia', 'South Africa', 'South Korea', 'South Sudan', 'Spain', 'Sri Lanka', 'Sudan',
    'Suriname', 'Sweden', 'Switzerland', 'Syria', 'Syrian Arab Republic', 'Taiwan', 'Tajikistan',
    'Tanzania', 'Thailand', 'Timor-Leste', 'Togo', 'Tonga', 'Trinidad and Tobago', 'Tunisia',
    'Turkmenistan', 'Tuvalu', 'Türkiye', 'Uganda', 'Ukraine', 'United Arab Emirates',
    'United Kingdom', 'United States', 'Uruguay', 'Uzbekistan', 'Vanuatu', 'Venezuela', 'Viet Nam',
    'Vietnam', 'Wallis and Futuna', 'Western Sahara', 'Yemen', 'Zambia', 'Zimbabwe',
    'Åland Islands',
)
NEWS_NAMES = (
    "Russia", "Britain", "Great Britain", "England", "Scotland", "Wales", "Northern Ireland",
    "Czech Republic", "Ivory Coast", "Burma", "Holland", "Bosnia", "Herzegovina", "Macedonia",
    "Yugoslavia", "Zaire", "Kosovo", "Palestine", "Turkey", "Vatican", "U.S.", "U.K.", "U.S.A.",
    "Africa", "Asia", "Europe", "North America", "South America", "Latin America", "Oceania",
    "Middle East", "Mideast",
)
COUNTRIES = frozenset(ISO_NAMES + NEWS_NAMES)
# Nationalities the model takes for places (`Iraqi officials`): NRP, not a location.
DEMONYMS = frozenset(
    "American British English Irish Scottish Welsh French Dutch Danish Swedish Finnish Polish "
    "Spanish Turkish Swiss Greek Thai Chinese Japanese Portuguese Vietnamese Lebanese Sudanese "
    "Congolese Senegalese Maltese Nepalese Taiwanese Burmese Filipino Kurdish Palestinian "
    "Chechen Tibetan Arab Basque Serb Croat Bosnian Kosovar Israeli Iraqi Saudi Yemeni Pakistani "
    "Bangladeshi Afghan Uzbek Kazakh Tajik Kuwaiti Qatari Omani Emirati Somali Azeri German "
    "Russian Australian Canadian Iranian Indian Italian Belgian Austrian Norwegian Brazilian "
    "Mexican African Asian European Cuban Kenyan Korean Egyptian Syrian Libyan Nigerian "
    "Ethiopian Ugandan Rwandan Hutu Tutsi Zairean Algerian Moroccan Tunisian Jordanian "
    "Argentine Argentinian Chilean Peruvian Colombian Venezuelan Bolivian Ukrainian Romanian "
    "Hungarian Bulgarian Albanian Slovak Slovenian Czech Croatian Serbian Lithuanian Latvian "
    "Estonian Georgian Armenian Cambodian Indonesian Malaysian Singaporean Zimbabwean Angolan "
    .split())
_CAPS_WORD = r"\p{Lu}[\p{Lu}'.\-]*\p{Lu}\.?"
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
_AGENCY = r"\((?:Reuters|AP|AFP|UPI|dpa|DPA|Xinhua|Bloomberg|CNN|BBC|PA|ANSA|EFE|Kyodo|IANS)\)"
# At the start of a line: the place in capitals, perhaps a region after a comma, then a date or
# the agency. The place is what is reported; the region is joined to it as one address.
DATELINE_PATTERNS = [
    rf"(?m)^[ \t]*\K{_CAPS_WORD}(?:[ ]+{_CAPS_WORD}){{0,2}}"
    rf"(?:[ ]*,[ ]*\p{{Lu}}[\p{{L}}.]+(?:[ ]+\p{{Lu}}[\p{{L}}.]+)?)?"
    rf"(?=[ ]*,?[ ]*(?:\d{{4}}-\d{{2}}-\d{{2}}|{_MONTH}[ ]+\d{{1,2}}\b|{_AGENCY}))",
]


def _names(names: frozenset[str]) -> str:
    forms = {form for name in names for form in (name, name.upper())}
    return "|".join(regex.escape(f) for f in sorted(forms, key=len, reverse=True))


COUNTRY_PATTERNS = [rf"(?<![\p{{L}}\p{{N}}\-.])(?:{_names(COUNTRIES)})(?![\p{{L}}\p{{N}}\-])"]
COUNTRY_RECOGNIZER = "CountryRecognizer"
COMPETITOR_RECOGNIZER = "CompetitorRecognizer"
_NAME_WORD = r"\p{Lu}[\p{Ll}'’\-]+(?:-\p{Lu}[\p{Ll}'’\-]+)?"
# A competitor in a results list or draw: a name and the country in brackets after it
# (`Elijah Maru ( Kenya ) 3:33.64`, `Meluawati (Indonesia) beat ...`).
COMPETITOR_PATTERNS = [
    rf"(?:(?<=^[ \t]*(?:\d{{1,3}}\.?[ ]+)?)|(?<=\b(?:beat|bt|v|vs\.?|and)[ ]+)|(?<=[,\-–][ ]+))"
    rf"(?:\p{{Lu}}\.[ ]?)?{_NAME_WORD}(?:[ ]+{_NAME_WORD}){{0,2}}"
    rf"(?=[ ]?\([ ]?(?:{_names(COUNTRIES)})[ ]?\))",
]


def recognizers() -> list[EntityRecognizer]:
    return [
        PatternUnit(name="DatelineRecognizer", entity="LOCATION", language="en",
                    patterns=DATELINE_PATTERNS, score=lambda value: 0.9),
        PatternUnit(name=COUNTRY_RECOGNIZER, entity="LOCATION", language="en",
                    patterns=COUNTRY_PATTERNS, score=lambda value: 0.6),
        PatternUnit(name=COMPETITOR_RECOGNIZER, entity="PERSON", language="en",
                    patterns=COMPETITOR_PATTERNS, score=lambda value: 0.5),
    ]
