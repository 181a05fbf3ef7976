"""Credentials over real HTTP: API keys, sign-in tokens, clear 401s, password hashes, the CLI helpers."""

from __future__ import annotations

import io
import re
import time

import httpx
import jwt
import pytest

from api.auth import hash_password, sha256_hex, verify_password
from tests.api.conftest import JWT_SECRET, KEYS, PASSWORD, PATROL_UNIT
from watchpost import cli


def test_no_credential_is_401_with_a_challenge_and_the_reason(api):
    """A route without a credential answers 401, WWW-Authenticate: Bearer, and says what to send."""
    r = api.client().get("/alerts")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "no credential" in r.json()["detail"]


def test_unknown_api_key_and_wrong_scheme_are_401_with_the_reason(api):
    """An unknown key says 'unknown API key'; a non-Bearer Authorization header says what form is expected."""
    r = api.client(token="not-a-key").get("/alerts")
    assert r.status_code == 401 and r.json()["detail"] == "unknown API key"
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    r = httpx.get(f"{api.url}/alerts", headers={"Authorization": "Basic YWxpY2U6eA=="})
    assert r.status_code == 401 and "Bearer" in r.json()["detail"]


def test_open_routes_need_no_credential(api):
    """/health, /docs and /openapi.json answer without a credential."""
    c = api.client()
    assert c.get("/health").status_code == 200
    assert c.get("/docs").status_code == 200
    assert c.get("/openapi.json").status_code == 200


def test_api_key_authenticates_with_its_role_and_unit(api):
    """/auth/me with a patrol key names the key, its role, its unit and what it may do."""
    me = api.client("patrol").get("/auth/me").json()
    assert me["name"] == "key-patrol" and me["role"] == "patrol" and me["unit"] == PATROL_UNIT
    assert "accept, arrive at or clear assignments" in me["may"] and "resolve alerts" not in me["may"]


def test_sign_in_issues_a_token_that_authenticates(api):
    """POST /auth/token with the password form gives a bearer token carrying role and unit; it works as a credential."""
    r = api.client().post("/auth/token", data={"username": "rider", "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer" and body["role"] == "patrol" and body["unit"] == PATROL_UNIT
    assert body["expires_in"] == api.config.access.token_ttl_s
    claims = jwt.decode(body["access_token"], JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "rider" and claims["role"] == "patrol" and claims["unit"] == PATROL_UNIT
    assert claims["exp"] - claims["iat"] == api.config.access.token_ttl_s
    me = api.client(token=body["access_token"]).get("/auth/me").json()
    assert me == {**me, "name": "rider", "role": "patrol", "unit": PATROL_UNIT}


def test_wrong_password_and_unknown_user_get_the_same_401(api):
    """A wrong password and an unknown user are refused alike, without saying which."""
    c = api.client()
    wrong = c.post("/auth/token", data={"username": "alice", "password": "nope"})
    unknown = c.post("/auth/token", data={"username": "mallory", "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"] == "wrong username or password"


def test_sign_in_without_the_form_fields_is_422_naming_them(api):
    """POST /auth/token without username/password is 422 and names the missing fields."""
    r = api.client().post("/auth/token", data={"username": "alice"})
    assert r.status_code == 422 and "password" in r.json()["detail"]


def _token(**claims):
    now = int(time.time())
    return jwt.encode(
        {"sub": "alice", "role": "operator", "unit": None, "iat": now, "exp": now + 60, **claims},
        JWT_SECRET,
        algorithm="HS256",
    )


def test_expired_token_is_401_token_expired(api):
    """A token past its exp is refused with 'token expired'."""
    r = api.client(token=_token(exp=int(time.time()) - 5)).get("/alerts")
    assert r.status_code == 401 and r.json()["detail"].startswith("token expired")


def test_forged_and_stale_tokens_are_refused(api):
    """A token signed with another secret, or whose role no longer matches the configured user, is 401."""
    forged = jwt.encode({"sub": "alice", "role": "admin", "exp": int(time.time()) + 60}, "x" * 32, algorithm="HS256")
    r = api.client(token=forged).get("/alerts")
    assert r.status_code == 401 and r.json()["detail"].startswith("invalid token")
    r = api.client(token=_token(role="admin")).get("/alerts")
    assert r.status_code == 401 and "no longer matches" in r.json()["detail"]
    assert api.client(token=_token()).get("/alerts").status_code == 200


def test_password_hashes_verify_and_malformed_hashes_do_not():
    """hash_password gives a salted scrypt hash that verify_password accepts for that password only."""
    h = hash_password("s3cret", n=2**10)
    assert re.fullmatch(r"scrypt\$n=1024,r=8,p=1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+", h)
    assert verify_password("s3cret", h) and not verify_password("s3cret!", h)
    assert hash_password("s3cret", n=2**10) != h  # salted
    assert not verify_password("s3cret", "sha1$abc") and not verify_password("s3cret", "")


def test_create_app_refuses_a_malformed_password_hash(api_config, database_url):
    """A configured user whose hash is not a scrypt hash fails at start, naming the user."""
    from api.app import create_app
    from watchpost.config import UserConfig

    access = api_config.access.model_copy(
        update={"users": [UserConfig(username="bob", role="operator", password_hash="plain")]}
    )
    with pytest.raises(ValueError, match="bob"):
        create_app(config=api_config.model_copy(update={"access": access}), database_url=database_url)


def test_cli_hash_password_reads_stdin_and_prints_a_verifiable_hash(monkeypatch, capsys):
    """`watchpost hash-password` reads one line from standard input and prints its scrypt hash."""
    monkeypatch.setattr("sys.stdin", io.StringIO("tiger lily\n"))
    assert cli.main(["hash-password"]) == 0
    printed = capsys.readouterr().out.strip()
    assert verify_password("tiger lily", printed)


def test_cli_new_api_key_prints_the_key_once_and_its_config_line(capsys):
    """`watchpost new-api-key` prints a fresh key and the access.api_keys line with its SHA-256; patrol needs --unit."""
    assert cli.main(["new-api-key", "--name", "terminal-7", "--role", "patrol", "--unit", PATROL_UNIT]) == 0
    out = capsys.readouterr().out
    key = re.search(r"store it now\): (\S+)", out)[1]
    assert key not in KEYS.values() and len(key) > 30
    assert f'key_sha256: "{sha256_hex(key)}"' in out and f"unit: {PATROL_UNIT}" in out
    assert cli.main(["new-api-key", "--name", "t", "--role", "patrol"]) == 2
    assert "--unit" in capsys.readouterr().err


def test_production_refuses_the_demo_credentials_and_a_missing_secret(demo_config, database_url):
    """In production the README's demo keys and passwords, or no JWT secret, stop the API from being built."""
    from api.app import create_app
    from api.auth import demo_credentials

    assert sorted(demo_credentials(demo_config.access)) == sorted(
        ["console-wall", "duty", "chief", "admin", "audit", "ebike1"]
        + [f"terminal-{unit.id}" for unit in demo_config.units]
    )
    with pytest.raises(ValueError, match="demo credentials"):
        create_app(config=demo_config, database_url=database_url, jwt_secret=JWT_SECRET, production=True)
    with pytest.raises(ValueError, match="WATCHPOST_JWT_SECRET"):
        create_app(config=demo_config, database_url=database_url, production=True)
    create_app(config=demo_config, database_url=database_url, jwt_secret=JWT_SECRET)  # development: fine
