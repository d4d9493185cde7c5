"""The committed client is what clients/python/generate.py makes from the current gateway's
OpenAPI document, so the client cannot drift from the API; every problem type the gateway can
answer with is declared in the document and has its exception class."""

from __future__ import annotations

import importlib
import importlib.util
import json
import pkgutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import httpx

import app
from app.config import Settings
from app.errors import GatewayError, problem_types
from app.main import create_app
from pgw_client.errors import PROBLEM_CLASSES, ConflictError, LegalHoldError
from pgw_client.problems import ProblemError, UnknownProblemError, problem_from

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pgw_generate", CLIENT / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_client_is_generated_from_the_current_openapi_document(
        settings: Settings) -> None:
    generator = _generator()
    rendered: dict[str, str] = generator.render(create_app(settings).openapi())
    assert {"models.py", "errors.py", "api/__init__.py", "api/records.py",
            "api/dsr.py"} <= set(rendered)
    stale = generator.stale_files(rendered)
    assert stale == [], f"run python clients/python/generate.py; stale: {stale}"
    assert generator.stale_files({**rendered, "api/records.py": ""}) == ["api/records.py"]
    assert generator.stale_files({k: v for k, v in rendered.items() if k != "api/ops.py"}) \
        == ["api/ops.py"]  # a file the document no longer gives is stale too


def test_a_changed_document_changes_the_generated_client(settings: Settings) -> None:
    document = create_app(settings).openapi()
    before = _generator().render(document)
    document["components"]["schemas"]["RecordIn"]["properties"]["channel"] = {"type": "string"}
    after = _generator().render(document)
    assert "    channel: str | None = Field(default=None)" in after["models.py"]
    assert after["models.py"] != before["models.py"]


def _all_loaded_types() -> set[str]:
    for module in pkgutil.walk_packages(app.__path__, "app."):
        importlib.import_module(module.name)
    found, classes = set(), [GatewayError]
    while classes:
        cls = classes.pop()
        if cls.answered:  # not a 499 for a client that has gone
            found.add(cls.type)
        classes.extend(cls.__subclasses__())
    return found


def test_every_problem_type_is_declared_whatever_a_process_imported() -> None:
    """The document read by a process that imported only the app (as `pgw serve` and the
    generator do) lists every type any module of the gateway raises."""
    only_the_app = subprocess.run(
        [sys.executable, "-c", "import json, app.main; from app.errors import problem_types; "
         "print(json.dumps(problem_types()))"],
        capture_output=True, text=True, check=True, timeout=120)
    declared = json.loads(only_the_app.stdout)
    raised = {f"urn:pgw:problem:{type_}" for type_ in _all_loaded_types()}
    assert raised <= {entry["type"] for entry in declared}
    assert declared == problem_types()
    assert {entry["type"] for entry in declared} == set(PROBLEM_CLASSES)


def _response(status: int, body: object, media: str = "application/problem+json") \
        -> httpx.Response:
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return httpx.Response(status, content=content, headers={"content-type": media,
                                                            "x-request-id": "req-1"})


def test_a_refining_type_is_caught_by_its_generic_class_and_unknown_types_fall_back() -> None:
    held = problem_from(_response(409, {
        "type": "urn:pgw:problem:legal-hold", "title": "Legal hold", "status": 409,
        "detail": "held", "hold_id": "hold_1"}), PROBLEM_CLASSES)
    assert isinstance(held, LegalHoldError)
    assert isinstance(held, ConflictError)
    assert held.extensions == {"hold_id": "hold_1"}
    assert held.request_id == "req-1"

    newer = problem_from(_response(409, {
        "type": "urn:pgw:problem:from-a-newer-gateway", "title": "New", "status": 409}),
        PROBLEM_CLASSES)
    assert type(newer) is UnknownProblemError
    assert newer.type == "urn:pgw:problem:from-a-newer-gateway"

    page = problem_from(_response(502, "<html>bad gateway</html>", "text/html"),
                        PROBLEM_CLASSES)
    assert type(page) is UnknownProblemError
    assert (page.type, page.status, page.title) == ("about:blank", 502, "Bad Gateway")
    assert isinstance(page, ProblemError)


def test_ci_installs_the_client_as_the_readme_test_command_does() -> None:
    """.ci/run type-checks tests/ (which import the client) before it runs the README's test
    command, so both install it."""
    repo = CLIENT.parent.parent
    lines = (repo / "README.md").read_text().splitlines()
    fences = [number for number, line in enumerate(lines) if line.startswith("```")]
    test_command = next(line for line in lines[fences[2] + 1:] if line.strip())
    assert '-e ".[test]" -e ./clients/python' in test_command
    ci = (repo / ".ci" / "run").read_text()
    assert 'awk \'/^```/{n++; next} n==3 && NF {print; exit}\' README.md' in ci
    assert '.venv/bin/pip install --quiet -e ".[test]" -e ./clients/python' in ci
