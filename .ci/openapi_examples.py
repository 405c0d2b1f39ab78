"""What integrators need from openapi.yaml beyond validity, checked by .ci/clients:

- every request body and every response with content has an example (`example` or `examples`,
  on the media type, where the operation or the shared response it refers to says it);
- every example, and every schema's own `example`/`examples`, is valid against its schema
  (OpenAPI 3.1's JSON Schema dialect, formats included);
- every operation that takes a staff credential (bearerAuth) says who may call it in
  `x-enlace-access`;
- every paginated operation (a `cursor`, `before` or `*_offset` parameter) says in its description
  how to page, naming that parameter; every operation with an `Idempotency-Key` says what it does.

Usage: openapi_examples.py openapi.yaml   (exit 1 with one line per finding)
"""

import sys

from openapi_schema_validator import OAS31Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from ruamel.yaml import YAML

document = YAML(typ="safe").load(open(sys.argv[1], encoding="utf-8"))
findings = []
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
ROOT = "urn:enlace:openapi"
registry = Registry().with_resource(ROOT, Resource(contents=document, specification=DRAFT202012))


def resolve(node):
    while isinstance(node, dict) and "$ref" in node:
        target = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def validate(value, schema, where):
    if schema is None:
        return
    # References inside the schema point into the document (`#/components/...`): the schema is
    # checked as a part of a copy of the document.
    wrapped = {"$ref": ROOT + "/x#/__schema__"}
    validator = OAS31Validator(
        wrapped,
        registry=registry.with_resource(
            ROOT + "/x", Resource(contents={**document, "__schema__": schema}, specification=DRAFT202012)
        ),
        format_checker=OAS31Validator.FORMAT_CHECKER,
    )
    for error in validator.iter_errors(value):
        path = "/".join(str(p) for p in error.absolute_path)
        findings.append(f"{where}: example invalid at '{path}': {error.message[:200]}")


def media_examples(media, where):
    """The media type's examples (resolved), or a finding when it has none."""
    values = []
    if "example" in media:
        values.append(media["example"])
    for name, example in (media.get("examples") or {}).items():
        example = resolve(example)
        if "value" in example:
            values.append(example["value"])
        elif "externalValue" not in example:
            findings.append(f"{where}: example {name} has no value")
    if not values:
        findings.append(f"{where}: no example")
    for value in values:
        validate(value, media.get("schema"), where)


for path, item in document["paths"].items():
    for method in METHODS:
        operation = item.get(method)
        if operation is None:
            continue
        name = operation["operationId"]
        body = resolve(operation.get("requestBody"))
        for content_type, media in ((body or {}).get("content") or {}).items():
            media_examples(media, f"{name} request {content_type}")
        for status, response in operation.get("responses", {}).items():
            for content_type, media in (resolve(response).get("content") or {}).items():
                media_examples(media, f"{name} {status} {content_type}")
        security = operation.get("security", document.get("security")) or []
        if any("bearerAuth" in requirement for requirement in security) and "x-enlace-access" not in operation:
            findings.append(f"{name}: a staff operation without x-enlace-access")
        description = operation.get("description", "")
        parameters = [resolve(p) for p in item.get("parameters", []) + operation.get("parameters", [])]
        for parameter in parameters:
            pname = parameter["name"]
            if pname in ("cursor", "before") or pname.endswith("_offset"):
                if f"`{pname}`" not in description:
                    findings.append(f"{name}: paginated by {pname}, and its description does not say how")
            if pname == "Idempotency-Key" and "Idempotency-Key" not in description:
                findings.append(f"{name}: takes an Idempotency-Key, and its description does not say what it does")

# Examples that schemas carry themselves.
for schema_name, schema in document["components"]["schemas"].items():
    for value in ([schema["example"]] if "example" in schema else []) + list(schema.get("examples") or []):
        validate(value, schema, f"schema {schema_name}")

for finding in findings:
    print("openapi.yaml:", finding)
print(f"openapi.yaml: {len(findings)} gaps in examples, access or paging notes" if findings
      else "openapi.yaml: every body and response has a valid example; access, paging and idempotency are described")
sys.exit(1 if findings else 0)
