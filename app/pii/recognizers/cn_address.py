"""Chinese addresses, found by their administrative suffixes (省 市 区 县 镇 街道 路 号 ...)."""

from __future__ import annotations

import regex

from app.pii.recognizers.base import PatternUnit

PROVINCES = (
    "北京 天津 上海 重庆 河北 山西 辽宁 吉林 黑龙江 江苏 浙江 安徽 福建 江西 山东 河南 湖北 湖南 "
    "广东 海南 四川 贵州 云南 陕西 甘肃 青海 台湾 内蒙古 广西 西藏 宁夏 新疆 香港 澳门"
).split()
HAN = r"\p{Han}"
NUM = r"[0-9一二三四五六七八九十百千零]+"
PARTS = [
    rf"(?:{'|'.join(PROVINCES)})(?:省|市|自治区|特别行政区|壮族自治区|回族自治区|维吾尔自治区)?",
    rf"{HAN}{{2,6}}?(?:市|自治州|地区|盟)",
    rf"{HAN}{{1,6}}?(?:区|县|旗)",
    rf"{HAN}{{1,8}}?(?:街道|镇|乡)",
    rf"(?:{HAN}|[0-9]){{1,10}}?(?:路|街|大道|巷|胡同|里|道)",
    rf"{NUM}(?:号|弄)",
    rf"{HAN}{{2,8}}?(?:小区|花园|大厦|广场|公寓|新村|苑|园|中心)",
    rf"{NUM}(?:栋|幢|号楼|座)",
    rf"{NUM}单元",
    rf"{NUM}(?:楼|层)",
    rf"{NUM}(?:室|号房)",
]
LEADING = ("我住在", "家住在", "住在", "家住", "位于", "地址是", "地址为", "地址", "寄到", "送到",
           "搬到", "来自", "在", "于", "到", "是", "为")
ADDRESS = regex.compile("(?:" + "|".join(f"(?:{p})" for p in PARTS) + "){2,}")


def _score(value: str) -> float | None:
    parts = sum(1 for p in PARTS if regex.search(p, value))
    if parts >= 3:
        return 0.85
    return 0.6 if parts == 2 else None


class ChineseAddressRecognizer(PatternUnit):
    def __init__(self) -> None:
        super().__init__(name="ChineseAddressRecognizer", entity="LOCATION", language="zh",
                         patterns=[ADDRESS.pattern], score=_score,
                         context=("地址", "住址", "收货", "寄往", "户籍", "住所", "位于"))

    def analyze(self, text, entities, nlp_artifacts=None):  # type: ignore[no-untyped-def]
        results = super().analyze(text, entities, nlp_artifacts)
        for result in results:  # drop a verb or preposition the pattern swallowed at the start
            value = text[result.start:result.end]
            for lead in LEADING:
                if value.startswith(lead) and len(value) - len(lead) >= 4:
                    result.start += len(lead)
                    break
        return results
