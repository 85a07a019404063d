"""Microsoft's Python Graph SDK (msgraph-sdk) against the emulator, unchanged but for the base URL.

Run by the Rust test `msgraph::msgraph_python_sdk_lists_pages_gets_and_fails_like_graph`
(which says what to install when msgraph-sdk is missing). Inputs come from environment variables:
EMU_BASE (https://localhost:PORT), EMU_CA (PEM file of the emulator's CA), EMU_TOKEN (a Graph
access token the emulator issued for a customer tenant). Prints one JSON line with what it saw.
"""

import asyncio
import json
import os
import ssl
import sys
import time
from urllib.parse import urlparse

import httpx
from azure.core.credentials import AccessToken
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph._version import VERSION
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.user import User
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from msgraph_core import GraphClientFactory


class EmulatorToken:
    """An azure.core TokenCredential that hands out a token obtained from the emulator."""

    def __init__(self, token):
        self._token = token

    def get_token(self, *scopes, **kwargs):
        return AccessToken(self._token, int(time.time()) + 3600)


def client_for(base, ca, token):
    host = urlparse(base).hostname
    auth = AzureIdentityAuthenticationProvider(
        EmulatorToken(token),
        scopes=["https://graph.microsoft.com/.default"],
        allowed_hosts=[host],
    )
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(
            base_url=base + "/graph/v1.0",
            verify=ssl.create_default_context(cafile=ca),
        )
    )
    return GraphServiceClient(request_adapter=GraphRequestAdapter(auth, client=http))


async def run(client):
    seen = {"sdk": VERSION}

    config = RequestConfiguration(
        query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(top=2)
    )
    page = await client.users.get(request_configuration=config)
    upns, pages = [], 0
    while page is not None:
        pages += 1
        upns.extend(u.user_principal_name for u in page.value)
        if not page.odata_next_link:
            break
        page = await client.users.with_url(page.odata_next_link).get()
    seen["pages"] = pages
    seen["users"] = upns

    first = (await client.users.get()).value[0]
    one = await client.users.by_user_id(first.id).get()
    seen["user_by_id"] = {"id": one.id, "upn": one.user_principal_name}

    groups = await client.groups.get()
    all_users = next(g for g in groups.value if g.display_name == "All Users")
    members = await client.groups.by_group_id(all_users.id).members.get()
    seen["members_are_users"] = all(isinstance(m, User) for m in members.value)
    seen["member_count"] = len(members.value)

    try:
        await client.users.by_user_id("00000000-0000-0000-0000-000000000000").get()
        seen["error"] = None
    except ODataError as e:
        seen["error"] = {
            "status": e.response_status_code,
            "code": e.error.code,
            "message": e.error.message,
        }
    return seen


def main():
    client = client_for(os.environ["EMU_BASE"], os.environ["EMU_CA"], os.environ["EMU_TOKEN"])
    print(json.dumps(asyncio.run(run(client))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
