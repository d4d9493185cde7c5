"""Chinese personal names: a surname, a context word or a title, and word segmentation.

jieba tags person names (`nr`) from a dictionary and tags ordinary words (耿直, 安静) too, so the
tag alone never makes a finding: a name needs a known surname and a context word before it
(姓名, 客户, 联系人, ...) or a title after it (先生, 女士, ...).
"""

from __future__ import annotations

import jieba
import jieba.posseg
from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from app.pii.recognizers.base import make_result

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
BEFORE = tuple(
    "姓名 名字 客户 联系人 收件人 收货人 寄件人 持卡人 用户 患者 病人 员工 申请人 投保人 "
    "被保险人 法人 户主 乘客 学生 家长 监护人 本人 我叫 我是 名叫 叫做 姓 经办人 负责人 签收人 "
    "开户人 借款人 会员 顾客 买家 卖家 租客 房东 业主 署名 致 尊敬的".split()
)
AFTER = ("先生", "女士", "小姐", "同学", "老师", "经理", "医生", "师傅", "阿姨", "叔叔", "律师",
         "教授", "主任", "总监", "同志", "大夫", "护士", "校长", "女士您好", "先生您好")
STOP_CHARS = frozenset("的了在是和与说为把被给向从到对等及或也都就还又很")
CONTEXT_WINDOW = 8


def _is_han(char: str) -> bool:
    return "\u4e00" <= char <= "\u9fff"


def _surname_length(word: str) -> int:
    if word[:2] in COMPOUND_SURNAMES:
        return 2
    return 1 if word[:1] in SURNAMES else 0


class ChineseNameRecognizer(EntityRecognizer):
    def __init__(self) -> None:
        super().__init__(supported_entities=["PERSON"], name="ChineseNameRecognizer",
                         supported_language="zh")

    def load(self) -> None:
        jieba.setLogLevel(60)
        jieba.initialize()

    def analyze(self, text: str, entities: list[str],
                nlp_artifacts: NlpArtifacts | None = None) -> list[RecognizerResult]:
        if not any(_is_han(c) for c in text):
            return []
        results = []
        position = 0
        for pair in jieba.posseg.lcut(text, HMM=True):
            word, tag = pair.word, pair.flag
            start, position = position, position + len(word)
            span = self._name_span(text, word, start)
            if span is None:
                continue
            name_start, name_end = span
            score = self._score(text, name_start, name_end, tag)
            if score is not None:
                results.append(self._result(name_start, name_end, score))
        return results

    @staticmethod
    def _name_span(text: str, word: str, start: int) -> tuple[int, int] | None:
        surname = _surname_length(word)
        if not surname or not all(_is_han(c) for c in word):
            return None
        if surname < len(word) <= surname + 2:
            return start, start + len(word)
        if len(word) == surname:  # jieba split the given name off: take up to two Han chars
            end = start + surname
            while end < len(text) and end - start < surname + 2 and _is_han(text[end]) and \
                    text[end] not in STOP_CHARS and not text.startswith(AFTER, end):
                end += 1
            return (start, end) if end > start + surname else None
        return None

    @staticmethod
    def _score(text: str, start: int, end: int, tag: str) -> float | None:
        before = text[max(0, start - CONTEXT_WINDOW):start].rstrip(" ：:，,是为")
        if any(before.endswith(word) for word in BEFORE):
            return 0.85
        if text.startswith(AFTER, end):
            return 0.85
        if tag == "nr" and (start == 0 or text[start - 1] in "、，,；;：: \n"):
            return 0.35  # supporting evidence only: below the default threshold
        return None

    def _result(self, start: int, end: int, score: float) -> RecognizerResult:
        return make_result(self, entity="PERSON", start=start, end=end, score=score)
