"""Calls from Cloud Tasks and Cloud Scheduler: a Google-signed OIDC token for our audience,
from one of our service accounts. Their X-CloudTasks-* headers alone are never trusted."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from imangor.auth.google import verify_id_token
from imangor.auth.principal import Principal
from imangor.config import get_settings
from imangor.errors import NotAuthenticated, PermissionDenied

SERVICE_USER = uuid.UUID(int=0)  # service calls act as no user


def authenticate_service(headers: Mapping[str, str]) -> Principal:
    settings = get_settings()
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("service endpoints need a Google-signed OIDC token")
    if not settings.oidc_audience:
        raise NotAuthenticated("service calls are not configured (OIDC_AUDIENCE)")
    claims = verify_id_token(token.strip(), [settings.oidc_audience], settings.oidc_certs_url)
    email = claims.get("email")
    if claims.get("email_verified") is not True or email not in settings.oidc_service_accounts:
        raise PermissionDenied("this service account may not call this endpoint")
    return Principal(user_id=SERVICE_USER, role="admin", via="service")
