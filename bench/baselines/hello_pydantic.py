"""Floor 1: the bare hello plus what the issue mandates for every unit, and nothing else.

Settings come from pydantic-settings, validated at import (as every unit must), and the answer
is a pydantic model. No runtime of ours, no metrics, no Redis: what pydantic and
pydantic-settings alone add to a bare function, run with Python's defaults.
"""

from flask import Request
from pydantic import BaseModel
from pydantic_settings import BaseSettings


class Settings(BaseSettings):
    environment: str = "local"
    project_name: str = "Imangor API"


SETTINGS = Settings()


class Hello(BaseModel):
    message: str


def hello_pydantic(request: Request) -> tuple[str, int, dict[str, str]]:
    body = Hello(message=SETTINGS.project_name).model_dump_json()
    return body, 200, {"Content-Type": "application/json"}
