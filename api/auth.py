"""Who is calling and what they may do: API keys, sign-in tokens (JWT) and roles.

Every route but ``/health``, the OpenAPI pages and ``POST /auth/token`` takes
``Authorization: Bearer <token>``, where the token is either an API key (its SHA-256 is
configured in ``access.api_keys``, never the key) or a JWT that ``POST /auth/token`` issued
for a configured user. Both become a :class:`Principal`; routes ask for an :class:`Action`
with :func:`require`, and a role that may not do it gets 403 with the reason.

A patrol credential names its unit; routes scope what it sees to that unit themselves
(another unit's assignment is 404, as if it did not exist).

Passwords are stored as scrypt hashes in the form
``scrypt$n=16384,r=8,p=1$<salt, base64>$<key, base64>`` (:func:`hash_password`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from watchpost.config import AccessConfig

__all__ = [
    "ROLES",
    "ROLE_ACTIONS",
    "Action",
    "Authenticator",
    "CurrentPrincipal",
    "Principal",
    "Role",
    "Token",
    "authenticate",
    "bearer_scheme",
    "demo_credentials",
    "hash_password",
    "new_api_key",
    "require",
    "sha256_hex",
    "verify_password",
]

log = logging.getLogger("watchpost.api.auth")

Role = Literal["operator", "patrol", "supervisor", "admin", "auditor"]
ROLES: tuple[Role, ...] = ("operator", "patrol", "supervisor", "admin", "auditor")

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1  # ~16 MiB and ~50 ms a check: slow for guessing, fine for sign-in
_HASH_FORMAT = re.compile(r"^scrypt\$n=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$")
_JWT_ALGORITHM = "HS256"
# The credentials of configs/demo/access.yaml (published in the README): refused in production.
_DEMO_KEYS = (
    "wp_demo_console_wall",
    "wp_demo_terminal_lotus_car_1",
    "wp_demo_terminal_lotus_post_n",
    "wp_demo_terminal_lotus_ebike_1",
    "wp_demo_terminal_bamboo_foot_1",
    "wp_demo_terminal_bamboo_post_market",
)
_DEMO_PASSWORDS = {
    "duty": "duty-demo",
    "chief": "chief-demo",
    "admin": "admin-demo",
    "audit": "audit-demo",
    "ebike1": "ebike1-demo",
}


# --- passwords and keys -------------------------------------------------------------------------


def hash_password(password: str, *, n: int = _SCRYPT_N, r: int = _SCRYPT_R, p: int = _SCRYPT_P) -> str:
    """The scrypt hash of ``password`` to put in ``access.users[].password_hash``."""
    if not password:
        raise ValueError("an empty password cannot be hashed")
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_maxmem(n, r), dklen=32)
    return f"scrypt$n={n},r={r},p={p}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def verify_password(password: str, password_hash: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (constant time; False for a malformed hash)."""
    m = _HASH_FORMAT.match(password_hash)
    if m is None:
        return False
    n, r, p = int(m[1]), int(m[2]), int(m[3])
    salt, expected = base64.b64decode(m[4]), base64.b64decode(m[5])
    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_maxmem(n, r), dklen=len(expected))
    return hmac.compare_digest(key, expected)


def _maxmem(n: int, r: int) -> int:
    return 128 * n * r * 2  # scrypt needs 128·n·r bytes; OpenSSL's default cap is 32 MiB


def valid_password_hash(password_hash: str) -> bool:
    """Whether a configured hash has the form :func:`hash_password` writes."""
    return _HASH_FORMAT.match(password_hash) is not None


def demo_credentials(access: AccessConfig) -> list[str]:
    """The configured credentials that are the demo's published ones (by name and secret)."""
    found = [
        k.name for k in access.api_keys if any(hmac.compare_digest(k.key_sha256, sha256_hex(d)) for d in _DEMO_KEYS)
    ]
    for user in access.users:
        demo = _DEMO_PASSWORDS.get(user.username)
        if demo is not None and verify_password(demo, user.password_hash):
            found.append(user.username)
    return found


