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
    answers.send_bytes(b"ready")
    while True:
        try:
            texts = json.loads(requests.recv_bytes())["texts"]
        except EOFError:
            return
        if mode == "shape":
            answers.send_bytes(b'{"answer": 1}')
        elif mode == "fewer":
            answers.send_bytes(json.dumps({"results": [], "last": True}).encode())
        elif mode == "more":
            answers.send_bytes(json.dumps({"results": [[]] * (len(texts) + 1),
                                           "last": True}).encode())
        elif mode == "outside":  # an entity past the end of its text
            answers.send_bytes(json.dumps({"results": [[[0, len(t) + 5, "PERSON"]]
                                                       for t in texts], "last": True}).encode())
        elif mode == "deep":  # JSON nested past the parser's recursion limit, then a valid
            # answer left in the pipe, which must never be read as the next scan's
            answers.send_bytes(b"[" * 100_000 + b"]" * 100_000)
            answers.send_bytes(json.dumps({"results": [[] for _ in texts],
                                           "last": True}).encode())
        elif mode == "half":  # the start of a message, then nothing
            os.write(answers.fileno(), struct.pack("!i", 1000) + b'{"results"')
            time.sleep(3600)


if __name__ == "__main__":
    main()
