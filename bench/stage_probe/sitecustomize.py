"""Where a record read's time goes inside the server, stage by stage: in every gateway process
started with this directory on PYTHONPATH and STAGE_PROBE_DIR set, each `GET /v1/records/{id}`
leaves one line in STAGE_PROBE_DIR/stages-<pid>.jsonl: its marks, each
`[stage, perf_counter_ns, thread_time_ns]`, in order. Functions are wrapped from outside; the
gateway's code is not changed. Used by bench/read_tail.py --stages."""

import contextvars
import json
import os
import sys
import time

_directory = os.environ.get("STAGE_PROBE_DIR")
_serving = "serve" in sys.argv or "--multiprocessing-fork" in sys.argv
if _directory and _serving:
    _marks: contextvars.ContextVar = contextvars.ContextVar("stage_marks", default=None)
    _out = []

    def mark(stage):
        marks = _marks.get()
        if marks is not None:
            marks.append((stage, time.perf_counter_ns(), time.thread_time_ns()))

    def _write(marks):
        if not _out:
            _out.append(open(os.path.join(_directory, f"stages-{os.getpid()}.jsonl"), "a",
                             buffering=1))
        _out[0].write(json.dumps(marks) + "\n")

    def _before(function, stage):
        def wrapped(*args, **kwargs):
            mark(stage)
            return function(*args, **kwargs)
        return wrapped

    def _around(function, before, after):
        def wrapped(*args, **kwargs):
            mark(before)
            try:
                return function(*args, **kwargs)
            finally:
                mark(after)
        return wrapped

    def _install():
        from app import middleware
        from app.audit import service as audit
        from app.keys.keyring import Keyring
        from app.records import reading, router

        outer = middleware.RequestContext.__call__

        async def probed(self, scope, receive, send):
            if scope["type"] != "http" or scope["method"] != "GET" or \
                    not scope["path"].startswith("/v1/records/"):
                return await outer(self, scope, receive, send)
            marks = [("in", time.perf_counter_ns(), time.thread_time_ns())]
            _marks.set(marks)

            async def sent(message):
                await send(message)
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    marks.append(("sent", time.perf_counter_ns(), time.thread_time_ns()))
                    _write(marks)

            return await outer(self, scope, receive, sent)

        middleware.RequestContext.__call__ = probed
        on_lane = router.on_lane

        async def endpoint(*args, **kwargs):
            mark("endpoint")
            return await on_lane(*args, **kwargs)

        router.on_lane = endpoint
        lazily = getattr(reading, "begin_lazily", None)  # older trees: no such stage

        def connected(session):
            connection = lazily(session)
            mark("connected")
            return connection

        if lazily is not None:
            reading.begin_lazily = connected
        Keyring.read_ahead = _before(Keyring.read_ahead, "selected")
        if hasattr(router, "commit_here"):  # older trees: the endpoint commits in its work
            router._read_record = _before(router._read_record, "thread")
            router.commit_here = _around(router.commit_here, "viewed", "committed")
        else:  # deps.in_session commits once the work returns
            from app import deps

            router._read_record = _around(router._read_record, "thread", "viewed")
            in_session = deps.in_session

            def committed(*args, **kwargs):
                try:
                    return in_session(*args, **kwargs)
                finally:
                    mark("committed")

            deps.in_session = committed
        audit.append = _around(audit.append, "audit", "inserted")

    _install()
