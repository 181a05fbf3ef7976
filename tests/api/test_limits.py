"""Request size and rate limits: a clear 413 or 429 with the reason, and the API still serves everyone else."""

from __future__ import annotations

import httpx

from tests.api.conftest import PASSWORD
from watchpost.config import ApiLimits


def test_a_body_over_the_limit_is_refused_with_413_and_the_limit(start_api, api_config):
    """A 5 KB body against a 4 KB limit is 413 naming both sizes; a chunked one is refused too."""
    api = start_api(
        config=api_config.model_copy(update={"api": ApiLimits(max_body_bytes=4096, requests_per_s=1000, burst=1000)})
    )
    c = api.client("operator")
    r = c.post("/alerts", json={"type": "theft", "site_id": "lotus", "note": "x" * 5000})
    assert r.status_code == 413 and "4096" in r.json()["detail"]

    def chunks():
        for _ in range(10):
            yield b"x" * 1000

    r = c.post("/alerts", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert c.post("/alerts", json={"type": "theft", "site_id": "lotus", "note": "ok"}).status_code == 201


def test_a_client_over_its_rate_gets_429_with_retry_after_and_others_are_served(start_api, api_config):
    """Burst 5 at 1/s: the 6th request of one key is 429 with Retry-After; another key is still served."""
    api = start_api(config=api_config.model_copy(update={"api": ApiLimits(requests_per_s=1, burst=5)}))
    c = api.client("operator")
    codes = [c.get("/alert-types").status_code for _ in range(6)]
    assert codes[:5] == [200] * 5 and codes[5] == 429
    r = c.get("/alert-types")
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and "too many requests" in r.json()["detail"]
    assert api.client("supervisor").get("/alert-types").status_code == 200


def test_password_guessing_is_slowed_per_name_and_address(start_api, api_config):
    """After 3 attempts a minute for one name, the 4th is 429 even with the right password; another name is not."""
    limits = ApiLimits(sign_ins_per_minute=3, requests_per_s=1000, burst=1000)
    api = start_api(config=api_config.model_copy(update={"api": limits}))
    with httpx.Client(base_url=api.url) as c:
        for _ in range(3):
            assert c.post("/auth/token", data={"username": "alice", "password": "wrong"}).status_code == 401
        r = c.post("/auth/token", data={"username": "alice", "password": PASSWORD})
        assert r.status_code == 429 and "sign-in" in r.json()["detail"]
        assert c.post("/auth/token", data={"username": "rider", "password": PASSWORD}).status_code == 200
