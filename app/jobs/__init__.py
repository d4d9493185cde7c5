"""Crash-safe background jobs in the service's own database: leases, retries, schedules."""
