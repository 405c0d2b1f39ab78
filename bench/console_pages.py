#!/usr/bin/env python3
"""Times the staff console's pages as a signed-in member's browser asks for them.

    bench/console_pages.py BASE EMAIL PASSWORD REPS OUT_TSV BACKEND

BASE is the console's root (http://127.0.0.1:PORT/admin). Signs in through the sign-in form
(its anti-forgery cookie and field, then the session cookie), finds a later page of the list
(the list's own "next page" link) and a person (the first one the list shows), then asks for
every page below REPS times, one after the other on one kept-alive connection, after three
warm-up requests each, and records the time from sending the request to having read the whole
answer. Writes one line per page to OUT_TSV: backend, page, p50, p95, p99 (ms), people shown.
Exits non-zero when a page does not answer 200. Standard library only.
"""

import html
import http.client
import re
import statistics
import sys
import time
import urllib.parse

BASE, EMAIL, PASSWORD, REPS, OUT, BACKEND = sys.argv[1:7]
REPS = int(REPS)
url = urllib.parse.urlsplit(BASE)
PREFIX = url.path.rstrip("/")
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
cookies = {}


def request(method, path, body=None):
    headers = {"Accept-Language": "en"}
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        body = urllib.parse.urlencode(body)
    start = time.perf_counter()
    conn.request(method, PREFIX + path, body=body, headers=headers)
    response = conn.getresponse()
    text = response.read().decode("utf-8")
    elapsed = (time.perf_counter() - start) * 1000
    for line in response.headers.get_all("Set-Cookie") or []:
        name, _, rest = line.partition("=")
        value = rest.split(";", 1)[0]
        if "Max-Age=0" in line or not value:
            cookies.pop(name, None)
        else:
            cookies[name] = value
    return response.status, text, elapsed, response.headers


def field(page, name):
    tag = re.search(r'<input[^>]*name="%s"[^>]*>' % re.escape(name), page).group(0)
    return html.unescape(re.search(r'value="([^"]*)"', tag).group(1))


def people_shown(page):
    return page.count('<th scope="row"><a href=')


status, page, _, _ = request("GET", "/sign-in")
assert status == 200, f"sign-in page: {status}"
status, page, _, headers = request(
    "POST", "/sign-in", {"email": EMAIL, "password": PASSWORD, "csrf": field(page, "csrf")}
)
assert status in (302, 303) and "enlace_console" in cookies, f"signing in: {status} {page[:300]}"

status, first, _, _ = request("GET", "/people")
assert status == 200, f"people: {status}"
nxt = re.search(r'href="([^"]*)" rel="next"', first)
assert nxt, "the first page of the list has no next-page link"
later = html.unescape(nxt.group(1))[len(PREFIX):]
person = re.search(r'<th scope="row"><a href="([^"]*)"', first)
person = html.unescape(person.group(1))[len(PREFIX):]
# A full address that exists, from the second page (not the newest person).
_, second, _, _ = request("GET", later)
full = re.findall(r'<th scope="row"><a href="[^"]*">([^<]*)</a>', second)[7]
full = html.unescape(full)

q = urllib.parse.quote
PAGES = [
    ("dashboard", "/"),
    ("people: first page", "/people"),
    ("people: a later page (cursor link)", later),
    ("address: prefix `user12345`", "/people?email=user12345"),
    ("address: full, existing", "/people?email=" + q(full)),
    ("address: full, nobody", "/people?email=" + q("nobody.here@example.org")),
    ("address: part `@correo.mx`", "/people?email=" + q("@correo.mx")),
    ("name: common `garcía`", "/people?name=" + q("garcía")),
    ("name: rare `xóchitl`", "/people?name=" + q("xóchitl")),
    ("status: unsubscribed", "/people?status=unsubscribed"),
    ("status: complained (rare)", "/people?status=complained"),
    ("interest: volunteers", "/people?interest=volunteers"),
    ("interest: organizers (rare)", "/people?interest=organizers"),
    ("language: es", "/people?language=es"),
    ("field: city = Yuma", "/people?field=city&value=Yuma"),
    ("field: city = Ajo (rare)", "/people?field=city&value=Ajo"),
    ("combined: es + news + Phoenix + confirmed",
     "/people?language=es&interest=news&field=city&value=Phoenix&status=confirmed"),
    ("a person's page", person),
    ("interests list", "/interests"),
    ("imports list", "/imports"),
]

failed = False
with open(OUT, "a") as out:
    for name, path in PAGES:
        times = []
        shown = 0
        for rep in range(REPS + 3):
            status, page, ms, _ = request("GET", path)
            if status != 200:
                print(f"{BACKEND} {name}: HTTP {status} for {path}: {page[:300]}", file=sys.stderr)
                failed = True
                break
            shown = people_shown(page)
            if rep >= 3:
                times.append(ms)
        if not times:
            continue
        cuts = statistics.quantiles(times, n=100, method="inclusive")
        p50, p95, p99 = statistics.median(times), cuts[94], cuts[98]
        print(f"{BACKEND:>10} | {name:<44} | p50 {p50:8.1f} | p95 {p95:8.1f} | p99 {p99:8.1f} ms | {shown} shown",
              flush=True)
        out.write(f"{BACKEND}\t{name}\t{p50:.1f}\t{p95:.1f}\t{p99:.1f}\t{shown}\n")
sys.exit(1 if failed else 0)
