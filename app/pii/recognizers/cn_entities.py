"""Chinese names, places and addresses: LAC's entities, joined and bounded by exact rules.

The model (app.pii.zh_model) finds names however they are introduced: with a job title
(记者陈思武), an honorific or a familiar form (王女士, 张总, 老周), a relative (妻子李娜) or nothing
at all. The rules do what a sequence tagger does not:
- the pieces of one address become one LOCATION, from the first place name to the room number
  (浙江省杭州市西湖区文三路90号东部软件园3号楼502室), and the address starts where a place word
  starts, never inside the word before it;
- a name ends at its honorific where the model ran on (张总明天上午 is 张总).
Identifiers, order numbers and amounts are numbers to the model and never names.
"""

from __future__ import annotations

import bisect

import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from app.pii.recognizers.base import make_result
from app.pii.zh_model import Word, tagger

COMPOUND_SURNAMES = (
    "欧阳 司马 上官 诸葛 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 令狐 端木 独孤 南宫 西门 "
    "轩辕 呼延 澹台 公冶 太史 申屠 闻人 钟离 濮阳 赫连 拓跋"
).split()
SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
    "龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞"
    "左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕"
    "屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧"
    "闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
)
HONORIFICS = ("先生", "女士", "小姐", "太太", "同学", "老师", "经理", "医生", "师傅", "阿姨",
              "叔叔", "律师", "教授", "主任", "总监", "大夫", "护士", "校长", "工", "总", "董")
_HONORIFIC_NAME = regex.compile(
    rf"(?:{'|'.join(COMPOUND_SURNAMES)}|[{''.join(sorted(SURNAMES))}])"
    rf"\p{{Han}}{{0,2}}?(?:{'|'.join(sorted(HONORIFICS, key=len, reverse=True))})")
# 李某, 王某某: the form news uses to withhold a name. It is not a name (masking it would hide
# nothing: a mask keeps the surname).
_WITHHELD_NAME = regex.compile(
    rf"(?:{'|'.join(COMPOUND_SURNAMES)}|[{''.join(sorted(SURNAMES))}])某+")
# Chinese sports text names teams by their city or a transliteration (罗马vs佛罗伦萨,
# 桑德兰vs博尔顿), which the model takes for places and people.
_FIXTURE_AFTER = regex.compile(r"\s*(?:vs|VS|Vs)(?![A-Za-z])")
_FIXTURE_BEFORE = regex.compile(r"(?<![A-Za-z])(?:vs|VS|Vs)\.?\s*$")
# What may follow a place name inside one address: a road and number, a building, a unit, a room.
ADDRESS_TAIL = regex.compile(
    r"(?:[\p{Han}A-Za-z0-9\---[的了在是和与说为把被给向从到对等及或也都就还又很我你他她它们]]{0,12}?"
    r"(?:路|街|大道|巷|胡同|弄|里|号院|号楼|号|栋|幢|座|单元|楼|层|室|小区|花园|大厦|广场|公寓|"
    r"新村|苑|园区|园|中心|村|组|期|区)){1,8}", regex.VERSION1)
# A flat or room number straight after a building or a unit (5号楼2单元301, 阳光小区3-2-501,
# 富力中心2305房): part of the address, where nothing but punctuation or a space follows it.
_ROOM_AFTER = regex.compile(r"\d{1,5}(?:-\d{1,5}){0,3}(?:[室房户号]|(?=[^\p{L}\d]|$))")
_BUILDING_END = frozenset("元楼栋幢座层号区园苑院村厦心城")
MODEL_SCORE = 0.85
ORG_SCORE = 0.6


