"""The policy a privacy officer reads and reviews: purposes, data dictionary, roles, laws.

Every model forbids unknown keys, so a misspelt key is an error, not a silently ignored rule.
Cross-references (a field's purposes, a role's categories) are checked when the whole policy is
assembled, with the path of the offending value.
"""

from __future__ import annotations

import math
import re
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.datasets.hierarchies import HIERARCHY, top
from app.keys.ciphers import CipherName

Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")]
MASK_OPERATORS = ("mask", "redact", "replace", "generalize")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(Strict):
    """A description in English and Chinese."""

    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)


class LegalBasis(StrEnum):
    CONSENT = "consent"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal_obligation"
    VITAL_INTEREST = "vital_interest"
    PUBLIC_TASK = "public_task"
    LEGITIMATE_INTEREST = "legitimate_interest"


class Purpose(Strict):
    description: Text
    legal_basis: LegalBasis
    separate_consent: bool = False  # PIPL art. 23, 25, 29, 39
    third_party_recipients: list[str] = Field(default_factory=list)
    cross_border_transfer: bool = False
    ccpa_sale_or_sharing: bool = False
    consent_lifetime_days: int | None = Field(default=None, ge=1, le=36500)
    # consent purposes: once the consent is withdrawn, records collected for the purpose are
    # due this many days later (unless their record type says how long, or is due sooner)
    after_withdrawal_days: int = Field(default=30, ge=0, le=3650)
    notice: str | None = None  # the notice id whose consent this purpose needs


class FieldType(StrEnum):
    STRING = "string"
    NAME = "name"
    EMAIL = "email"
    PHONE = "phone"
    CN_RESIDENT_ID = "cn_resident_id"
    DATE = "date"
    ADDRESS = "address"
    INTEGER = "integer"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    FREE_TEXT = "free_text"


class RetentionTrigger(StrEnum):
    COLLECTION = "collection"
    LAST_ACTIVITY = "last_activity"
    CONSENT_WITHDRAWAL = "consent_withdrawal"


class RetentionAction(StrEnum):
    DELETE = "delete"
    DEIDENTIFY = "deidentify"


class Retention(Strict):
    days: int = Field(ge=1, le=36500)
    trigger: RetentionTrigger = RetentionTrigger.COLLECTION
    action: RetentionAction = RetentionAction.DELETE
    legal_basis: str | None = None  # why this long, e.g. a retention law


class DataField(Strict):
    type: FieldType
    category: Identifier
    description: Text
    sensitive: bool = False  # sensitive personal information (PIPL art. 28)
    protection: str = "clear"
    cipher: CipherName | None = None  # for this field; default PGW_CIPHER
    blind_index: bool = False
    purposes: list[Identifier] = Field(min_length=1)
    required: bool = False
    not_in_future: bool = False  # a date that cannot lie ahead, such as a birth date
    # free text: PII found in it is shown through `pii_operator` in the stored view, and the
    # original is kept encrypted under the subject's key
    scan_pii: bool = False
    pii_operator: str = "mask"
    retention: Retention | None = None  # overrides the record type's
    # what de-identification at the end of retention does with the field: drop it, keep it,
    # or generalise it (a date to its year, a string to its first characters); by default
    # identifiers, contact data, free text and protected fields are dropped, dates generalised
    deidentify: str | None = Field(default=None, pattern="^(drop|keep|generalize)$")

    @field_validator("protection")
    @classmethod
    def _protection(cls, value: str) -> str:
        if value in ("encrypt", "tokenize", "hash", "clear"):
            return value
        match = re.fullmatch(r"mask:([a-z_]+)", value)
        if match and match.group(1) in MASK_OPERATORS:
            return value
        raise ValueError("protection must be encrypt, tokenize, hash, clear or "
                         f"mask:<{'|'.join(MASK_OPERATORS)}>")

    @field_validator("pii_operator")
    @classmethod
    def _pii_operator(cls, value: str) -> str:
        if value not in MASK_OPERATORS:
            raise ValueError(f"pii_operator must be one of {', '.join(MASK_OPERATORS)}")
        return value

    @model_validator(mode="after")
    def _scanned_text(self) -> DataField:
        if self.scan_pii and (self.protection != "clear" or
                              self.type not in (FieldType.STRING, FieldType.FREE_TEXT)):
            raise ValueError("scan_pii is for string or free_text fields with protection clear: "
                             "the scan protects what it finds inside the text")
        return self

    @field_validator("cipher", mode="before")
    @classmethod
    def _cipher(cls, value: str | None) -> CipherName | None:
        if value is not None and value not in tuple(CipherName):
            raise ValueError("cipher must be aes-256-gcm or sm4-gcm")
        return None if value is None else CipherName(value)


MAX_LATTICE = 10_000  # combinations of levels a release may have to judge