def sha256_hex(key: str) -> str:
    """What ``access.api_keys[].key_sha256`` holds for ``key``."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    """A fresh random API key (shown once; only its SHA-256 is configured)."""
    return "wp_" + secrets.token_urlsafe(32)


# --- who is calling -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: a user who signed in, or the holder of an API key."""

    name: str
    role: Role
    unit: str | None = None  # the unit a patrol credential is

    @property
    def actor(self) -> str:
        """How the caller appears in alert timelines (the unit is in the transition's detail)."""
        return self.name

    @property
    def patrol(self) -> bool:
        return self.role == "patrol"


@dataclass(frozen=True, slots=True)
class Token:
    """A sign-in token as ``POST /auth/token`` returns it."""

    access_token: str
    expires_in: int
    principal: Principal


class Action(StrEnum):
    """What a route does, worded for the 403 reason: "role auditor may not <action>"."""

    READ_ALERTS = "read alerts"
    RAISE_ALERTS = "raise alerts"
    ACKNOWLEDGE_ALERTS = "acknowledge alerts"
    ASSIGN_UNITS = "assign units to alerts"
    ESCALATE_ALERTS = "escalate alerts"
    RESOLVE_ALERTS = "resolve alerts"
    CANCEL_ALERTS = "cancel alerts"
    READ_ASSIGNMENTS = "read assignments"
    WORK_ASSIGNMENTS = "accept, arrive at or clear assignments"
    READ_UNITS = "read units"
    REPORT_POSITIONS = "report unit positions"
    SET_UNIT_STATUS = "set unit status"
    READ_HOTLISTS = "read hotlists"
    EDIT_HOTLISTS = "change hotlists"
    READ_SITES = "read sites and devices"
    READ_EVENTS = "read events"
    LOOK_UP_PERSONAL = "look up plates and face captures"
    READ_AUDIT = "read the audit log"
    READ_OBSERVATIONS = "read observations"
    READ_STATS = "read statistics"
    READ_METRICS = "read metrics"
    STREAM = "stream the live feed"


_OPERATOR = {
    Action.READ_ALERTS,
    Action.RAISE_ALERTS,
    Action.ACKNOWLEDGE_ALERTS,
    Action.ASSIGN_UNITS,
    Action.ESCALATE_ALERTS,
    Action.RESOLVE_ALERTS,
    Action.READ_ASSIGNMENTS,
    Action.READ_UNITS,
    Action.READ_HOTLISTS,
    Action.READ_SITES,
    Action.READ_EVENTS,
    Action.LOOK_UP_PERSONAL,
    Action.READ_OBSERVATIONS,
    Action.READ_STATS,
    Action.READ_METRICS,
    Action.STREAM,
}
# Patrol actions are scoped to the credential's own unit by the routes.
ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    "operator": frozenset(_OPERATOR),
    "supervisor": frozenset(_OPERATOR | {Action.CANCEL_ALERTS, Action.EDIT_HOTLISTS, Action.SET_UNIT_STATUS}),
    # Only the auditor reads the audit log: an administrator must not be able to review (or
    # learn to evade) the record of their own look-ups.
    "admin": frozenset(set(Action) - {Action.READ_AUDIT}),
    "auditor": frozenset({Action.READ_ALERTS, Action.READ_STATS, Action.READ_AUDIT}),
    "patrol": frozenset(
        {
            Action.READ_ALERTS,
            Action.READ_ASSIGNMENTS,
            Action.WORK_ASSIGNMENTS,
            Action.READ_UNITS,
            Action.REPORT_POSITIONS,
            Action.SET_UNIT_STATUS,
            Action.STREAM,
        }
    ),
}


