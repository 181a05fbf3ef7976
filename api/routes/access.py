"""Signing in: a token for a configured user, and who the caller is."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.security import OAuth2PasswordRequestForm

from api.auth import ROLE_ACTIONS, AuthError, CurrentPrincipal
from api.routes.common import responses
from api.schemas import MeOut, TokenOut

__all__ = ["router"]

router = APIRouter(tags=["access"])


@router.post(
    "/auth/token",
    response_model=TokenOut,
    summary="Sign in for a token",
    description="OAuth2 password form (`username`, `password`, form-encoded) checked against `access.users`."
    " Send the token as `Authorization: Bearer <access_token>` (or `?token=` on /ws). It lasts"
    " `access.token_ttl_s` (one shift by default) and is refused once the user's role or unit changes.",
    responses={401: responses(401)[401], 422: responses(422)[422]},
)
def sign_in(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict[str, Any]:
    try:
        token = request.app.state.authenticator.sign_in(form.username, form.password)
    except AuthError as exc:
        raise HTTPException(401, detail=exc.reason, headers={"WWW-Authenticate": "Bearer"}) from None
    return {
        "access_token": token.access_token,
        "token_type": "bearer",
        "expires_in": token.expires_in,
        "role": token.principal.role,
        "unit": token.principal.unit,
    }


@router.get("/auth/me", response_model=MeOut, summary="Who the credential is and what it may do", responses=responses())
def me(principal: CurrentPrincipal) -> dict[str, Any]:
    return {
        "name": principal.name,
        "role": principal.role,
        "unit": principal.unit,
        "may": sorted(a.value for a in ROLE_ACTIONS[principal.role]),
    }
