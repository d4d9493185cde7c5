"""Where a page sends the browser back to: a page of the same site, never another host or a
path that climbs out of the site."""

from __future__ import annotations

import pytest

from app.web.pages import local_target


@pytest.mark.parametrize("target", [
    "/privacy", "/privacy/home", "/privacy/requests/dsr_1?format=json"])
def test_pages_of_the_site_are_kept(target: str) -> None:
    assert local_target(target, "/privacy") == target


@pytest.mark.parametrize("target", [
    None, "", "https://evil.example/privacy", "//evil.example/privacy", "/privacy/../console",
    "/privacy/%2e%2e/console", "/privacy/..%2fconsole", "/privacy\\..\\console",
    "/privacy-other", "/console", "/privacy//evil.example"])
def test_anything_else_goes_to_the_start_page(target: str | None) -> None:
    assert local_target(target, "/privacy") == "/privacy"
