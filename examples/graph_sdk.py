"""Microsoft Graph through samgate with Microsoft's own Python SDK (msgraph-sdk), unchanged.

    pip install msgraph-sdk
    SAMGATE_URL=http://127.0.0.1:8080 SAMGATE_API_KEY=sgk_... \
    SAMGATE_PARTNER=<partner tenant id> SAMGATE_CUSTOMER=<customer tenant id> \
    python3 examples/graph_sdk.py

The SDK is pointed at samgate's Graph route for one customer of one partner and given the API
key as its bearer token, for samgate's host only. It lists users, pages through them with the
SDK's own PageIterator (samgate's answers carry @odata.nextLink pointing back at samgate), reads
one user, and shows that errors (Microsoft's and samgate's own) arrive as the SDK's ODataError.
Prints one JSON object with what it saw. SAMGATE_OTHER_CUSTOMER, when set, names a customer whose
calls samgate refuses itself (for example one where the app is not consented).
"""

import asyncio
import json
import os
import sys
from urllib.parse import urlparse

import httpx
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.user import User
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from msgraph_core import GraphClientFactory, PageIterator


class SamgateKey(AccessTokenProvider):
    """Hands the samgate API key to the SDK, and only for samgate's own host."""

    def __init__(self, key, host):
        self._key = key
        self._hosts = AllowedHostsValidator([host])

    async def get_authorization_token(self, uri, additional_authentication_context=None):
        return self._key if self._hosts.is_url_host_valid(uri) else ""

    def get_allowed_hosts_validator(self):
        return self._hosts


def graph_client(samgate, key, partner, customer):
    route = f"{samgate}/api/v1/partners/{partner}/customers/{customer}/graph/v1.0"
    auth = BaseBearerTokenAuthenticationProvider(SamgateKey(key, urlparse(samgate).hostname))
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(base_url=route, timeout=30)
    )
    adapter = GraphRequestAdapter(auth, client=http)
    return GraphServiceClient(request_adapter=adapter), adapter


def odata_error(e):
    return {"status": e.response_status_code, "code": e.error.code, "message": e.error.message}


async def run(samgate, key, partner, customer, other_customer):
    client, adapter = graph_client(samgate, key, partner, customer)
    seen = {}

    # One page of one user: the answer's nextLink points at samgate.
    config = RequestConfiguration(
        query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(top=1)
    )
    first = await client.users.get(request_configuration=config)
    seen["next_link"] = first.odata_next_link

    # Every user, page after page, with the SDK's own iterator.
    upns = []
    iterator = PageIterator(first, adapter)

    def collect(user):
        upns.append(user.user_principal_name)
        return True

    await iterator.iterate(collect)
    seen["users"] = upns

    one = await client.users.by_user_id(first.value[0].id).get()
    seen["user_by_id"] = {"id": one.id, "upn": one.user_principal_name, "is_user": isinstance(one, User)}

    try:
        await client.users.by_user_id("00000000-0000-0000-0000-000000000000").get()
        seen["microsoft_error"] = None
    except ODataError as e:
        seen["microsoft_error"] = odata_error(e)

    if other_customer:
        refused, _ = graph_client(samgate, key, partner, other_customer)
        try:
            await refused.users.get()
            seen["samgate_error"] = None
        except ODataError as e:
            seen["samgate_error"] = odata_error(e)
    return seen


def main():
    env = os.environ
    seen = asyncio.run(
        run(
            env["SAMGATE_URL"].rstrip("/"),
            env["SAMGATE_API_KEY"],
            env["SAMGATE_PARTNER"],
            env["SAMGATE_CUSTOMER"],
            env.get("SAMGATE_OTHER_CUSTOMER"),
        )
    )
    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
