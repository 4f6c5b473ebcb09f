"""Accounts, tokens and API keys as the API shows them. Nothing here carries a password hash."""

from __future__ import annotations

import contextlib
import functools
import unicodedata
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


# -- one e-mail identity -------------------------------------------------------------------------
#
# Every path that takes an address (sign-up, sign-in, recovery, a change, admin create and
# update, Google sign-in, the first admin) calls `normalise_email`, so one person's address has
# one spelling, the one stored. Where an address becomes an account's identity (created or
# changed), the services also call `lookalike_problem` and refuse what it finds.


def normalise_email(value: str) -> str:
    """The one spelling of an address: trimmed; Unicode NFC (a decomposed "é" and the composed
    one are one address); the domain as IDNA (UTS #46) maps it, which folds case, width and
    dots (`ＥＸＡＭＰＬＥ．com` is example.com, `xn--bcher-kva.de` is bücher.de), as email-validator
    gives it; then lower-cased, as every stored address always was. Idempotent. Text that is
    no address is only trimmed, NFC'd and lower-cased: sign-in looks it up and finds nothing."""
    text = unicodedata.normalize("NFC", value.strip())
    from email_validator import EmailNotValidError, validate_email

    with contextlib.suppress(EmailNotValidError):  # no address: looked up as it is
        text = validate_email(text, check_deliverability=False).normalized
    return unicodedata.normalize("NFC", text.lower())


# UTS #39's Recommended scripts (table 7): those in common modern use. Letters of any other
# script (Cherokee "Ꭺ", Lisu "ꓮ", ...) are refused; many exist to look like Latin ones.
RECOMMENDED_SCRIPTS = (
    "Latin", "Arabic", "Armenian", "Bengali", "Bopomofo", "Cyrillic", "Devanagari", "Ethiopic",
    "Georgian", "Greek", "Gujarati", "Gurmukhi", "Han", "Hangul", "Hebrew", "Hiragana",
    "Kannada", "Katakana", "Khmer", "Lao", "Malayalam", "Myanmar", "Oriya", "Sinhala", "Tamil",
    "Telugu", "Thaana", "Thai", "Tibetan",
)  # fmt: skip
# UTS #39's "highly restrictive" level: besides one script, Latin may join the scripts that
# write Japanese, Chinese (with Bopomofo) and Korean together.
_JOINT_SCRIPTS = (
    frozenset({"Latin", "Han", "Hiragana", "Katakana"}),
    frozenset({"Latin", "Han", "Bopomofo"}),
    frozenset({"Latin", "Han", "Hangul"}),
)


def lookalike_problem(address: str) -> tuple[str, str] | None:
    """Why `address` (normalised) may not become an account's address, as (kind, message), or
    None. In the manner of UTS #39 (Unicode security mechanisms), on the local part and on each
    label of the domain, each on its own (a Latin name at a Cyrillic domain is fine):

    - `email_lookalike`: a compatibility character, one that NFKC would replace by another
      (fullwidth `ｆ`, ligature `ﬁ`, math `𝐚`, circled `ⓐ`). Refused, not folded: the local
      part is the receiving server's to read, `ｆｚ-admin@` and `fz-admin@` may be two
      mailboxes, and folding would give the account an address that is not where its mail
      goes. Also refused: a non-ASCII character that is no letter or mark (the hyphen `‐`
      U+2010 looks like `-`), or a letter of a script not recommended for identifiers.
    - `email_mixed_script`: letters of two scripts, such as a Cyrillic `а` among Latin ones,
      beyond the combinations UTS #39's highly restrictive level allows (Latin with Han and
      Japanese kana, Bopomofo or Hangul). Script membership is Unicode's Script_Extensions
      property, read with the `regex` module (Python's unicodedata has no script data).

    Not caught: a part written wholly in another script that happens to look like a Latin word
    (whole-script confusables, e.g. Cyrillic "сосо"), which would need UTS #39's confusables
    data and a stored skeleton per account."""
    folded = unicodedata.normalize("NFKC", address).lower()
    if folded != address:
        odd = [c for c in address if unicodedata.normalize("NFKC", c).lower() != c][:1]
        what = (
            f"{_describe(odd[0])} is a compatibility form of "
            f"'{unicodedata.normalize('NFKC', odd[0])}'"
            if odd
            else "the address has compatibility characters"
        )
        return (
            "email_lookalike",
            f"{what}: write the address with ordinary characters ({folded}?)",
        )
    local, _, domain = address.rpartition("@")
    for part in (local, *domain.split(".")):
        if not part.isascii():
            problem = _script_problem(part)
            if problem is not None:
                return problem
    return None


