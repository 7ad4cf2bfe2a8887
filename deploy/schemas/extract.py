#!/usr/bin/env python3
"""Extract openAPIV3Schema objects from CustomResourceDefinition YAML files.

Usage:
    python3 deploy/schemas/extract.py [--out DIR] CRD.yaml [CRD.yaml ...]

For every CustomResourceDefinition document in the given files, and for every
served version in it, writes

    DIR/<spec.group>/<kind-lowercase>_<version>.json

containing only `spec.versions[].schema.openAPIV3Schema`, with every
`description` keyword removed, as compact JSON with sorted keys.
DIR defaults to the directory containing this script (deploy/schemas).

Only the `description` *keyword* of schema objects is removed. Property names
that happen to be "description" (keys of `properties`), and data such as
`default`, `enum`, `example` and `x-kubernetes-*` values, are left untouched.

Requires PyYAML.
"""

import argparse
import json
import os
import sys

import yaml

# Keywords whose value is a single schema (or, for some, a bool / list).
_SCHEMA_KEYS = ("items", "additionalProperties", "additionalItems", "not")
# Keywords whose value is a list of schemas.
_SCHEMA_LIST_KEYS = ("allOf", "anyOf", "oneOf")
# Keywords whose value is a map from name to schema.
_SCHEMA_MAP_KEYS = ("properties", "patternProperties", "definitions", "dependencies")


def strip_descriptions(schema):
    """Return a copy of a JSON schema object without `description` keywords."""
    if isinstance(schema, list):  # e.g. tuple-form `items`
        return [strip_descriptions(s) for s in schema]
    if not isinstance(schema, dict):  # e.g. additionalProperties: false
        return schema
    out = {}
    for key, value in schema.items():
        if key == "description":
            continue
        if key in _SCHEMA_KEYS:
            out[key] = strip_descriptions(value)
        elif key in _SCHEMA_LIST_KEYS:
            out[key] = [strip_descriptions(s) for s in value]
        elif key in _SCHEMA_MAP_KEYS and isinstance(value, dict):
            out[key] = {
                name: strip_descriptions(sub) if isinstance(sub, dict) else sub
                for name, sub in value.items()
            }
        else:
            out[key] = value
    return out


def extract(path, out_dir):
    written = []
    with open(path, encoding="utf-8") as f:
        docs = list(yaml.safe_load_all(f))
    for doc in docs:
        if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc["spec"]
        group = spec["group"]
        kind = spec["names"]["kind"].lower()
        for version in spec.get("versions", []):
            if not version.get("served", False):
                continue
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if schema is None:
                print(f"{path}: {kind} {version['name']}: no openAPIV3Schema", file=sys.stderr)
                continue
            data = json.dumps(
                strip_descriptions(schema), separators=(",", ":"), sort_keys=True
            )
            target_dir = os.path.join(out_dir, group)
            os.makedirs(target_dir, exist_ok=True)
            target = os.path.join(target_dir, f"{kind}_{version['name']}.json")
            with open(target, "w", encoding="utf-8") as f:
                f.write(data)
            written.append((target, len(data.encode("utf-8"))))
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("crds", nargs="+", help="CRD YAML file(s)")
    parser.add_argument(
        "--out",
        default=os.path.dirname(os.path.abspath(__file__)),
        help="output root (default: directory of this script)",
    )
    args = parser.parse_args(argv)
    for path in args.crds:
        for target, size in extract(path, args.out):
            print(f"{target}\t{size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
