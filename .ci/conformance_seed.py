"""Seeds a fresh Enlace server for the conformance run and writes the schemathesis configuration.

Called by .ci/conformance with the server already listening. Signs in as the admin the script
created, makes the API key the run uses, creates a little of everything (interests, fields,
subscribers, a segment, newsletters, an import, a webhook, a second staff member), collects real
confirmation, unsubscribe and preferences tokens from the .eml outbox, and writes a
schemathesis.toml in which each path parameter is sometimes a real object's id and otherwise
whatever schemathesis makes up.

Objects that an operation destroys are separate from the ones other operations read: the DELETE
of subscribers, interests, fields, segments, newsletters and webhooks gets its own victims, so
the order in which schemathesis runs the operations does not matter.

Usage: conformance_seed.py BASE_URL DATA_DIR ADMIN_EMAIL ADMIN_PASSWORD METRICS_TOKEN
       POSTMARK_TOKEN OUT_TOML
Only the standard library; prints no secret.
"""

import base64
import email
import email.policy
import glob
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request

BASE, DATA_DIR, ADMIN_EMAIL, ADMIN_PASSWORD, METRICS_TOKEN, POSTMARK_TOKEN, OUT = sys.argv[1:8]


def call(method, path, body=None, token=None, content_type="application/json", expect=(200, 201, 202, 204)):
    data = None
    headers = {"Accept": "application/json"}
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = content_type
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(BASE + path, method=method, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    if status not in expect:
        sys.exit(f"seed: {method} {path} answered {status}: {raw[:500]!r}")
    return json.loads(raw) if raw and raw[:1] in (b"{", b"[") else None


def outbox_messages():
    messages = []
    for path in sorted(glob.glob(os.path.join(DATA_DIR, "outbox", "*.eml"))):
        with open(path, "rb") as f:
            messages.append(email.message_from_binary_file(f, policy=email.policy.default))
    return messages


def message_text(message):
    parts = []
    for part in message.walk():
        if part.get_content_maintype() == "text":
            parts.append(part.get_content())
    return "\n".join(parts) + "\n" + str(message.get("List-Unsubscribe", ""))


def wait_for_link(address, kind, seen=()):
    """The token of the newest `/KIND/TOKEN` link in a message to ADDRESS (waits for the worker)."""
    pattern = re.compile(re.escape(BASE) + "/" + kind + r"/([A-Za-z0-9_.~%-]+)")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for message in reversed(outbox_messages()):
            if address not in str(message.get("To", "")):
                continue
            for token in pattern.findall(message_text(message)):
                if token not in seen:
                    return token
        time.sleep(0.2)
    sys.exit(f"seed: no /{kind}/ link reached the outbox in 30 s")


# Staff: the admin's short-lived token (staff-only operations), the key for everything else.
jwt = call("POST", "/api/v1/auth/token", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})["access_token"]
all_scopes = [
    "subscribers:read",
    "subscribers:write",
    "newsletters:write",
    "newsletters:send",
    "exports:read",
    "events:write",
    "webhooks:write",
]
key = call("POST", "/api/v1/api-keys", {"name": "conformance run", "scopes": all_scopes}, jwt)
spare_key = call("POST", "/api/v1/api-keys", {"name": "conformance spare", "scopes": ["subscribers:read"]}, jwt)
me = next(s for s in call("GET", "/api/v1/staff", token=jwt)["data"] if s["email"] == ADMIN_EMAIL)
editor = call(
    "POST", "/api/v1/staff", {"email": "editor@example.org", "role": "editor", "password": "an editor password"}, jwt
)
K = key["key"]

# Configuration: interests and fields (one of each to keep, one to delete), among them the ones
# openapi.yaml's examples name (volunteering, housing, home_city).
interests = [("news", "News", "Noticias"), ("events", "Events", "Eventos"),
             ("volunteering", "Volunteering", "Voluntariado"), ("housing", "Housing", "Vivienda")]
for slug, en, es in interests + [("gone", "Gone", "Ido")]:
    call("POST", "/api/v1/interests", {"slug": slug, "name": {"en": en, "es": es}}, K)
call("POST", "/api/v1/fields", {"key": "city", "type": "text", "public": True}, K)
call("POST", "/api/v1/fields", {"key": "home_city", "type": "text", "public": True}, K)
call("POST", "/api/v1/fields", {"key": "size", "type": "one_of", "allowed_values": ["s", "m", "l"]}, K)
call("POST", "/api/v1/fields", {"key": "obsolete", "type": "number"}, K)

