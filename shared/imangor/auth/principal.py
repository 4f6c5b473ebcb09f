"""The authenticated caller, as endpoints and services see it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

ROLE_RANK = {"customer": 0, "staff": 1, "admin": 2}


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    role: str
    via: Literal["jwt", "api_key", "service"] = "jwt"
    scopes: frozenset[str] | None = None  # None: everything the role allows
    key_id: uuid.UUID | None = None  # the API key used, if any

    def at_least(self, role: str) -> bool:
        return ROLE_RANK.get(self.role, -1) >= ROLE_RANK[role]

    @property
    def is_staff(self) -> bool:
        return self.at_least("staff")
