"""Regenerate the conformance data from a checkout of microsoft/presidio.

Usage: python tests/pii/conformance/port_presidio.py GIT_DIR

Reads the parametrised cases of presidio-analyzer's recognizer unit tests with `git show` (no
code from the peer is run: its test modules are parsed, and only literal values are taken) and
writes one JSON file per entity type next to this script.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS = "presidio-analyzer/tests"
# app.pii.engine.DEFAULT_THRESHOLD: a row where the peer accepts a score below it is checked
# with threshold 0, as the peer's test (which calls the recognizer directly) does.
DEFAULT_THRESHOLD = 0.4

# entity type -> (peer test module, how its rows map to a case)
PORTED = {
    "CREDIT_CARD": "test_credit_card_recognizer.py",
    "DATE_TIME": "test_date_recognizer.py",
    "EMAIL_ADDRESS": "test_email_recognizer.py",
    "IBAN_CODE": "test_iban_recognizer.py",
    "IP_ADDRESS": "test_ip_recognizer.py",
    "PHONE_NUMBER": "test_phone_recognizer.py",
    "URL": "test_url_recognizer.py",
    "US_BANK_NUMBER": "test_us_bank_recognizer.py",
    "US_DRIVER_LICENSE": "test_us_driver_license_recognizer.py",
    "US_ITIN": "test_us_itin_recognizer.py",
    "US_PASSPORT": "test_us_passport_recognizer.py",
    "US_SSN": "test_us_ssn_recognizer.py",
}
INTERPRETATION = (
    "Each peer test calls one recognizer directly and asserts len(results) == expected_len, "
    "then compares the results with the expected spans pairwise (zip), so a row with fewer "
    "spans than results checks the count and the first spans only ('check' says which). "
    "Here a case passes when our engine's findings of the entity type (engine.analyze with "
    "entities=[type], language 'en') have that count and, sorted by start, those spans. "
    "Scores are not compared; where the peer accepts a score below our default threshold "
    "(0.4) the case records threshold 0, otherwise the default threshold applies."
)
NOTES = {
    "PHONE_NUMBER": "Rows of test_when_phone_with_leniency_then_succeed are ported only for "
                    "leniency 1, the PhoneRecognizer default; other leniencies are a "
                    "configuration we do not offer. test_when_all_phones_then_succeed runs the "
                    "peer's recognizer with regions JP and CN added.",
    "URL": "test_long_valid_hostname_still_detected is ported as one case; "
           "test_repeated_dot_input_does_not_backtrack is covered by the timing tests.",
    "IBAN_CODE": "The three mock-based tests (regex timeouts) are not data and are not ported.",
}


class _Literal(ast.NodeTransformer):
    """f-strings without placeholders are plain strings."""

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        if all(isinstance(v, ast.Constant) for v in node.values):
            return ast.Constant("".join(str(v.value) for v in node.values))  # type: ignore[attr-defined]
        return node


def _rows(source: str) -> list[tuple[str, int, dict[str, Any]]]:
    tree = _Literal().visit(ast.parse(source))
    rows = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if not (isinstance(decorator, ast.Call) and
                    getattr(decorator.func, "attr", "") == "parametrize"):
                continue
            names = [n.strip() for n in ast.literal_eval(decorator.args[0]).split(",")]
            for element in decorator.args[1].elts:  # type: ignore[attr-defined]
                values = ast.literal_eval(element)
                rows.append((node.name, element.lineno, dict(zip(names, values, strict=True))))
    return rows


def _case(entity: str, path: str, test: str, line: int, row: dict[str, Any]) -> dict[str, Any]:
    text = row.get("text", row.get("iban"))
    count = row["expected_len"]
    spans = row.get("expected_positions", row.get("expected_res", ()))
    scores: list[Any] = []
    if "expected_score_ranges" in row:
        scores = [list(r) for r in row["expected_score_ranges"]]
    elif "expected_score" in row and count:
        scores = [row["expected_score"]] * count
    elif "score" in row and count:
        scores = [row["score"]] * count
    lowest = [s[0] if isinstance(s, list) else s for s in scores]
    weak = any(s < DEFAULT_THRESHOLD for s in lowest)
    if not count:
        check = "no finding of the type"
    elif len(spans) >= count:
        check = "count and every span"
    elif spans:
        check = f"count and the first {len(spans)} span(s)"
    else:
        check = "count only (the peer gives no spans)"
    return {
        "text": text, "entity": entity, "count": count,
        "spans": [list(s) for s in spans] or None,
        "check": check,
        "threshold": 0.0 if weak else DEFAULT_THRESHOLD,
        "peer_scores": scores or None,
        "source": f"{path}#L{line}", "test": test,
    }


def _dump(document: dict[str, Any]) -> str:
    """Indented JSON with one case per line, so a diff shows which cases changed."""
    head = json.dumps({k: v for k, v in document.items() if k != "cases"}, ensure_ascii=False,
                      indent=1)
    cases = ",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in document["cases"])
    return head[:-2] + ',\n "cases": [\n' + cases + "\n ]\n}\n"


def port(git_dir: str) -> None:
    commit = subprocess.run(["git", "--git-dir", git_dir, "rev-parse", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    for entity, module in PORTED.items():
        path = f"{TESTS}/{module}"
        source = subprocess.run(["git", "--git-dir", git_dir, "show", f"{commit}:{path}"],
                                check=True, capture_output=True, text=True).stdout
        cases = []
        for test, line, row in _rows(source):
            if row.get("leniency", 1) != 1:
                continue
            cases.append(_case(entity, path, test, line, row))
        if entity == "URL":
            host = "a." * 60 + "example"
            text = f"http://{host}.com/path"
            cases.append({"text": text, "entity": entity, "count": 1,
                          "spans": [[0, len(text)]], "check": "count and every span",
                          "threshold": DEFAULT_THRESHOLD, "peer_scores": [0.6],
                          "source": f"{path}", "test": "test_long_valid_hostname_still_detected"})
        document = {
            "peer": "microsoft/presidio", "licence": "MIT", "commit": commit, "source": path,
            "entity": entity, "interpretation": INTERPRETATION, "note": NOTES.get(entity, ""),
            "cases": cases,
        }
        out = HERE / f"{entity.lower()}.json"
        out.write_text(_dump(document), encoding="utf-8")
        print(f"{out.name}: {len(cases)} cases")  # noqa: T201


if __name__ == "__main__":
    port(sys.argv[1])