# People: confirmed at once by staff (one to keep, one to erase), and two public signups.
recorded = {"mode": "recorded", "source": "conformance", "note": "agreed at a table"}
keeper = call(
    "POST",
    "/api/v1/subscribers",
    {"email": "ana@example.org", "name": "Ana", "language": "es", "interests": ["news"],
     "attributes": {"city": "Phoenix"}, "consent": recorded},
    K,
)
victim = call("POST", "/api/v1/subscribers", {"email": "erase-me@example.org", "consent": recorded}, K)
call("POST", "/api/v1/subscribe", {"email": "luis@example.org", "language": "es", "interests": ["news"]})
call("POST", "/api/v1/subscribe", {"email": "pending@example.org", "language": "en"})
luis_confirm = wait_for_link("luis@example.org", "confirm")
call("POST", "/api/v1/confirm", {"token": luis_confirm})
unsubscribe_token = wait_for_link("luis@example.org", "unsubscribe")
preferences_token = wait_for_link("luis@example.org", "preferences")
pending_confirm = wait_for_link("pending@example.org", "confirm")

# Sending: segments, newsletters (a draft to edit, one to delete, one to send), an import.
segment = call("POST", "/api/v1/segments", {"name": "News readers", "filter": {"interest": "news"}}, K)
spare_segment = call("POST", "/api/v1/segments", {"name": "Spanish", "filter": {"language": "es"}}, K)
draft = {"subject": "Hello {{ name or 'friend' }}", "html": "<p>Hi {{ name or 'friend' }}</p>", "segment_id": segment["id"]}
newsletter = call("POST", "/api/v1/newsletters", draft, K)
to_send = call("POST", "/api/v1/newsletters", dict(draft, subject="To send"), K)
to_delete = call("POST", "/api/v1/newsletters", dict(draft, subject="To delete"), K)
# A newsletter in the public archive: published and sent (to nobody: its filter matches no one),
# so the archive's pages have one to show.
published = call("POST", "/api/v1/newsletters",
                 {"subject": "In the archive", "html": "<p>Hi {{ name or 'friend' }}</p>", "archived": True,
                  "filter": {"email_domain": "nobody.invalid"}}, K)
call("POST", f"/api/v1/newsletters/{published['id']}/send", None, K)
for _ in range(100):
    if call("GET", f"/api/v1/newsletters/{published['id']}", token=K)["status"] == "sent":
        break
    time.sleep(0.1)
else:
    sys.exit("seed: the archived newsletter was not sent within 10 s")
csv = b"email,name,city\nimported@example.org,Imported,Tucson\n"
imported = call(
    "POST",
    "/api/v1/imports?mode=consented&source=sheet&consent_note=signed%20the%20sheet",
    csv,
    K,
    content_type="text/csv",
)
# A documentation address (TEST-NET-1): accepted as public, and never reachable from the run.
hook = {"url": "https://127.0.0.1:9/enlace", "events": ["subscriber.confirmed"], "description": "kept"}
webhook = call("POST", "/api/v1/webhooks", hook, K)
spare_webhook = call("POST", "/api/v1/webhooks", dict(hook, description="spare"), K)

# A change-feed cursor this API gave out (the feed's first page).
change_cursor = call("GET", "/api/v1/subscribers?limit=1", token=K)["next_cursor"]

dictionaries = {
    "subscriber": [keeper["id"]],
    "interest_slug": [slug for slug, _, _ in interests],
    "change_cursor": [change_cursor],
    "erasable": [victim["id"]],
    "interest": ["news", "events"],
    "deletable_interest": ["gone"],
    "field": ["city", "size"],
    "deletable_field": ["obsolete"],
    "segment": [segment["id"]],
    "deletable_segment": [spare_segment["id"]],
    "newsletter": [newsletter["id"]],
    "newsletter_cursor": [newsletter["id"], to_send["id"]],
    "sendable": [to_send["id"]],
    "deletable_newsletter": [to_delete["id"]],
    "archived_newsletter": [published["id"]],
    "import": [imported["id"]],
    "webhook": [webhook["id"]],
    "deletable_webhook": [spare_webhook["id"]],
    # The admin's own id too: disabling or demoting oneself must be refused (409).
    "staff": [editor["id"], me["id"]],
    # Never the key the run itself uses.
    "api_key": [spare_key["id"]],
    "confirm_token": [pending_confirm, luis_confirm],
    "manage_token": [unsubscribe_token, preferences_token],
}