class Dataset(Strict):
    """How the record type is released as an anonymised dataset: direct identifiers dropped
    or replaced by per-release pseudonyms, quasi-identifiers generalised along a hierarchy,
    sensitive attributes kept and made diverse. Fields not named here are not released."""

    direct_identifiers: dict[Identifier, str] = Field(default_factory=dict)
    quasi_identifiers: dict[Identifier, str] = Field(min_length=1)
    sensitive: list[Identifier] = Field(default_factory=list)

    @field_validator("direct_identifiers")
    @classmethod
    def _treatment(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [name for name, how in value.items() if how not in ("drop", "pseudonymize")]
        if bad:
            raise ValueError(f"{bad[0]}: a direct identifier is dropped or pseudonymized")
        return value

    @field_validator("quasi_identifiers")
    @classmethod
    def _hierarchy(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [name for name, kind in value.items() if kind not in HIERARCHY]
        if bad:
            raise ValueError(f"{bad[0]}: the hierarchy must be one of {', '.join(HIERARCHY)}")
        combinations = math.prod(top(kind) + 1 for kind in value.values())
        if combinations > MAX_LATTICE:
            raise ValueError(f"these hierarchies make {combinations} combinations of levels; "
                             f"a release can search at most {MAX_LATTICE}")
        return value

    @model_validator(mode="after")
    def _disjoint(self) -> Dataset:
        named = [*self.direct_identifiers, *self.quasi_identifiers, *self.sensitive]
        twice = sorted({n for n in named if named.count(n) > 1})
        if twice:
            raise ValueError(f"{twice[0]} is named in more than one role")
        return self


class RecordType(Strict):
    description: Text
    fields: dict[Identifier, DataField] = Field(min_length=1)
    retention: Retention
    dataset: Dataset | None = None  # how it may be released anonymised
    # a field the record type does not declare, or one the purpose does not need: refuse the
    # write (422), or drop the field and report that it was dropped
    undeclared_fields: str = Field(default="reject", pattern="^(reject|drop)$")
    unneeded_fields: str = Field(default="reject", pattern="^(reject|drop)$")


class Access(StrEnum):
    CLEAR = "clear"
    MASKED = "masked"
    DENIED = "denied"


class Role(Strict):
    description: Text
    # data category -> purpose (or "*") -> clear / masked / denied; anything not listed: denied
    access: dict[Identifier, dict[str, Access]]


class Period(Strict):
    days: int | None = Field(default=None, ge=1, le=3650)
    months: int | None = Field(default=None, ge=1, le=12)
    business_days: bool = False


class Jurisdiction(Strict):
    description: Text
    request_deadline: Period
    extension: Period | None = None
    opt_out_deadline: Period | None = None
    age_of_digital_consent: int = Field(ge=0, le=21)
    minors_data_is_sensitive: bool = False


class Category(Strict):
    description: Text


DSR_TYPES = ("access", "portability", "erasure", "rectification", "restriction", "objection")


class VerificationMethod(Strict):
    """A way a data subject's identity is checked, and how much assurance it gives."""

    description: Text
    level: int = Field(ge=1, le=3)  # 1 low, 2 substantial, 3 high


class Verification(Strict):
    """Which verification methods a trusted caller (scope `dsr:verify`) may assert, and the
    level each type of request needs before it is carried out. No method: nothing is verified,
    every request waits."""

    methods: dict[Identifier, VerificationMethod] = Field(default_factory=dict)
    required_level: dict[str, int] = Field(
        default_factory=lambda: dict.fromkeys(DSR_TYPES, 3))

    @field_validator("required_level")
    @classmethod
    def _every_type(cls, value: dict[str, int]) -> dict[str, int]:
        if set(value) != set(DSR_TYPES):
            raise ValueError(f"give a level (1-3) for each of {', '.join(DSR_TYPES)}")
        if any(not 1 <= level <= 3 for level in value.values()):
            raise ValueError("levels are 1 (low), 2 (substantial) or 3 (high)")
        return value

    def suffices(self, method: str, dsr_type: str) -> bool:
        known = self.methods.get(method)
        return known is not None and known.level >= self.required_level[dsr_type]


SCHEDULED_JOBS = ("retention_sweep", "dsr_deadlines", "key_destruction", "export_expiry")


class Every(Strict):
    minutes: int | None = Field(default=None, ge=1, le=1440)
    hours: int | None = Field(default=None, ge=1, le=168)
    days: int | None = Field(default=None, ge=1, le=31)

    @model_validator(mode="after")
    def _one(self) -> Every:
        if sum(v is not None for v in (self.minutes, self.hours, self.days)) != 1:
            raise ValueError("give exactly one of minutes, hours or days")
        return self

    @property
    def seconds(self) -> int:
        return 60 * (self.minutes or 0) + 3600 * (self.hours or 0) + 86400 * (self.days or 0)


class Schedule(Strict):
    """A periodic job: the worker queues one run per interval, whichever worker gets there."""

    every: Every
    enabled: bool = True


def _default_schedules() -> dict[str, Schedule]:
    return {"retention_sweep": Schedule(every=Every(hours=24)),
            "dsr_deadlines": Schedule(every=Every(hours=1)),
            "key_destruction": Schedule(every=Every(minutes=15)),
            "export_expiry": Schedule(every=Every(hours=1))}


def _known_schedules(value: dict[str, Schedule] | None) -> dict[str, Schedule] | None:
    unknown = sorted(set(value or {}) - set(SCHEDULED_JOBS))
    if unknown:
        raise ValueError(f"unknown scheduled job {unknown[0]!r}; known: "
                         f"{', '.join(SCHEDULED_JOBS)}")
    return value


class PolicyFile(Strict):
    """One policy file: any of the sections; the files together form the policy."""

    categories: dict[Identifier, Category] | None = None
    purposes: dict[Identifier, Purpose] | None = None
    record_types: dict[Identifier, RecordType] | None = None
    roles: dict[Identifier, Role] | None = None
    jurisdictions: dict[str, Jurisdiction] | None = None
    schedules: dict[str, Schedule] | None = None
    verification: Verification | None = None

    _schedules = field_validator("schedules")(_known_schedules)


class PolicyBody(Strict):
    categories: dict[str, Category]
    purposes: dict[str, Purpose]
    record_types: dict[str, RecordType]
    roles: dict[str, Role]
    jurisdictions: dict[str, Jurisdiction]
    schedules: dict[str, Schedule] = Field(default_factory=_default_schedules)
    verification: Verification = Field(default_factory=Verification)
