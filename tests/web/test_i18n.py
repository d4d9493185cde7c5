"""The Chinese and English catalogues hold the same keys, every key a template uses is in them,
and the language follows the switch's cookie, then Accept-Language."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.requests import Request

from app.web import i18n

TEMPLATES = Path(i18n.__file__).parent.parent / "console" / "templates"
# keys built from a value at render time: t("status_" + r.status) and the like
_BUILT = re.compile(r'\bt\(\s*"([a-z_]+_)"\s*\+')


def test_catalogues_hold_the_same_keys() -> None:
    assert set(i18n.catalogue("en")) == set(i18n.catalogue("zh"))


def test_every_key_a_template_uses_is_translated() -> None:
    used: set[str] = set()
    prefixes: set[str] = set()
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text("utf-8")
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_]+)["']\s*[,)]""", text))
        prefixes |= set(_BUILT.findall(text))
    assert used, "no translated text found in the templates"
    assert sorted(used - set(i18n.catalogue("en"))) == []
    for prefix in prefixes:
        assert any(key.startswith(prefix) for key in i18n.catalogue("en")), prefix


def _request(headers: dict[str, str]) -> Request:
    return Request({"type": "http", "headers": [(k.lower().encode(), v.encode())
                                                for k, v in headers.items()]})


@pytest.mark.parametrize(("headers", "language"), [
    ({}, "en"),
    ({"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}, "zh"),
    ({"Accept-Language": "fr-FR,en;q=0.5,zh;q=0.9"}, "zh"),
    ({"Accept-Language": "fr-FR"}, "en"),
    ({"Accept-Language": "zh-CN", "Cookie": "pgw_lang=en"}, "en"),
    ({"Cookie": "pgw_lang=zh"}, "zh"),
    ({"Cookie": "pgw_lang=xx", "Accept-Language": "zh"}, "zh"),
])
def test_language_is_negotiated(headers: dict[str, str], language: str) -> None:
    assert i18n.language(_request(headers)) == language
