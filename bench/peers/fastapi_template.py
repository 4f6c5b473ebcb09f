"""The peer of bench/reads.py: the read path of the FastAPI full-stack template's backend.

It reproduces what fastapi/full-stack-fastapi-template (backend/app) does to answer
`GET /api/v1/users/me` and `GET /api/v1/items/{id}`: a FastAPI app with CORSMiddleware,
`OAuth2PasswordBearer`, `SessionDep` = `with Session(engine) as session: yield session`,
`engine = create_engine("postgresql+psycopg://...")` (default pool, no pre-ping),
`get_current_user` = `jwt.decode(token, SECRET_KEY, algorithms=["HS256"])` +
`TokenPayload(**payload)` + `session.get(User, sub)` + the is_active check, `UserPublic` /
`ItemPublic` response models, and the items route's `session.get(Item, id)` + owner check.
Routes are sync `def`s, so FastAPI runs them on its thread pool, as the template does. Serve
it as the template's Dockerfile does: `fastapi run --workers 4` = uvicorn (uvloop, httptools).

What it leaves out or adapts: the models map onto this project's `users`/`items` tables
(the template's `is_superuser` is our `role == 'admin'`); `jwt.decode` also names our tokens'
audience and issuer (PyJWT refuses a token with an `aud` claim otherwise); no Sentry, no
login/CRUD routes, no settings class (environment variables SECRET_KEY, DATABASE_URL).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Generator
from typing import Annotated, Any

import jwt
from fastapi import APIRouter, Depends, FastAPI, HTTPException, status
from fastapi.middleware.cors import CORSMiddleware
from fastapi.security import OAuth2PasswordBearer
from jwt.exceptions import InvalidTokenError
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlmodel import Field, Session, SQLModel, create_engine

SECRET_KEY = os.environ["SECRET_KEY"]
ALGORITHM = "HS256"
API_V1_STR = "/api/v1"
engine = create_engine(
    make_url(os.environ["DATABASE_URL"])
    .set(drivername="postgresql+psycopg")
    .render_as_string(hide_password=False)
)


# -- models (app/models.py) -------------------------------------------------------------------


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email: str
    is_active: bool = True
    role: str = "customer"
    full_name: str | None = None
    hashed_password: str | None = None

    @property
    def is_superuser(self) -> bool:
        return self.role == "admin"


class UserPublic(SQLModel):
    email: str
    is_active: bool = True
    is_superuser: bool = False
    full_name: str | None = None
    id: uuid.UUID


class Item(SQLModel, table=True):
    __tablename__ = "items"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    title: str
    description: str | None = None
    owner_id: uuid.UUID = Field(foreign_key="users.id")


class ItemPublic(SQLModel):
    title: str
    description: str | None = None
    id: uuid.UUID
    owner_id: uuid.UUID


class TokenPayload(SQLModel):
    sub: str | None = None


# -- api/deps.py ------------------------------------------------------------------------------

reusable_oauth2 = OAuth2PasswordBearer(tokenUrl=f"{API_V1_STR}/login/access-token")


def get_db() -> Generator[Session, None, None]:
    with Session(engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]
TokenDep = Annotated[str, Depends(reusable_oauth2)]


def get_current_user(session: SessionDep, token: TokenDep) -> User:
    try:
        payload = jwt.decode(
            token, SECRET_KEY, algorithms=[ALGORITHM], audience="imangor-api", issuer="imangor"
        )
        token_data = TokenPayload(**payload)
    except (InvalidTokenError, ValidationError):
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN, detail="Could not validate credentials"
        ) from None
    user = session.get(User, token_data.sub)
    if not user:
        raise HTTPException(status_code=404, detail="User not found")
    if not user.is_active:
        raise HTTPException(status_code=400, detail="Inactive user")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


# -- api/routes/users.py, api/routes/items.py -------------------------------------------------

users = APIRouter(prefix="/users", tags=["users"])
items = APIRouter(prefix="/items", tags=["items"])


@users.get("/me", response_model=UserPublic)
def read_user_me(current_user: CurrentUser) -> Any:
    return current_user


@items.get("/{id}", response_model=ItemPublic)
def read_item(session: SessionDep, current_user: CurrentUser, id: uuid.UUID) -> Any:
    item = session.get(Item, id)
    if not item:
        raise HTTPException(status_code=404, detail="Item not found")
    if not current_user.is_superuser and (item.owner_id != current_user.id):
        raise HTTPException(status_code=400, detail="Not enough permissions")
    return item


# -- main.py ----------------------------------------------------------------------------------

app = FastAPI(title="full-stack-fastapi-template (read path)", openapi_url=None)
app.add_middleware(
    CORSMiddleware,
    allow_origins=["http://localhost", "http://localhost:5173"],
    allow_credentials=True,
    allow_methods=["*"],
    allow_headers=["*"],
)
api_router = APIRouter()
api_router.include_router(users)
api_router.include_router(items)
app.include_router(api_router, prefix=API_V1_STR)
