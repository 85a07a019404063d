#!/usr/bin/env python3
"""Completes one partner consent over HTTP: invitation link -> emulated Microsoft sign-in, MFA and
consent pages -> samgate's success page. Usage: consent.py LINK UPN PASSWORD. Exits non-zero on
failure. (The approach of the session's consent driver, with checks.)"""
import html
import re
import sys

import requests

link, upn, pw = sys.argv[1], sys.argv[2], sys.argv[3]
s = requests.Session()
r = s.get(link)
assert r.status_code == 200, f"invitation page: {r.status_code}"
token = link.rsplit("/", 1)[1]
base = link.split("/consent/")[0]
r = s.post(f"{base}/consent/{token}/start", allow_redirects=False)
assert r.status_code == 303, f"consent start: {r.status_code}"
r = s.get(r.headers["location"], allow_redirects=True)


def form(page):
    ctx = html.unescape(re.search(r'name="ctx" value="([^"]+)"', page).group(1))
    action = re.search(r'action="([^"]+)"', page).group(1)
    return ctx, action


for _ in range(8):
    page = r.text
    if r.url.startswith(base):
        break
    ctx, action = form(page)
    origin = re.match(r"(https?://[^/]+)", r.url).group(1)
    if 'id="i0116"' in page:
        data = {"ctx": ctx, "login": upn, "passwd": pw}
    elif "idTxtBx_SAOTCC_OTC" in page:
        code = re.search(r"emulator-mfa-hint[^>]*>.*?<b>(\d+)</b>", page, re.S).group(1)
        data = {"ctx": ctx, "otc": code, "action": "verify"}
    elif "idBtn_Accept" in page:
        data = {"ctx": ctx, "decision": "accept"}
    elif "emulator-account-tile" in page:
        data = {"ctx": ctx, "action": "other"}
    else:
        sys.exit("unexpected page: " + page[:500])
    r = s.post(origin + action, data=data, allow_redirects=True)
if r.status_code != 200 or not r.url.startswith(base):
    sys.exit(f"consent did not complete: {r.status_code} {r.url}")
print("consent complete:", re.sub(r"\s+", " ", re.sub("<[^>]+>", " ", r.text)).strip()[:200])
