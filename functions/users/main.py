"""users unit: your account, admins' user management, and API keys."""

# The runtime comes first: it pauses the garbage collector while the unit starts.
# isort: off
from imangor.runtime import Context, Deploy, Unit

# isort: on
from imangor.registry import ACCOUNT_SCOPE
from imangor.schemas.common import Page
from imangor.schemas.users import (
    AdminUserCreate,
    AdminUserUpdate,
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyOut,
    ApiKeyPath,
    PasswordChangeIn,
    TokenOut,
    UserFilter,
    UserOut,
    UserPath,
    UserUpdateMe,
)
from imangor.services import api_keys
from imangor.services import users as accounts

# Enqueues the mail that tells an old address it was changed.
unit = Unit("users", Deploy(needs=("database", "redis", "tasks"), memory="512Mi"))


@unit.get("/users/me")
def read_me(ctx: Context) -> UserOut:
    """Your account."""
    return UserOut.model_validate(accounts.get_user(ctx.db, ctx.user.user_id))


# What could take an account away (its e-mail, its password, the account itself) needs the
# person, never an API key (ACCOUNT_SCOPE is a scope no key can be granted). So does setting
# any account's credentials or role: an admin's key with users:write could otherwise give an
# account it controls (its own owner's, another admin's, a new one) a password it knows, and
# sign in with every scope.
ACCOUNT = ACCOUNT_SCOPE


@unit.patch("/users/me", errors=(409,))
def update_me(body: UserUpdateMe, ctx: Context) -> UserOut:
    """Change your name, or your e-mail (with `current_password`; the old address is told)."""
    return UserOut.model_validate(accounts.update_me(ctx.db, ctx.user, body))


@unit.delete("/users/me", errors=(409,), key_scope=ACCOUNT)
def delete_me(ctx: Context) -> None:
    """Delete your account and everything it owns."""
    accounts.delete_user(ctx.db, ctx.user.user_id)


@unit.post("/users/me/password", key_scope=ACCOUNT)
def change_password(body: PasswordChangeIn, ctx: Context) -> TokenOut:
    """Change your password (needs the current one; your address is told). Every session
    ends, this one included: continue with the new token pair in the answer."""
    from imangor.services.sessions import issue_tokens

    user = accounts.change_password(
        ctx.db,
        ctx.user.user_id,
        body.current_password.get_secret_value(),
        body.new_password.get_secret_value(),
    )
    return issue_tokens(ctx.db, user)


@unit.get("/users/", access="admin")
def list_users(query: UserFilter, ctx: Context) -> Page[UserOut]:
    """List accounts, filtered by e-mail, role or activity."""
    rows, cursor = accounts.list_users(ctx.db, query)
    return Page[UserOut](items=[UserOut.model_validate(u) for u in rows], next_cursor=cursor)


@unit.post("/users/", access="admin", status=201, errors=(409,), key_scope=ACCOUNT)
def create_user(body: AdminUserCreate, ctx: Context) -> UserOut:
    """Create an account with any role."""
    return UserOut.model_validate(accounts.admin_create(ctx.db, body))


@unit.get("/users/{user_id}", access="admin")
def read_user(path: UserPath, ctx: Context) -> UserOut:
    """One account."""
    return UserOut.model_validate(accounts.get_user(ctx.db, path.user_id))


@unit.patch("/users/{user_id}", access="admin", errors=(409,), key_scope=ACCOUNT)
def update_user(path: UserPath, body: AdminUserUpdate, ctx: Context) -> UserOut:
    """Change an account: role, activation, e-mail, name or password. Your own e-mail or
    password needs `current_password`, as on /users/me, and the old address is told."""
    return UserOut.model_validate(accounts.admin_update(ctx.db, ctx.user, path.user_id, body))


@unit.delete("/users/{user_id}", access="admin", errors=(409,), key_scope=ACCOUNT)
def delete_user(path: UserPath, ctx: Context) -> None:
    """Delete an account (never the last admin)."""
    accounts.delete_user(ctx.db, path.user_id)


@unit.get("/api-keys/")
def list_api_keys(ctx: Context) -> Page[ApiKeyOut]:
    """Your API keys (never their secrets)."""
    keys = api_keys.list_keys(ctx.db, ctx.user.user_id)
    return Page[ApiKeyOut](items=[ApiKeyOut.model_validate(k) for k in keys])


@unit.post("/api-keys/", status=201)
def create_api_key(body: ApiKeyIn, ctx: Context) -> ApiKeyCreated:
    """Create an API key; its secret is in this answer only."""
    key, secret = api_keys.create_key(ctx.db, ctx.user.user_id, body.name, body.scopes)
    return ApiKeyCreated.model_validate(
        {**ApiKeyOut.model_validate(key).model_dump(), "secret": secret}
    )


@unit.delete("/api-keys/{key_id}")
def revoke_api_key(path: ApiKeyPath, ctx: Context) -> None:
    """Revoke one of your API keys."""
    api_keys.revoke_key(ctx.db, ctx.user.user_id, path.key_id)


users = unit.entry_point()
