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

PART = {"ner": 4, "tag": 100_000}  # texts per message of an answer: English windows come back
# a few at a time, to be analysed while the helper reads on; Chinese sentences all at once


def _ner(model: str) -> Any:
    from app.pii.en_model import load_ner_pipeline

    nlp = load_ner_pipeline(model)

    def read(texts: list[str]) -> list[list[tuple[int, int, str]]]:
        return [[(e.start_char, e.end_char, e.label_) for e in doc.ents]
                for doc in nlp.pipe(texts, batch_size=PART["ner"])]
    return read


def serve(model: str, requests: Connection, answers: Connection) -> None:
    """The helper's loop: {"id", "kind", "texts"} in; {"id", "results", "last"} out, PART
    texts at a time."""
    from app.pii.zh_model import tagger

    readers = {"ner": _ner(model),
               "tag": lambda texts: [tags.tolist() for tags in tagger().tag_sentences(texts)]}
    # the first call of each model allocates its buffers: pay for it before the first scan does
    readers["ner"](["Warm-up: John Smith called from London."])
    readers["tag"](["客户王芳来电。"])
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
                answers.send_bytes(json.dumps({"id": request["id"],
                                               "results": read(texts[first:first + part]),
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
