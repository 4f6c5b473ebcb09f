"""auth unit: registration, sign-in (password and Google), token refresh, password recovery."""

from imangor.runtime import FORM, JSON, Context, Deploy, Unit
from imangor.schemas.users import (
    Accepted,
    GoogleIn,
    RecoveryIn,
    RefreshIn,
    RegisterIn,
    ResetIn,
    TokenIn,
    TokenOut,
    UserOut,
)

# Password hashing is memory-bound: concurrency stays low and memory has headroom.
unit = Unit("auth", Deploy(needs=("database", "redis", "tasks"), memory="1Gi"))


@unit.post("/auth/register", access="public", status=201, rate_limit="signup_limit", errors=(409,))
def register(body: RegisterIn, ctx: Context) -> UserOut:
    """Create a customer account."""
    from imangor.services.users import register as create

    return UserOut.model_validate(create(ctx.db, body))


@unit.post(
    "/auth/token",
    access="public",
    media_types=(FORM, JSON),
    rate_limit="off",
    errors=(401, 429, 503),
)
def token(body: TokenIn, ctx: Context) -> TokenOut:
    """Sign in with e-mail and password (OAuth2 password form or JSON).

    Limited per account and per client IP (see LOGIN_LIMIT_*)."""
    from imangor.ratelimit import limit_attempts
    from imangor.services.sessions import login

    limit_attempts("login", body.login, ctx.client_ip)
    return login(ctx.db, body.login, body.password.get_secret_value())


@unit.post("/auth/refresh", access="public", errors=(401,))
def refresh(body: RefreshIn, ctx: Context) -> TokenOut:
    """Trade a refresh token for a new pair; the old one stops working.

    Presenting an already rotated token revokes its whole session."""
    from imangor.services.sessions import refresh as rotate

    return rotate(ctx.db, body.refresh_token)


@unit.post("/auth/logout", access="public")
def logout(body: RefreshIn, ctx: Context) -> None:
    """End the session this refresh token belongs to."""
    from imangor.services.sessions import logout as end_session

    end_session(ctx.db, body.refresh_token)


@unit.post("/auth/password-recovery", access="public", status=202, rate_limit="off", errors=(429,))
def password_recovery(body: RecoveryIn, ctx: Context) -> Accepted:
    """Mail reset instructions if the account exists; the answer is the same either way."""
    from imangor.ratelimit import limit_attempts
    from imangor.schemas.tasks import PasswordRecovery
    from imangor.tasks import enqueue

    limit_attempts("recovery", body.email, ctx.client_ip)
    # The lookup happens in the background task, so this request does the same work and
    # takes the same time whether or not the account exists.
    enqueue(ctx.db, PasswordRecovery(email=body.email))
    return Accepted(detail="if the account exists, reset instructions are on their way")


@unit.post("/auth/reset-password", access="public", rate_limit="password_reset_limit")
def reset_password(body: ResetIn, ctx: Context) -> None:
    """Set a new password with a reset token; every session of the account ends."""
    from imangor.services.sessions import reset_password as reset

    reset(ctx.db, body.token, body.new_password.get_secret_value())


@unit.post("/auth/google", access="public", rate_limit="google_signin_limit", errors=(401,))
def google(body: GoogleIn, ctx: Context) -> TokenOut:
    """Sign in with a Google ID token (linked by verified e-mail, or a new account)."""
    from imangor.auth.google import verify_id_token
    from imangor.config import get_settings
    from imangor.services.sessions import google_login

    settings = get_settings()
    claims = verify_id_token(body.id_token, settings.google_client_ids, settings.google_certs_url)
    return google_login(ctx.db, claims)


auth = unit.entry_point()
