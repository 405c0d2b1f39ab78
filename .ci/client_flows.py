"""The README's main flows, through the Python client generated from openapi.yaml.

Called by .ci/clients with a fresh server listening (no SMTP relay: mail lands in DATA_DIR/outbox
as .eml files) and the generated package `enlace_client` on PYTHONPATH. Every call goes through
the generated code: its request bodies are the generated models, and every answer is parsed into
the model the document promises (an answer the document does not describe raises). Steps:

  staff sign-in (a 15-minute token) and an API key for the script; create an interest; a public
  signup for it, confirmed with the token from the confirmation mail; a person added by staff
  with recorded consent; the change feed, page by page; a segment (and its preview); a newsletter
  draft for it, previewed and test-sent (the test copy is read from the outbox); the send, with an
  Idempotency-Key, repeated as a script would after a lost answer; its progress until `sent`, and
  the messages in the outbox; the export, as CSV and as NDJSON.

Usage: client_flows.py BASE_URL DATA_DIR ADMIN_EMAIL ADMIN_PASSWORD
Prints one line per step, and no secret.
"""

import email
import email.policy
import glob
import json
import os
import re
import sys
import time
import uuid
from http import HTTPStatus

from enlace_client import AuthenticatedClient, Client
from enlace_client.api.public import confirm_json, subscribe
from enlace_client.api.staff import (
    create_api_key,
    create_interest,
    create_newsletter,
    create_segment,
    export_subscribers,
    get_newsletter,
    get_subscriber,
    issue_token,
    list_subscribers,
    preview_newsletter,
    preview_segment,
    send_newsletter,
    test_newsletter,
    upsert_subscriber,
)
from enlace_client.models import (
    BilingualText,
    ConfirmRequest,
    ConfirmResultStatus,
    CreateApiKeyBody,
    CreateInterestBody,
    CreateSegmentBody,
    IssueTokenBody,
    ExportSubscribersFormat,
    Language,
    NewsletterContent,
    NewsletterDraft,
    NewsletterStatus,
    NewsletterVariants,
    PreviewNewsletterBody,
    PreviewSegmentBody,
    Scope,
    SegmentFilterAll,
    SegmentFilterInterest,
    SegmentFilterLanguage,
    SegmentFilterEmailDomain,
    SegmentFilterNot,
    SubscribeAccepted,
    SubscribeRequest,
    SubscriberStatus,
    TestNewsletterBody,
    UpsertSubscriberBody,
    UpsertSubscriberBodyConsentType1,
)
from enlace_client.types import Response

BASE, DATA_DIR, ADMIN_EMAIL, ADMIN_PASSWORD = sys.argv[1:5]
started = time.monotonic()


def step(message):
    print(f"  [{time.monotonic() - started:5.1f}s] {message}", flush=True)


def expect(response: Response, status: int, model=None):
    """The answer has STATUS and was parsed into MODEL; returns the parsed value."""
    if response.status_code != status:
        sys.exit(f"client flows: expected {status}, got {response.status_code}: {response.content[:500]!r}")
    if model is not None and not isinstance(response.parsed, model):
        sys.exit(f"client flows: expected a {model.__name__}, parsed {type(response.parsed).__name__}")
    return response.parsed


def outbox():
    """Every message in the outbox, oldest first, as (subject, to, text of all parts)."""
    messages = []
    for path in sorted(glob.glob(os.path.join(DATA_DIR, "outbox", "*.eml")), key=os.path.getmtime):
        with open(path, "rb") as f:
            message = email.message_from_binary_file(f, policy=email.policy.default)
        text = "\n".join(
            part.get_content() for part in message.walk() if part.get_content_maintype() == "text"
        )
        messages.append((str(message["Subject"]), str(message["To"]), text))
    return messages