class AuthError(Exception):
    """A credential that cannot be accepted; ``reason`` goes to the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Authenticator:
    """Checks credentials against ``access`` and issues sign-in tokens signed with ``secret``."""

    def __init__(self, access: AccessConfig, *, secret: str, production: bool = False) -> None:
        if len(secret.encode()) < 32:  # RFC 7518: an HS256 key at least as long as the hash
            raise ValueError("the JWT secret must be at least 32 bytes")
        bad = [u.username for u in access.users if not valid_password_hash(u.password_hash)]
        if bad:
            raise ValueError(f"access.users {bad}: password_hash is not a `watchpost hash-password` scrypt hash")
        demo = demo_credentials(access) if production else []
        if demo:
            raise ValueError(f"the demo credentials {demo} are published in the README: replace them in production")
        self.access = access
        self._secret = secret
        self._users = {u.username: u for u in access.users}
        self._dummy_hash = hash_password(secrets.token_urlsafe(8))

    def sign_in(self, username: str, password: str) -> Token:
        """A token for a configured user whose password matches; :class:`AuthError` otherwise."""
        user = self._users.get(username)
        # An unknown name costs the same scrypt as a known one: timing tells no one which names exist.
        ok = verify_password(password, user.password_hash if user else self._dummy_hash)
        if user is None or not ok:
            raise AuthError("wrong username or password")
        principal = Principal(name=user.username, role=user.role, unit=user.unit)
        now = int(time.time())
        ttl = self.access.token_ttl_s
        claims = {"sub": principal.name, "role": principal.role, "unit": principal.unit, "iat": now, "exp": now + ttl}
        return Token(
            access_token=jwt.encode(claims, self._secret, algorithm=_JWT_ALGORITHM), expires_in=ttl, principal=principal
        )

    def principal(self, token: str) -> Principal:
        """Who ``token`` (an API key or a JWT) is; :class:`AuthError` with the reason otherwise."""
        if token.count(".") == 2:
            return self._from_jwt(token)
        return self._from_key(token)

    def _from_key(self, key: str) -> Principal:
        digest = sha256_hex(key)
        found = None
        for candidate in self.access.api_keys:  # every key compared, in constant time each
            if hmac.compare_digest(candidate.key_sha256, digest):
                found = candidate
        if found is None:
            raise AuthError("unknown API key")
        return Principal(name=found.name, role=found.role, unit=found.unit)

    def _from_jwt(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=[_JWT_ALGORITHM], options={"require": ["exp", "sub", "role"]}
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired: sign in again") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        user = self._users.get(str(claims["sub"]))
        # The configuration is the authority: a user removed or given another role since signing in is refused.
        if user is None or user.role != claims["role"] or user.unit != claims.get("unit"):
            raise AuthError("token no longer matches a configured user: sign in again")
        return Principal(name=user.username, role=user.role, unit=user.unit)


# --- FastAPI dependencies -----------------------------------------------------------------------

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API key, or a token from POST /auth/token: `Authorization: Bearer <token>`",
)


def unauthorized(reason: str) -> HTTPException:
    """401 with the reason and the challenge RFC 6750 asks for."""
    return HTTPException(
        status_code=401,
        detail=reason,
        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{reason}"'},
    )


def authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
) -> Principal:
    """The caller of this request, or 401 saying why not."""
    if credentials is None:
        header = request.headers.get("authorization")
        if header:
            raise unauthorized("the Authorization header must be 'Bearer <token>'")
        raise HTTPException(
            status_code=401,
            detail="no credential: send Authorization: Bearer <API key or token from POST /auth/token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    authenticator: Authenticator = request.app.state.authenticator
    try:
        return authenticator.principal(credentials.credentials)
    except AuthError as exc:
        raise unauthorized(exc.reason) from None


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def allowed(principal: Principal, action: Action) -> bool:
    """Whether the principal's role may do ``action`` at all (patrol scoping aside)."""
    return action in ROLE_ACTIONS[principal.role]


def require(action: Action) -> Any:
    """A dependency giving the caller when their role may do ``action``, else 403 with the reason."""

    def check(principal: CurrentPrincipal) -> Principal:
        if not allowed(principal, action):
            raise HTTPException(status_code=403, detail=f"role {principal.role} may not {action.value}")
        return principal

    return Depends(check)
