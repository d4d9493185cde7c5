"""Chinese identifiers from independent validator libraries (tests/pii/data), each in a sentence.

A valid value must be found as its type with its exact span; an invalid one must not be found
as that type. The sentence carries the type's context word in both cases, so an invalid value
is not excused by a missing context word.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from app.pii.engine import PiiEngine

VECTORS = Path(__file__).parent / "data" / "cn_identifier_vectors.json"
SENTENCES = {
    "CN_RESIDENT_ID": "请核实客户的身份证号码{}，谢谢。",
    "CN_USCC": "该公司的统一社会信用代码为{}。",
    "PHONE_NUMBER": "有问题请拨打手机{}联系我。",
    "CN_LICENSE_PLATE": "停车场登记的车牌号{}已放行。",
    "CN_BANK_CARD": "退款将打到您尾号所在的银行卡号{}上。",
    "CN_PASSPORT": "请在表格中填写护照号码{}并签名。",
    "CN_HK_MACAU_PERMIT": "他的港澳居民来往内地通行证号码是{}。",
    "IP_ADDRESS": "服务器地址{}无法访问。",
}
# Targets for every type together, and for the checksummed types each on its own.
CHECKSUMMED = ("CN_RESIDENT_ID", "CN_USCC", "CN_BANK_CARD")
MIN_PRECISION = 0.98
MIN_RECALL = 0.97


def load_vectors() -> list[tuple[str, str, bool]]:
    sources = json.loads(VECTORS.read_text(encoding="utf-8"))["sources"]
    return [(v["value"], v["type"], v["valid"]) for s in sources for v in s["vectors"]]


def tally(engine: PiiEngine) -> tuple[dict[str, Counter[str]], list[str]]:
    counts: dict[str, Counter[str]] = {kind: Counter() for kind in SENTENCES}
    misses = []
    for value, kind, valid in load_vectors():
        text = SENTENCES[kind].format(value)
        start = text.index(value)
        _, findings = engine.analyze(text)
        exact = any(f.type == kind and (f.start, f.end) == (start, start + len(value))
                    for f in findings)
        flagged = any(f.type == kind and f.start < start + len(value) and start < f.end
                      for f in findings)
        if valid:
            counts[kind]["tp" if exact else "fn"] += 1
            counts[kind]["fp"] += flagged and not exact
        else:
            counts[kind]["fp"] += flagged
            counts[kind]["tn"] += not flagged
        if (valid and not exact) or (not valid and flagged):
            misses.append(f"{kind} {value} valid={valid}: "
                          f"{[(f.type, text[f.start:f.end]) for f in findings]}")
    return counts, misses


def precision_recall(counts: Counter[str]) -> tuple[float, float]:
    tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
    return (tp / (tp + fp) if tp + fp else 1.0), (tp / (tp + fn) if tp + fn else 1.0)


def test_vectors_name_their_licence() -> None:
    sources = json.loads(VECTORS.read_text(encoding="utf-8"))["sources"]
    assert all(s["licence"] and s["commit"] and s["files"] for s in sources)


def test_chinese_identifier_precision_and_recall(engine: PiiEngine) -> None:
    counts, misses = tally(engine)
    total: Counter[str] = sum(counts.values(), Counter())
    precision, recall = precision_recall(total)
    by_type = {kind: precision_recall(c) for kind, c in counts.items()}
    report = f"by type (P, R): {by_type}\n" + "\n".join(misses)
    assert precision >= MIN_PRECISION, report
    assert recall >= MIN_RECALL, report
    for kind in CHECKSUMMED:
        assert by_type[kind][0] >= MIN_PRECISION, report
        assert by_type[kind][1] >= MIN_RECALL, report
