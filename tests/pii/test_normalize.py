"""Offsets after normalisation point into the text exactly as sent."""

from app.pii.normalize import normalize


def span_of(original: str, normalized_part: str) -> str:
    norm = normalize(original)
    start = norm.text.index(normalized_part)
    a, b = norm.original_span(start, start + len(normalized_part))
    return original[a:b]


def test_full_width_digits_fold_to_ascii() -> None:
    assert normalize("手机１３８１２３４５６７８").text == "手机13812345678"
    assert span_of("手机１３８１２３４５６７８。", "13812345678") == "１３８１２３４５６７８"


def test_zero_width_characters_are_removed_and_spans_cover_them() -> None:
    original = "id 1101\u200b0519491231002X end"
    assert normalize(original).text == "id 11010519491231002X end"
    assert span_of(original, "11010519491231002X") == "1101\u200b0519491231002X"


def test_cyrillic_look_alikes_become_latin() -> None:
    original = "mail јаnе@ехаmple.com now"
    assert "jane@example.com" in normalize(original).text
    assert span_of(original, "jane@example.com") == "јаnе@ехаmple.com"


def test_spelled_out_email_is_rewritten() -> None:
    original = "write to jane.doe at example dot co dot uk please"
    norm = normalize(original)
    assert "jane.doe@example.co.uk" in norm.text
    assert span_of(original, "jane.doe@example.co.uk") == "jane.doe at example dot co dot uk"


def test_escaped_line_breaks_become_line_breaks() -> None:
    original = "Jane Roe\\n12 High Street"
    assert normalize(original).text == "Jane Roe\n12 High Street"
    assert span_of(original, "12 High Street") == "12 High Street"


def test_plain_ascii_is_untouched() -> None:
    norm = normalize("nothing to see")
    assert not norm.changed
    assert norm.original_span(0, 7) == (0, 7)