# Which dictionary feeds which operation's path parameter.
bindings = {
    "getSubscriber": ("id", "subscriber"),
    "updateSubscriber": ("id", "subscriber"),
    "subscriberData": ("id", "subscriber"),
    "eraseSubscriber": ("id", "erasable"),
    "getInterest": ("slug", "interest"),
    "updateInterest": ("slug", "interest"),
    "deleteInterest": ("slug", "deletable_interest"),
    "getField": ("key", "field"),
    "updateField": ("key", "field"),
    "deleteField": ("key", "deletable_field"),
    "getSegment": ("id", "segment"),
    "updateSegment": ("id", "segment"),
    "deleteSegment": ("id", "deletable_segment"),
    "getNewsletter": ("id", "newsletter"),
    "updateNewsletter": ("id", "newsletter"),
    "previewNewsletter": ("id", "newsletter"),
    "getNewsletterResults": ("id", "newsletter"),
    "testNewsletter": ("id", "newsletter"),
    "deleteNewsletter": ("id", "deletable_newsletter"),
    "sendNewsletter": ("id", "sendable"),
    "pauseNewsletter": ("id", "sendable"),
    "resumeNewsletter": ("id", "sendable"),
    "cancelNewsletter": ("id", "sendable"),
    # The draft, so that the published newsletter stays public for the archive's operations.
    "setNewsletterArchived": ("id", "newsletter"),
    "archivePage": ("id", "archived_newsletter"),
    "archiveContent": ("id", "archived_newsletter"),
    "getImport": ("id", "import"),
    "cancelImport": ("id", "import"),
    "getWebhook": ("id", "webhook"),
    "updateWebhook": ("id", "webhook"),
    "testWebhook": ("id", "webhook"),
    "rotateWebhookSecret": ("id", "webhook"),
    "listWebhookDeliveries": ("id", "webhook"),
    "deleteWebhook": ("id", "deletable_webhook"),
    "updateStaff": ("id", "staff"),
    "revokeApiKey": ("id", "api_key"),
    "confirmPage": ("token", "confirm_token"),
    "confirmForm": ("token", "confirm_token"),
    "renewConfirmation": ("token", "confirm_token"),
    "unsubscribePage": ("token", "manage_token"),
    "unsubscribe": ("token", "manage_token"),
    "preferencesPage": ("token", "manage_token"),
    "updatePreferences": ("token", "manage_token"),
}

# Rules openapi.yaml states in words because JSON Schema cannot (README, "API conformance"):
# a value that names a stored object must name one that exists, and a cursor must be one the
# API gave out. The generated values for those fields are drawn from this run's objects.
references = {
    "listSubscribers": [("query.cursor", "change_cursor")],
    "listNewsletters": [("query.cursor", "newsletter_cursor")],
    "exportSubscribers": [("query.segment_id", "segment")],
    "upsertSubscriber": [("body.interests[*]", "interest_slug")],
    "updateSubscriber": [("body.interests[*]", "interest_slug")],
    "subscribe": [("body.interests[*]", "interest_slug")],
    "updatePreferences": [("body.interests[*]", "interest_slug")],
    "createSegment": [("body.filter.interest", "interest_slug")],
    "updateSegment": [("body.filter.interest", "interest_slug")],
    "previewSegment": [("body.filter.interest", "interest_slug")],
    "countSegment": [("body.filter.interest", "interest_slug")],
    "createNewsletter": [("body.segment_id", "segment")],
    "updateNewsletter": [("body.segment_id", "segment")],
    "previewNewsletter": [("body.subscriber_id", "subscriber")],
}

