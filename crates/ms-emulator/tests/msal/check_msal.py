"""Microsoft's own client library against the emulator, unchanged but for the authority URL.

Run by the Rust test `msal::msal_python_redeems_refresh_tokens_for_partner_and_customer`
(skipped when python3 or msal is missing). Inputs come from environment variables:
EMU_BASE (https://localhost:PORT), EMU_CA (PEM file), EMU_CLIENT_ID, EMU_CLIENT_SECRET,
EMU_PARTNER (partner tenant id), EMU_CUSTOMER (customer tenant id), EMU_RT (a partner refresh token).
"""

import base64
import json
import os
import sys

import msal


def claims(jwt):
    payload = jwt.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))


def app_for(tenant):
    return msal.ConfidentialClientApplication(
        os.environ["EMU_CLIENT_ID"],
        client_credential=os.environ["EMU_CLIENT_SECRET"],
        authority="%s/%s" % (os.environ["EMU_BASE"], tenant),
        validate_authority=False,
        instance_discovery=False,
        verify=os.environ["EMU_CA"],
    )


def main():
    rt = os.environ["EMU_RT"]
    partner = os.environ["EMU_PARTNER"]
    customer = os.environ["EMU_CUSTOMER"]

    pc = app_for(partner).acquire_token_by_refresh_token(
        rt, scopes=["https://api.partnercenter.microsoft.com/.default"]
    )
    if "access_token" not in pc:
        print("partner-center token failed: %s" % pc, file=sys.stderr)
        return 1
    c = claims(pc["access_token"])
    assert c["aud"] == "https://api.partnercenter.microsoft.com", c
    assert c["tid"] == partner, c
    assert "mfa" in c["amr"], c

    graph = app_for(customer).acquire_token_by_refresh_token(
        pc.get("refresh_token", rt), scopes=["https://graph.microsoft.com/.default"]
    )
    if "access_token" not in graph:
        print("customer graph token failed: %s" % graph, file=sys.stderr)
        return 1
    c = claims(graph["access_token"])
    assert c["aud"] == "https://graph.microsoft.com", c
    assert c["tid"] == customer, c

    bad = app_for(partner).acquire_token_by_refresh_token(
        "0.Agarbage" + "x" * 60, scopes=["https://api.partnercenter.microsoft.com/.default"]
    )
    assert bad.get("error") == "invalid_grant", bad
    assert 70000 in bad.get("error_codes", []), bad
    print("msal %s OK" % msal.__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
