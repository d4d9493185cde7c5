"""Downstream notification: subscribers get the events they chose (consent, data-subject
requests, erasure, rectification, restriction, objection, retention), signed with HMAC,
through an outbox written in the same transaction as the change and delivered by jobs."""