def wait_for_mail(to, matches, what):
    """The first message to TO for which MATCHES(subject, text) holds (waits for the mail worker)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for subject, recipient, text in outbox():
            if to in recipient and matches(subject, text):
                return subject, text
        time.sleep(0.1)
    sys.exit(f"client flows: no {what} for {to} in the outbox after 30 s")


public = Client(base_url=BASE, raise_on_unexpected_status=True, timeout=30)

# Staff sign-in: a short-lived token for the admin; with it, an API key for the script.
signed_in = expect(
    issue_token.sync_detailed(client=public, body=IssueTokenBody(email=ADMIN_EMAIL, password=ADMIN_PASSWORD)),
    200,
)
admin = AuthenticatedClient(base_url=BASE, token=signed_in.access_token, raise_on_unexpected_status=True, timeout=30)
step(f"staff sign-in: a {signed_in.token_type} token for {signed_in.expires_in} s")
scopes = [Scope.SUBSCRIBERSREAD, Scope.SUBSCRIBERSWRITE, Scope.NEWSLETTERSWRITE, Scope.NEWSLETTERSSEND, Scope.EXPORTSREAD]
made = expect(create_api_key.sync_detailed(client=admin, body=CreateApiKeyBody(name="client flows", scopes=scopes)), 201)
staff = AuthenticatedClient(base_url=BASE, token=made.key, raise_on_unexpected_status=True, timeout=30)
step(f"API key {made.prefix}… with {len(made.scopes)} scopes")

# An interest people can choose on the public form.
interest = expect(
    create_interest.sync_detailed(
        client=staff,
        body=CreateInterestBody(slug="housing", name=BilingualText(en="Housing", es="Vivienda")),
    ),
    201,
)
step(f"interest {interest.slug} created")

# A public signup, confirmed with the token from the confirmation mail.
signup = "ana@example.org"
expect(
    subscribe.sync_detailed(
        client=public,
        body=SubscribeRequest(email=signup, name="Ana", language=Language.ES, interests=["housing"], source="client flows"),
    ),
    202,
    SubscribeAccepted,
)
link = re.compile(re.escape(BASE) + r"/confirm/([A-Za-z0-9_.~%-]+)")
_, text = wait_for_mail(signup, lambda subject, text: link.search(text) is not None, "confirmation mail")
token = link.search(text).group(1)
confirmed = expect(confirm_json.sync_detailed(client=public, body=ConfirmRequest(token=token)), 200)
assert confirmed.status == ConfirmResultStatus.CONFIRMED, confirmed.status
again = expect(confirm_json.sync_detailed(client=public, body=ConfirmRequest(token=token)), 200)
assert again.status == ConfirmResultStatus.ALREADY_CONFIRMED, again.status
step(f"subscribed {signup} and confirmed with the token from the mail (again: {again.status.value})")

# A person added by staff, consent recorded; the same call again updates them.
person = UpsertSubscriberBody(
    email="luis@example.org",
    name="Luis",
    language=Language.ES,
    interests=["housing"],
    consent=UpsertSubscriberBodyConsentType1(mode="recorded", source="client flows", note="signed the sheet at a meeting"),
)
luis = expect(upsert_subscriber.sync_detailed(client=staff, body=person), 201)
assert luis.status == SubscriberStatus.CONFIRMED, luis.status
person.name = "Luis G."
updated = expect(upsert_subscriber.sync_detailed(client=staff, body=person), 200)
assert updated.id == luis.id and updated.name == "Luis G."
expect(get_subscriber.sync_detailed(str(luis.id), client=staff), 200)
step(f"upserted {luis.email}: created ({luis.status.value}), then updated")

# The change feed, one person a page: follow next_cursor while has_more.
seen, cursor, pages = [], None, 0
while True:
    kwargs = {"cursor": cursor} if cursor else {}
    page = expect(list_subscribers.sync_detailed(client=staff, limit=1, **kwargs), 200)
    seen += [s.email for s in page.data]
    pages += 1
    if not page.has_more:
        break
    cursor = page.next_cursor
assert sorted(seen) == sorted([signup, "luis@example.org"]), seen
step(f"change feed: {len(seen)} people in {pages} pages")

# A segment, and what it reaches.
spanish_housing = SegmentFilterAll(
    all_=[
        SegmentFilterInterest(interest="housing"),
        SegmentFilterLanguage(language=Language.ES),
        SegmentFilterNot(not_=SegmentFilterEmailDomain(email_domain="example.com")),
    ]
)
segment = expect(
    create_segment.sync_detailed(client=staff, body=CreateSegmentBody(name="Vivienda", filter_=spanish_housing)),
    201,
)
assert segment.count == 2, segment.count
preview = expect(preview_segment.sync_detailed(client=staff, body=PreviewSegmentBody(filter_=spanish_housing)), 200)
assert preview.count == 2 and len(preview.sample) == 2
step(f"segment {segment.name!r} reaches {segment.count}")

# A newsletter for it: draft, preview, test copy.
draft = NewsletterDraft(
    subject="Housing meeting on Saturday",
    html="<p>Hi {{ name or 'friend' }},</p><p>Join us on Saturday at 10:00.</p>",
    variants=NewsletterVariants(
        es=NewsletterContent(
            subject="Reunión de vivienda el sábado",
            html="<p>Hola {{ name or 'amiga, amigo' }}:</p><p>Te esperamos el sábado a las 10:00.</p>",
        )
    ),
    from_="Casa del Pueblo <news@example.org>",
    segment_id=segment.id,
)
newsletter = expect(create_newsletter.sync_detailed(client=staff, body=draft), 201)
assert newsletter.status == NewsletterStatus.DRAFT
shown = expect(
    preview_newsletter.sync_detailed(str(newsletter.id), client=staff, body=PreviewNewsletterBody(language=Language.ES)),
    200,
)
assert shown.subject == "Reunión de vivienda el sábado", shown.subject
queued = expect(
    test_newsletter.sync_detailed(
        str(newsletter.id), client=staff, body=TestNewsletterBody(to=["editor@example.org"], language=Language.ES)
    ),
    202,
)
assert queued.queued == 1
wait_for_mail("editor@example.org", lambda subject, text: subject == "[TEST] Reunión de vivienda el sábado", "test copy")
step(f"newsletter drafted, previewed ({shown.subject!r}) and test-sent")

# The send, with an Idempotency-Key; the same request again answers where the send stands.
key = str(uuid.uuid4())
sent = expect(send_newsletter.sync_detailed(str(newsletter.id), client=staff, idempotency_key=key), 202)
assert sent.status in (NewsletterStatus.SCHEDULED, NewsletterStatus.SENDING, NewsletterStatus.SENT), sent.status
repeat = expect(send_newsletter.sync_detailed(str(newsletter.id), client=staff, idempotency_key=key), 202)
assert repeat.id == newsletter.id
deadline = time.monotonic() + 60
while True:
    current = expect(get_newsletter.sync_detailed(str(newsletter.id), client=staff), 200)
    if current.status == NewsletterStatus.SENT:
        break
    if time.monotonic() > deadline or current.status in (NewsletterStatus.CANCELLED, NewsletterStatus.PAUSED):
        sys.exit(f"client flows: the send stands at {current.status.value} ({current.pause_reason})")
    time.sleep(0.2)
progress = current.progress
assert (progress.total, progress.sent, progress.failed, progress.pending) == (2, 2, 0, 0), progress.to_dict()
for to in (signup, "luis@example.org"):
    wait_for_mail(to, lambda subject, text: subject == "Reunión de vivienda el sábado", "newsletter")
step(f"sent: {progress.sent}/{progress.total}, both in the outbox (repeat answered {repeat.status.value})")

# The export, as CSV and as NDJSON.
csv_text = expect(export_subscribers.sync_detailed(client=staff), 200)
assert csv_text.splitlines()[0].startswith("id,email"), csv_text.splitlines()[0]
assert signup in csv_text and "luis@example.org" in csv_text
ndjson = export_subscribers.sync_detailed(client=staff, format_=ExportSubscribersFormat.NDJSON)
rows = [json.loads(line) for line in expect(ndjson, 200).splitlines() if line]
assert sorted(r["email"] for r in rows) == sorted([signup, "luis@example.org"]), rows
step(f"export: {len(csv_text.splitlines()) - 1} CSV rows, {len(rows)} NDJSON lines")
print(f"client flows: passed in {time.monotonic() - started:.1f} s")