class TaggedArtifacts(NlpArtifacts):
    """What the engine hands the recognizer for one window of a text it tagged whole: the
    window's words, with offsets into the window. Tagging the whole text once, in batches of
    sentences of about one length, costs less than tagging each window (windows overlap), and
    every sentence is read with all of its context, not cut at a window's start."""

    def __init__(self, base: NlpArtifacts, words: list[Word]):
        super().__init__(entities=base.entities, tokens=base.tokens,
                         tokens_indices=base.tokens_indices, lemmas=base.lemmas,
                         nlp_engine=base.nlp_engine, language="zh", scores=base.scores)
        self.words = words


def window_words(words: list[Word], starts: list[int], start: int, end: int) -> list[Word]:
    """The words of a text (`starts`: their start offsets) lying wholly in [start, end), with
    offsets into that window."""
    first = bisect.bisect_left(starts, start)
    last = bisect.bisect_left(starts, end)
    return [Word(w.text, w.tag, w.start - start, w.end - start)
            for w in words[first:last] if w.end <= end]


class ChineseEntityRecognizer(EntityRecognizer):
    """PERSON, LOCATION and ORGANIZATION in any text with Chinese characters in it."""

    def __init__(self, language: str):
        super().__init__(supported_entities=["PERSON", "LOCATION", "ORGANIZATION"],
                         name="ChineseEntityRecognizer", supported_language=language)

    def load(self) -> None:
        tagger()

    def analyze(self, text: str, entities: list[str],
                nlp_artifacts: NlpArtifacts | None = None) -> list[RecognizerResult]:
        words = (nlp_artifacts.words if isinstance(nlp_artifacts, TaggedArtifacts)
                 else tagger().tag(text))
        if not words:
            return []
        results = [*self._names(words), *self._places(text, words)]
        for result in results:  # 罗马vs佛罗伦萨: competitors in a fixture are teams
            if _FIXTURE_AFTER.match(text, result.end) or \
                    _FIXTURE_BEFORE.search(text, max(0, result.start - 4), result.start):
                result.entity_type, result.score = "ORGANIZATION", ORG_SCORE
        results += [self._result("ORGANIZATION", w.start, w.end, ORG_SCORE)
                    for w in words if w.tag == "ORG"]
        return [r for r in results if r.entity_type in entities]

    def _names(self, words: list[Word]) -> list[RecognizerResult]:
        return [self._result("PERSON", w.start, w.start + _name_length(w.text), MODEL_SCORE)
                for w in words if w.tag == "PER" and len(w.text) >= 2
                and not _WITHHELD_NAME.fullmatch(w.text)]

    def _places(self, text: str, words: list[Word]) -> list[RecognizerResult]:
        found: list[RecognizerResult] = []
        ends = {w.end for w in words}
        index = 0
        while index < len(words):
            word = words[index]
            if word.tag != "LOC":
                index += 1
                continue
            end = word.end
            index += 1
            while index < len(words) and (words[index].tag == "LOC" or
                                          _is_house_number(words[index])):
                end = words[index].end
                index += 1
            tail = ADDRESS_TAIL.match(text, end, min(len(text), end + 60))
            if tail and tail.end() > end and tail.end() in ends:
                end = tail.end()
            room = _ROOM_AFTER.match(text, end) if text[end - 1] in _BUILDING_END else None
            if room and end > word.end:  # a place word and more: an address, not a bare city
                end = room.end()
            while index < len(words) and words[index].start < end:
                index += 1
            found.append(self._result("LOCATION", word.start, end, MODEL_SCORE))
        return found

    def _result(self, entity: str, start: int, end: int, score: float) -> RecognizerResult:
        return make_result(self, entity=entity, start=start, end=end, score=score)


def _name_length(word: str) -> int:
    """A name ends at its honorific: the model sometimes runs on (张总明天上午 is 张总)."""
    honorific = _HONORIFIC_NAME.match(word)
    return honorific.end() if honorific and len(word) > 4 else len(word)


def _is_house_number(word: Word) -> bool:
    """A number word straight after a place, as in 文三路 90号: part of the address."""
    return word.tag == "m" and word.text[-1:] in "号弄栋幢" and word.text[:-1].isdigit()
