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

# Configuration: interests and fields (one of each to keep, one to delete).
for slug, en, es in [("news", "News", "Noticias"), ("events", "Events", "Eventos"), ("gone", "Gone", "Ido")]:
    call("POST", "/api/v1/interests", {"slug": slug, "name": {"en": en, "es": es}}, K)
call("POST", "/api/v1/fields", {"key": "city", "type": "text", "public": True}, K)
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

dictionaries = {
    "subscriber": [keeper["id"]],
    "erasable": [victim["id"]],
    "interest": ["news", "events"],
    "deletable_interest": ["gone"],
    "field": ["city", "size"],
    "deletable_field": ["obsolete"],
    "segment": [segment["id"]],
    "deletable_segment": [spare_segment["id"]],
    "newsletter": [newsletter["id"]],
    "sendable": [to_send["id"]],
    "deletable_newsletter": [to_delete["id"]],
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
    "testNewsletter": ("id", "newsletter"),
    "deleteNewsletter": ("id", "deletable_newsletter"),
    "sendNewsletter": ("id", "sendable"),
    "pauseNewsletter": ("id", "sendable"),
    "resumeNewsletter": ("id", "sendable"),
    "cancelNewsletter": ("id", "sendable"),
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

# Operations that only staff tokens reach (API keys get 403): they use the admin's token.
staff_only = ["listStaff", "createStaff", "changeOwnPassword", "updateStaff", "listApiKeys",
              "createApiKey", "revokeApiKey", "auditLog"]

# The large request schemas (segment filters, newsletter drafts) give the coverage phase hundreds
# of invalid variants each, nearly all answered by the same validation code. Their coverage
# phase keeps to valid values; fuzzing still sends them invalid ones.
positive_coverage_only = ["createNewsletter", "updateNewsletter", "createSegment", "updateSegment",
                          "previewSegment"]


def toml_string(value):
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def bearer(token):
    return f"headers = {{ Authorization = {toml_string('Bearer ' + token)} }}"


settings = {}  # operationId -> its lines in one [[operations]] table
for operation, (parameter, dictionary) in bindings.items():
    settings.setdefault(operation, []).append(
        f'parameters = {{ "path.{parameter}" = {{ dictionary = {toml_string(dictionary)}, probability = 0.7 }} }}'
    )
for operation in staff_only:
    settings.setdefault(operation, []).append(bearer(jwt))
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
print(f"seeded: 3 interests, 3 fields, 5 subscribers, 2 segments, 3 newsletters, 1 import, "
      f"2 webhooks, 2 staff, 2 API keys; {len(bindings)} path parameters bound to real objects")