def _script_problem(part: str) -> tuple[str, str] | None:
    letters: list[tuple[str, frozenset[str]]] = []  # each letter with its scripts
    for char in part:
        scripts = _scripts_of(char)
        if scripts is None:
            return "email_lookalike", _refused_character(char)
        if scripts:  # not a digit, sign or mark, which fit any script
            letters.append((char, scripts))
    shared = frozenset(RECOMMENDED_SCRIPTS).intersection(*(s for _, s in letters))
    if shared or any(all(s & joint for _, s in letters) for joint in _JOINT_SCRIPTS):
        return None
    before = letters[0][1]
    for char, scripts in letters:  # the first letter whose script the ones before it lack
        if not before & scripts:
            return (
                "email_mixed_script",
                f"{_describe(char)} is {_names(scripts)} among {_names(before)} letters: "
                "each part of an address must keep to one script",
            )
        before &= scripts
    return None  # unreachable: no script shared means some letter shares none with the rest


def _scripts_of(char: str) -> frozenset[str] | None:
    """The recommended scripts `char` is used with; empty for one that fits any (an ASCII
    digit or sign, a combining mark of the Inherited script); None when it is refused."""
    if char.isascii():
        return frozenset({"Latin"}) if char.isalpha() else frozenset()
    patterns = _script_patterns()
    scripts = frozenset(name for name in RECOMMENDED_SCRIPTS if patterns[name].match(char))
    if scripts:
        return scripts
    if unicodedata.category(char).startswith("M") and patterns["Inherited"].match(char):
        return frozenset()
    return None


@functools.cache
def _script_patterns() -> dict[str, Any]:
    import regex  # loaded on the first non-ASCII address only

    names = (*RECOMMENDED_SCRIPTS, "Inherited")
    return {name: regex.compile(rf"\p{{Script_Extensions={name}}}") for name in names}


def _refused_character(char: str) -> str:
    if unicodedata.category(char)[0] in "LMN":
        return f"{_describe(char)} is of a script not recommended for identifiers (UTS #39)"
    return (
        f"{_describe(char)} is not allowed: beyond ASCII, an address takes only letters and "
        "their marks"
    )


def _describe(char: str) -> str:
    return f"'{char}' (U+{ord(char):04X} {unicodedata.name(char, 'unnamed character')})"


def _names(scripts: frozenset[str]) -> str:
    return " or ".join(sorted(scripts))


# Stored as normalise_email spells it, so "  Ann@Example.COM " and "ann@example.com" (or an
# NFD "José" and the NFC one) are one account.
# The document says what email-validator refuses beyond the format: special-use domains.
NOT_SPECIAL_USE = {"pattern": r"(?i)(^|[.@])(arpa|invalid|local|localhost|onion|test)\.?$"}
Email = Annotated[
    EmailStr,
    AfterValidator(normalise_email),
    Field(json_schema_extra={"not": NOT_SPECIAL_USE}),
]
# An address becoming an account's: the services also refuse look-alikes (lookalike_problem).
NewEmail = Annotated[
    Email,
    Field(
        description="an e-mail address; refused when it mixes scripts in one part or uses "
        "look-alike forms such as fullwidth letters (UTS #39)"
    ),
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
    email: NewEmail
    password: NewPassword
    full_name: Name = ""


class UserUpdateMe(PatchInput):
    """Changing the e-mail needs `current_password` (a wrong one is a 401)."""

    model_config = ConfigDict(json_schema_extra=_email_needs_password)
    email: NewEmail | None = None
    full_name: Name | None = None
    current_password: Password | None = Field(None, description="needed to change the e-mail")


class PasswordChangeIn(Input):
    current_password: Password
    new_password: NewPassword


class AdminUserCreate(Input):
    email: NewEmail
    password: NewPassword
    full_name: Name = ""
    role: Role = "customer"
    is_active: bool = True

    _json = field_validator("is_active", mode="before")(json_boolean)


class AdminUserUpdate(PatchInput):
    email: NewEmail | None = None
    full_name: Name | None = None
    role: Role | None = None
    is_active: bool | None = None
    password: NewPassword | None = None
    current_password: Password | None = Field(
        None,
        description="your own password: needed when the account is yours and the e-mail or "
        "the password changes (ignored for another account)",
    )

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
        return normalise_email(self.email or self.username or "")


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
