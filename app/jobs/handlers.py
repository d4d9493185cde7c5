"""Imports every domain's job handlers, so that a worker knows them all."""

import app.dsr.jobs
import app.keys.jobs
import app.retention.jobs
import app.webhooks.jobs  # noqa: F401

__all__: list[str] = []
