"""A scan helper that misbehaves as told (argv[1]), speaking the real helper's protocol:
`python tests/pii/fake_scan_helper.py MODE REQUEST_FD ANSWER_FD`."""

from __future__ import annotations

import json
import os
import struct
import sys
import time
from multiprocessing.connection import Connection


def main() -> None:
    mode = sys.argv[1]
    requests = Connection(int(sys.argv[2]), writable=False)
    answers = Connection(int(sys.argv[3]), readable=False)
    if mode == "halfready":  # the start of "ready", then nothing
        os.write(answers.fileno(), struct.pack("!i", 5) + b"re")
        time.sleep(60)  # long enough to fail any test that waits on it
    answers.send_bytes(b"ready")
    while True:
        try:
            request = json.loads(requests.recv_bytes())
        except EOFError:
            return
        texts, number = request["texts"], request["id"]
        windows = request.get("windows") or [(0, len(t)) for t in texts]

        def found(start: int, end: int, label: str, score: float = 0.85, *,
                  kind: str = request["kind"]) -> list[object]:
            """An entity as the request's kind answers it: a window's finding has a score
            and a recognizer too."""
            if kind == "analyze":
                return [start, end, label, score, "FakeRecognizer"]
            return [start, end, label]

        def answer(results: list[object], *, request: int = number) -> None:
            answers.send_bytes(json.dumps({"id": request, "results": results,
                                           "last": True}).encode())

        if mode == "shape":
            answers.send_bytes(json.dumps({"id": number, "answer": 1}).encode())
        elif mode == "fewer":
            answer([])
        elif mode == "more":
            answer([[]] * (len(texts) + 1))
        elif mode == "outside":  # an entity past the end of its text
            answer([[found(0, len(t) + 5, "PERSON")] for t in texts])
        elif mode == "unowned":  # a finding in the part of its window another window owns
            answer([[found(w[1], w[1] + 1, "PERSON")] if w[1] < len(t) else []
                    for t, w in zip(texts, windows, strict=True)])
        elif mode == "untyped":  # a finding of a type the scan did not ask for
            answer([[found(w[0], w[0] + 4, "GPE")] for w in windows])
        elif mode == "score":  # a score past 1
            answer([[found(w[0], w[0] + 4, "PERSON", 1.5)] for w in windows])
        elif mode == "lowscore":  # a score under the scan's threshold
            answer([[found(w[0], w[0] + 4, "PERSON", 0.0)] for w in windows])
        elif mode == "nolabel":  # an entity with an empty label
            answer([[found(0, 4, "")] if len(t) >= 4 else [] for t in texts])
        elif mode == "empty":  # parts without results, never the last, for ever
            while True:
                answers.send_bytes(json.dumps({"id": number, "results": [],
                                               "last": False}).encode())
                time.sleep(0.1)
        elif mode == "overlap":  # two entities over the same characters
            answer([[[0, 4, "PERSON"], [2, 6, "GPE"]] if len(t) >= 6 else [] for t in texts])
        elif mode == "deep":  # JSON nested past the parser's recursion limit, then a valid
            # answer left in the pipe, which must never be read as the next scan's
            answers.send_bytes(b"[" * 100_000 + b"]" * 100_000)
            answer([[] for _ in texts])
        elif mode == "extra":  # a right answer, then one more that nobody asked for
            answer([[] for _ in texts])
            answer([[[0, 1, "PERSON"]] for _ in texts], request=number + 1)
        elif mode == "half":  # the start of a message, then nothing
            os.write(answers.fileno(), struct.pack("!i", 1000) + b'{"results"')
            time.sleep(60)  # long enough to fail any test that waits on it

if __name__ == "__main__":
    main()
