#!/usr/bin/env python3
"""Validate logged request bodies against Qdrant's OpenAPI document.

usage: openapi_check.py --openapi PATH LOG.jsonl [LOG2.jsonl ...]

Each log line is one request as written by qdrant_test_server --request-log:
    {"method": "POST", "path": "/collections/c/points/batch", "query": "wait=true",
     "status": 200, "body": "<raw body>"}
For every request the OpenAPI operation is found by method and path template;
its requestBody application/json schema is resolved against the document's
components and the parsed body validated with jsonschema.  OpenAPI 3.0's
`nullable: true` is translated to a JSON Schema type union, and `format:
uuid` is enforced with the UUID forms Qdrant accepts (hyphenated, simple,
urn:uuid:, braced; any case).  Validation uses Draft 4 semantics, so 1.0 is
not an integer (Qdrant rejects it as a point id).

Requests without a body and operations without a requestBody are skipped.
A request to a path/method the spec does not have, a body that is not JSON
and a body the schema rejects are violations.  Exit 1 on any violation, else
0.  If the --openapi file does not exist: print "SKIP: <path> not found", exit 0.
"""
import argparse
import json
import os
import re
import sys

ANNOTATIONS = {"description", "title", "default", "example", "deprecated", "format", "readOnly", "writeOnly"}
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
SIMPLE_UUID_RE = re.compile(r"[0-9a-fA-F]{32}")


def is_qdrant_uuid(s):
    """The forms the uuid crate's parse_str accepts (as Qdrant does)."""
    if not isinstance(s, str):
        return True
    if s[:9].lower() == "urn:uuid:":
        return bool(UUID_RE.fullmatch(s[9:]))
    if s.startswith("{") and s.endswith("}"):
        return bool(UUID_RE.fullmatch(s[1:-1]))
    return bool(UUID_RE.fullmatch(s) or SIMPLE_UUID_RE.fullmatch(s))


def translate(node):
    """OpenAPI 3.0 schema -> JSON Schema: `nullable: true` becomes a union with null."""
    if isinstance(node, list):
        return [translate(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: translate(v) for k, v in node.items()}
    nullable = out.get("nullable")
    if not isinstance(nullable, bool):
        return out  # a property that happens to be named "nullable"
    del out["nullable"]
    if not nullable:
        return out
    if "type" in out and "$ref" not in out:
        t = out["type"]
        out["type"] = (t if isinstance(t, list) else [t]) + ["null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = out["enum"] + [None]
        return out
    if set(out) <= ANNOTATIONS:
        # {"nullable": true} alone (as in anyOf [Ref, {"nullable": true}]) means "or null"
        out["type"] = "null"
        return out
    return {"anyOf": [out, {"type": "null"}]}


class Spec:
    def __init__(self, path):
        import jsonschema  # imported here so that a missing spec can SKIP without it

        self.jsonschema = jsonschema
        with open(path) as f:
            doc = json.load(f)
        self.components = translate(doc.get("components", {}))
        self.format_checker = jsonschema.FormatChecker(formats=())
        self.format_checker.checks("uuid")(is_qdrant_uuid)
        self.ops = []  # (method, compiled path regex, template, schema or None)
        for template, item in doc.get("paths", {}).items():
            regex = re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "/?$")
            for method, op in item.items():
                if not isinstance(op, dict) or method.startswith("x-") or method == "parameters":
                    continue
                schema = (op.get("requestBody", {}).get("content", {}).get("application/json", {})
                          .get("schema"))
                self.ops.append((method.upper(), regex, template, translate(schema) if schema else None))
        # literal templates first, so /points/scroll wins over /points/{id}
        self.ops.sort(key=lambda o: o[2].count("{"))
        self.validators = {}

    def find(self, method, path):
        """(template, schema) for the operation; template None if not in the spec."""
        path = path.split("?", 1)[0]
        for m, regex, template, schema in self.ops:
            if m == method and regex.match(path):
                return template, schema
        return None, None

    def validator(self, template, method, schema):
        key = (template, method)
        if key not in self.validators:
            root = dict(schema)
            # local "#/components/..." references resolve against this root
            root["components"] = self.components
            cls = self.jsonschema.Draft4Validator
            self.validators[key] = cls(root, format_checker=self.format_checker)
        return self.validators[key]


def describe(error):
    where = "".join("[%d]" % p if isinstance(p, int) else "." + str(p) for p in error.absolute_path)
    where = where[1:] if where.startswith(".") else where or "(body)"
    msg = error.message
    if len(msg) > 300:
        msg = msg[:300] + "..."
    return "%s: %s" % (where, msg)


def check_logs(spec, logs, out=sys.stdout):
    validated = violations = skipped = 0

    def violation(log, lineno, method, path, text):
        nonlocal violations
        violations += 1
        print("%s:%d: %s %s: %s" % (log, lineno, method, path, text), file=out)

    for log in logs:
        with open(log, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    method, path, body = rec["method"].upper(), rec["path"], rec.get("body", "")
                except (ValueError, KeyError, AttributeError) as e:
                    violation(log, lineno, "?", "?", "unreadable log line: %s" % e)
                    continue
                template, schema = spec.find(method, path)
                if template is None:
                    violation(log, lineno, method, path, "no such operation in the OpenAPI spec")
                    continue
                if not body or schema is None:
                    skipped += 1
                    continue
                try:
                    doc = json.loads(body)
                except ValueError as e:
                    violation(log, lineno, method, path, "body is not valid JSON: %s" % e)
                    continue
                validated += 1
                v = spec.validator(template, method, schema)
                best = spec.jsonschema.exceptions.best_match(v.iter_errors(doc))
                if best is not None:
                    violation(log, lineno, method, path, describe(best))
    print("skipped %d requests without a body or a requestBody schema" % skipped, file=out)
    print("validated %d request bodies, %d violations" % (validated, violations), file=out)
    return violations


def main(argv=None):
    ap = argparse.ArgumentParser(description="Validate qdrant_test_server request logs against Qdrant's OpenAPI spec")
    ap.add_argument("--openapi", required=True)
    ap.add_argument("logs", nargs="+")
    args = ap.parse_args(argv)
    if not os.path.exists(args.openapi):
        print("SKIP: %s not found" % args.openapi)
        return 0
    spec = Spec(args.openapi)
    return 1 if check_logs(spec, args.logs) else 0


if __name__ == "__main__":
    sys.exit(main())
