"""Cognito user pools: an app client's id by its name.

The template cannot give the functions the page's app client id (the client's callback URL is the HTTP function's
own URL: a cycle), so they find it by name in the pool that issues their tokens, once per process.
"""

from __future__ import annotations

from functools import lru_cache

from ragline.errors import ConfigError
from ragline.providers.aws.clients import client


def pool_of(issuer: str) -> str:
    """The user pool id of a Cognito issuer URL (``https://cognito-idp.REGION.amazonaws.com/POOL``)."""
    return issuer.rstrip("/").rsplit("/", 1)[-1]


@lru_cache(maxsize=8)
def app_client_id(pool: str, name: str, region: str | None = None, endpoint_url: str | None = None) -> str:
    """The id of the pool's app client called ``name``."""
    idp = client("cognito-idp", region or pool.split("_", maxsplit=1)[0], endpoint_url)
    for page in idp.get_paginator("list_user_pool_clients").paginate(UserPoolId=pool, MaxResults=60):
        for found in page["UserPoolClients"]:
            if found["ClientName"] == name:
                return str(found["ClientId"])
    raise ConfigError(f"the user pool {pool} has no app client named {name!r}")
