from enum import StrEnum


class Scope(StrEnum):
    """Every scope a route can require, named `domain:action`."""

    PII_SCAN = "pii:scan"
    RECORDS_WRITE = "records:write"
    RECORDS_READ = "records:read"
    CONSENT_WRITE = "consent:write"
    CONSENT_READ = "consent:read"
    DSR_SUBMIT = "dsr:submit"
    DSR_MANAGE = "dsr:manage"
    DSR_VERIFY = "dsr:verify"  # may assert that a data subject's identity was verified
    AUDIT_READ = "audit:read"
    KEYS_ADMIN = "keys:admin"
    ACCESS_APPROVE = "access:approve"
    POLICY_READ = "policy:read"
    DATASETS_EXPORT = "datasets:export"
    METRICS_READ = "metrics:read"
