"""The scan helper process itself (`python -m app.pii.scan_helper MODEL REQUEST_FD ANSWER_FD`):
both models loaded once, then requests read from one pipe and answered on the other, until the
gateway process that started it closes them. The gateway's side: app.pii.scan_process."""

from __future__ import annotations

import gc
import json
import logging
import signal
import sys
from multiprocessing.connection import Connection
from typing import Any

from app.logs import configure as configure_logs

# texts per message of an answer: English windows come back a few at a time, to be analysed
# (or their findings taken) while the helper reads on; Chinese sentences all at once
PART = {"ner": 4, "analyze": 4, "tag": 100_000}


def _readers(model: str) -> dict[str, Any]:
    """What the helper answers for each kind of request: (texts, request, first) -> results,
    `first` being the place of `texts` in the request's."""
    from app.pii.engine import PiiEngine
    from app.pii.sharing import as_answer
    from app.pii.zh_model import tagger

    engine = PiiEngine(en_model=model)  # the gateway's engine, as its own process builds it
    nlp = engine.nlp_engine.nlp["en"]  # type: ignore[index]

    def ner(texts: list[str], _request: dict[str, Any],
            _first: int) -> list[list[tuple[int, int, str]]]:
        with engine.vocabulary.held():  # the documents' words forgotten once read
            return [[(e.start_char, e.end_char, e.label_) for e in doc.ents]
                    for doc in nlp.pipe(texts, batch_size=PART["ner"])]

    def analyze(texts: list[str], request: dict[str, Any], first: int) -> list[list[Any]]:
        windows = request["windows"][first:first + len(texts)]
        return [as_answer(found) for found in engine.analyze_english_windows(
                    [(text, own_start, own_end)
                     for text, (own_start, own_end) in zip(texts, windows, strict=True)],
                    entities=request["entities"], threshold=request["threshold"])]

    def tag(texts: list[str], _request: dict[str, Any], _first: int) -> list[list[int]]:
        return [tags.tolist() for tags in tagger().tag_sentences(texts)]
    return {"ner": ner, "analyze": analyze, "tag": tag}


def serve(model: str, requests: Connection, answers: Connection) -> None:
    """The helper's loop: {"id", "kind", "texts", ...} in; {"id", "results", "last"} out, PART
    texts at a time."""
    readers = _readers(model)
    # the first call of each model allocates its buffers: pay for it before the first scan does
    warm_up = "Warm-up: John Smith called from London on 415-555-0132."
    readers["analyze"]([warm_up], {"windows": [(0, len(warm_up))], "entities": None,
                                   "threshold": 0.4}, 0)
    readers["tag"](["客户王芳来电。"], {}, 0)
    gc.collect()  # as a worker does (app.runtime.freeze_startup_heap, which would import the
    gc.freeze()  # whole app here): full collections then skip the models' objects
    try:
        answers.send_bytes(b"ready")
    except OSError:  # the gateway process has gone while the models loaded
        return
    while True:
        try:
            request = json.loads(requests.recv_bytes())
        except EOFError:
            return
        texts, read, part = request["texts"], readers[request["kind"]], PART[request["kind"]]
        try:
            for first in range(0, max(len(texts), 1), part):
                answers.send_bytes(json.dumps({
                    "id": request["id"], "results": read(texts[first:first + part], request,
                                                         first),
                    "last": first + part >= len(texts)}).encode())
        except OSError:  # the gateway process has gone
            return


if __name__ == "__main__":
    # Ctrl-C in a terminal reaches the whole process group: the gateway stops us, by closing
    # the pipe, once it has finished its own requests
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logs("WARNING")  # JSON lines on stderr, as the gateway's own
    try:
        serve(sys.argv[1], Connection(int(sys.argv[2]), writable=False),
              Connection(int(sys.argv[3]), readable=False))
    except Exception as exc:  # noqa: BLE001 - the type only: a model's error message or
        # traceback may quote the text it was reading
        logging.getLogger("app.pii.scan_helper").error(
            "PII scan helper process failed (%s)", type(exc).__name__)
        sys.exit(1)
