"""Partner Center through samgate with plain `requests`: every customer, page after page.

    pip install requests
    SAMGATE_URL=http://127.0.0.1:8080 SAMGATE_API_KEY=sgk_... SAMGATE_PARTNER=<partner tenant id> \
    python3 examples/partner_center_paging.py

Each page's `links.next.uri` points at samgate (absolute URL) and carries the continuation token
in `links.next.headers`; send those headers with the next request. A samgate error is JSON with
`code` (also in the `x-samgate-error` header) and `message`. Prints one JSON object.
"""

import json
import os
import sys

import requests


def customers(samgate, key, partner, page_size=1):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    url = f"{samgate}/api/v1/partners/{partner}/partner-center/v1/customers?size={page_size}"
    headers = {}
    pages, names = 0, []
    while url:
        response = session.get(url, headers=headers, timeout=30)
        if response.status_code != 200:
            raise RuntimeError(
                f"{response.status_code} {response.headers.get('x-samgate-error')}: {response.text}"
            )
        page = response.json()
        pages += 1
        names.extend(c["companyProfile"]["companyName"] for c in page.get("items", []))
        following = page.get("links", {}).get("next")
        url = following["uri"] if following else None
        headers = {h["key"]: h["value"] for h in (following or {}).get("headers", [])}
    return pages, names


def main():
    env = os.environ
    samgate = env["SAMGATE_URL"].rstrip("/")
    pages, names = customers(samgate, env["SAMGATE_API_KEY"], env["SAMGATE_PARTNER"])
    # A samgate error: an unknown partner.
    refused = requests.get(
        f"{samgate}/api/v1/partners/00000000-0000-4000-8000-000000000000/partner-center/v1/customers",
        headers={"Authorization": f"Bearer {env['SAMGATE_API_KEY']}"},
        timeout=30,
    )
    print(
        json.dumps(
            {
                "pages": pages,
                "customers": names,
                "error": {
                    "status": refused.status_code,
                    "header": refused.headers.get("x-samgate-error"),
                    "code": refused.json().get("code"),
                },
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
