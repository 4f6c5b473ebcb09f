"""Reference: the bare hello plus pydantic alone, without pydantic-settings.

Its two settings are read from the environment by a plain pydantic model at import and the
answer is a pydantic model: what pydantic by itself adds to a bare function. Beside the
hello_pydantic floor it shows how much of that floor is pydantic-settings and how much is
pydantic, which item 5's runtime (typed pydantic input and output) needs in every unit.
"""

import os

from flask import Request
from pydantic import BaseModel


class Settings(BaseModel):
    environment: str = "local"
    project_name: str = "Imangor API"


SETTINGS = Settings.model_validate(
    {
        name.lower(): os.environ[name]
        for name in ("ENVIRONMENT", "PROJECT_NAME")
        if name in os.environ
    }
)


class Hello(BaseModel):
    message: str


def hello_pydantic_model(request: Request) -> tuple[str, int, dict[str, str]]:
    body = Hello(message=SETTINGS.project_name).model_dump_json()
    return body, 200, {"Content-Type": "application/json"}
