"""Downstream notification: subscribers get erasure and rectification events, signed with HMAC,
through an outbox written in the same transaction as the change and delivered by jobs."""
