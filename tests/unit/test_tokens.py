"""Bearer tokens: expiry, forgery, algorithm pinning and roles."""

import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from pydantic import ValidationError

from accounts.tokens import Principal, Role, issue_token, read_token
from core.errors import Unauthorized
from core.settings import Settings

SECRET = "s" * 40
NOW = datetime.now(UTC)


def test_round_trip() -> None:
    who = Principal(uuid.uuid4(), Role.DRIVER)
    token = issue_token(who, secret=SECRET, algorithm="HS256", ttl_s=60, now=datetime.now(UTC))
    assert read_token(token, secret=SECRET, algorithm="HS256") == who


@pytest.mark.parametrize("token", [
    issue_token(Principal(uuid.uuid4(), Role.RIDER), secret=SECRET, algorithm="HS256", ttl_s=60,
                now=NOW - timedelta(hours=1)),                                    # expired
    issue_token(Principal(uuid.uuid4(), Role.RIDER), secret="x" * 40, algorithm="HS256",
                ttl_s=60, now=NOW),                                               # forged
    jwt.encode({"sub": str(uuid.uuid4()), "role": "rider",
                "exp": int(NOW.timestamp()) + 60}, "", algorithm="none"),       # alg none
    jwt.encode({"sub": str(uuid.uuid4()), "role": "rider"}, SECRET, algorithm="HS256"),  # no exp
    jwt.encode({"sub": "not-a-uuid", "role": "rider", "exp": int(NOW.timestamp()) + 60}, SECRET,
               algorithm="HS256"),
    jwt.encode({"sub": str(uuid.uuid4()), "role": "king", "exp": int(NOW.timestamp()) + 60},
               SECRET, algorithm="HS256"),
    "garbage",
])
def test_bad_tokens_are_refused(token: str) -> None:
    with pytest.raises(Unauthorized):
        read_token(token, secret=SECRET, algorithm="HS256")


def test_production_refuses_the_default_secret() -> None:
    with pytest.raises(ValidationError):
        Settings(environment="production")
    assert Settings(environment="production", jwt_secret="k" * 32).environment == "production"


def test_a_remembered_token_still_expires() -> None:
    who = Principal(uuid.uuid4(), Role.DRIVER)
    token = issue_token(who, secret=SECRET, algorithm="HS256", ttl_s=2,
                        now=datetime.now(UTC) - timedelta(seconds=1))
    assert read_token(token, secret=SECRET, algorithm="HS256") == who   # verified and cached
    real_time = time.time
    try:
        time.time = lambda: real_time() + 5  # type: ignore[assignment]
        with pytest.raises(Unauthorized):
            read_token(token, secret=SECRET, algorithm="HS256")
    finally:
        time.time = real_time  # type: ignore[assignment]