# The exceptions: operations whose schema-valid requests may still be refused with 422 for a
# rule that depends on more than the request, each with its reason (README, "API conformance").
refused_though_valid = {
    # 1. A value that names a stored object must name one that exists, in the state it is in
    #    now (an interest that is public, an attribute of a declared field and of its type), and
    #    a cursor must be one the API gave out. Generated values are drawn from this run's
    #    objects where schemathesis allows it (above), but its coverage phase makes up its own.
    "listSubscribers": "a cursor must be one the API gave out",
    "listNewsletters": "a cursor must be the id of a newsletter on the list",
    "exportSubscribers": "segment_id must name a saved segment",
    "upsertSubscriber": "interests and attributes must name declared ones, of their type",
    "updateSubscriber": "interests and attributes must name declared ones, of their type",
    "subscribe": "interests must be public ones, attributes declared public fields",
    "updatePreferences": "interests must be public or already the subscriber's",
    "createSegment": "an attribute condition's value must suit the field's declared type",
    "updateSegment": "an attribute condition's value must suit the field's declared type",
    "previewSegment": "an attribute condition's value must suit the field's declared type",
    "countSegment": "an attribute condition's value must suit the field's declared type",
    "previewNewsletter": "subscriber_id must name a subscriber on the list",
    # 2. A syntax JSON Schema cannot state exactly: an RFC 5322 mailbox (`from`, `reply_to`,
    #    with the DKIM domain rule), a template that compiles, a CSV file whose header matches
    #    the declared fields and the `map` parameters.
    "createNewsletter": "from/reply_to must parse as mailboxes; the templates must compile",
    "updateNewsletter": "from/reply_to must parse as mailboxes; the templates must compile",
    "createImport": "the file's columns must match the declared fields and the map",
    # 3. A moving window: send_at must lie between now and a year from now.
    "sendNewsletter": "send_at must be in the coming year",
    # 4. The current password must be the account's: generated data never has it.
    "changeOwnPassword": "the current password must be right",
}

# Operations that only staff tokens reach (API keys get 403): they use the admin's token.
staff_only = ["listStaff", "createStaff", "changeOwnPassword", "updateStaff", "listApiKeys",
              "createApiKey", "revokeApiKey", "auditLog"]

# The large request schemas (segment filters, newsletter drafts) give the coverage phase hundreds
# of invalid variants each, nearly all answered by the same validation code. Their coverage
# phase keeps to valid values; fuzzing still sends them invalid ones.
positive_coverage_only = ["createNewsletter", "updateNewsletter", "createSegment", "updateSegment",
                          "previewSegment", "countSegment"]


def toml_string(value):
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def bearer(token):
    return f"headers = {{ Authorization = {toml_string('Bearer ' + token)} }}"


settings = {}  # operationId -> its lines in one [[operations]] table
parameters = {}  # operationId -> its dictionary bindings, written as one `parameters` line
for operation, (parameter, dictionary) in bindings.items():
    parameters.setdefault(operation, []).append(
        f'"path.{parameter}" = {{ dictionary = {toml_string(dictionary)}, probability = 0.7 }}'
    )
for operation, bound in references.items():
    for where, dictionary in bound:
        parameters.setdefault(operation, []).append(
            f'"{where}" = {{ dictionary = {toml_string(dictionary)}, probability = 1.0 }}'
        )
for operation, entries in parameters.items():
    settings.setdefault(operation, []).append(f"parameters = {{ {', '.join(entries)} }}")
for operation in staff_only:
    settings.setdefault(operation, []).append(bearer(jwt))
accepted = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
for operation, reason in refused_though_valid.items():
    settings.setdefault(operation, []).append(
        f"# {reason}\nchecks.positive_data_acceptance.expected-statuses = {json.dumps(accepted)}"
    )
for operation in positive_coverage_only:
    settings.setdefault(operation, []).append('phases.coverage.generation.mode = "positive"')
settings.setdefault("metrics", []).append(bearer(METRICS_TOKEN))
basic = base64.b64encode(f"postmark:{POSTMARK_TOKEN}".encode()).decode()
settings.setdefault("receivePostmarkWebhook", []).append(
    f"headers = {{ Authorization = {toml_string('Basic ' + basic)} }}"
)

lines = [
    "# Written by .ci/conformance_seed.py for one run; ids and secrets are this run's own.",
    bearer(K),
    "",
]
for name, values in dictionaries.items():
    lines += [f"[dictionaries.{name}]", f"values = [{', '.join(toml_string(v) for v in values)}]", ""]
for operation, extra in settings.items():
    lines += ["[[operations]]", f"include-operation-id = {toml_string(operation)}", *extra, ""]

with open(OUT, "w") as f:
    f.write("\n".join(lines))
print(f"seeded: 3 interests, 3 fields, 5 subscribers, 2 segments, 4 newsletters, 1 import, "
      f"2 webhooks, 2 staff, 2 API keys; {len(bindings)} path parameters bound to real objects")
