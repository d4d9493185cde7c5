"""A typed Python client for the privacy gateway's HTTP API.

    from pgw_client import Gateway
    with Gateway("http://127.0.0.1:8000", token=token) as gw:
        stored = gw.records.create_record(RecordIn(...))
"""

from pgw_client.api import AsyncGateway, Gateway
from pgw_client.pages import Page, apaginate, paginate
from pgw_client.problems import FieldError, ProblemError, UnknownProblemError
from pgw_client.transport import Retry

__all__ = ["AsyncGateway", "FieldError", "Gateway", "Page", "ProblemError", "Retry",
           "UnknownProblemError", "apaginate", "paginate"]
