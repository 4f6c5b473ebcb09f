"""Accounts, tokens and API keys as the API shows them. Nothing here carries a password hash."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    EmailStr,
    Field,
    JsonValue,
    SecretStr,
    field_validator,
    model_validator,
)

from imangor.config import Settings
from imangor.registry import REGISTRY
from imangor.schemas.common import Input, Output, PageQuery
from imangor.schemas.patch import PatchInput, without_null
from imangor.schemas.scalars import json_boolean

Role = Literal["customer", "staff", "admin"]


def _normalise_email(value: str) -> str:
    return value.strip().lower()


# Stored lower-cased and trimmed, so "  Ann@Example.COM " and "ann@example.com" are one account.
# The document says what email-validator refuses beyond the format: special-use domains.
NOT_SPECIAL_USE = {"pattern": r"(?i)(^|[.@])(arpa|invalid|local|localhost|onion|test)\.?$"}
Email = Annotated[
    EmailStr,
    AfterValidator(_normalise_email),
    Field(json_schema_extra={"not": NOT_SPECIAL_USE}),
]
Password = Annotated[SecretStr, Field(min_length=1, max_length=256)]
# A password being set. The service checks it against the PASSWORD_MIN_LENGTH in force (and
# that it is not the e-mail address) with one clear message; the document states the rule
# with the setting's default.
_MIN = Settings.model_fields["password_min_length"].default
NewPassword = Annotated[
    SecretStr,
    Field(
        min_length=1,
        max_length=256,
        json_schema_extra={"minLength": _MIN},
        description=f"at least PASSWORD_MIN_LENGTH ({_MIN}) characters, not the e-mail address",
    ),
]
Name = Annotated[str, Field(max_length=200)]


def _email_needs_password(schema: dict[str, Any], model: type[Any]) -> None:
    without_null(schema, model)
    # JSON Schema can say it; the server asks only when the address really changes.
    schema["dependentRequired"] = {"email": ["current_password"]}


class UserOut(Output):
    id: uuid.UUID
    email: str
    full_name: str
    role: Role
    is_active: bool
    email_verified: bool
    created_at: datetime
    updated_at: datetime


class RegisterIn(Input):
    email: Email
    password: NewPassword
    full_name: Name = ""


class UserUpdateMe(PatchInput):
    """Changing the e-mail needs `current_password` (a wrong one is a 401)."""

    model_config = ConfigDict(json_schema_extra=_email_needs_password)
    email: Email | None = None
    full_name: Name | None = None
    current_password: Password | None = Field(None, description="needed to change the e-mail")


class PasswordChangeIn(Input):
    current_password: Password
    new_password: NewPassword


class AdminUserCreate(Input):
    email: Email
    password: NewPassword
    full_name: Name = ""
    role: Role = "customer"
    is_active: bool = True

    _json = field_validator("is_active", mode="before")(json_boolean)


class AdminUserUpdate(PatchInput):
    email: Email | None = None
    full_name: Name | None = None
    role: Role | None = None
    is_active: bool | None = None
    password: NewPassword | None = None

    _json = field_validator("is_active", mode="before")(json_boolean)


class UserFilter(PageQuery):
    """The only filters admins may use: never an arbitrary column."""

    email: Annotated[str, Field(max_length=320)] | None = None
    role: Role | None = None
    is_active: bool | None = None


class UserPath(Input):
    user_id: uuid.UUID


class TokenIn(Input):
    """OAuth2 password grant (form, as Swagger UI's Authorize sends it) or JSON."""

    username: Annotated[str, Field(max_length=320)] | None = None
    email: Annotated[str, Field(max_length=320)] | None = None
    password: Password
    grant_type: Literal["password"] | None = None
    scope: Annotated[str, Field(max_length=1000)] = ""
    client_id: Annotated[str, Field(max_length=200)] | None = None
    client_secret: Annotated[str, Field(max_length=200)] | None = None

    @model_validator(mode="after")
    def _one_identifier(self) -> TokenIn:
        if not (self.username or self.email):
            raise ValueError("send the account's e-mail as `username` (form) or `email` (JSON)")
        return self

    @property
    def login(self) -> str:
        return _normalise_email(self.email or self.username or "")


class TokenOut(Output):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int


class RefreshIn(Input):
    refresh_token: Annotated[str, Field(min_length=1, max_length=200)]


class RecoveryIn(Input):
    email: Email


class ResetIn(Input):
    token: Annotated[str, Field(min_length=1, max_length=200)]
    new_password: NewPassword


class GoogleIn(Input):
    id_token: Annotated[str, Field(min_length=1, max_length=4096)]


class Accepted(Output):
    detail: str


_SCOPES: list[JsonValue] = [*sorted(REGISTRY.grantable_scopes)]


class ApiKeyIn(Input):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    scopes: Annotated[list[str], Field(min_length=1, max_length=32)] = Field(
        description="what the key may do, e.g. items:read, orders:write; repeats count once",
        json_schema_extra={"items": {"type": "string", "enum": _SCOPES}},
    )


class ApiKeyOut(Output):
    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    secret: str = Field(description="shown once: store it now")


class ApiKeyPath(Input):
    key_id: uuid.UUID
