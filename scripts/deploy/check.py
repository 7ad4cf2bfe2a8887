"""Validates everything under deploy/ offline, as scripts/deploy/check.sh runs it.

Each kustomization is rendered with kubectl (kustomize), and each resource, rendered or standalone,
is checked against its schema: built-in kinds against the Kubernetes API's own (kubernetes-validate,
strict: an unknown field is an error, as `kubectl apply` with server-side field validation makes
it), custom resources against the CRD schemas kept in deploy/schemas, made strict the same way.
On top, the rules this project promises of its pods: non-root, read-only root filesystem, no
privilege escalation, every capability dropped, resources requested, and probes on the server.

    python scripts/deploy/check.py KUBECTL
"""

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
SCHEMAS = ROOT / "deploy" / "schemas"
KUBERNETES_VERSION = "1.37.0"
# Files that are not Kubernetes resources (a Prometheus Adapter values snippet).
NOT_RESOURCES = {"prometheus-adapter-rules.yaml"}
# Kinds with no namespace; every other kind a kustomization renders must carry one, or it lands in
# whatever namespace kubectl's context names.
CLUSTER_SCOPED = {"Namespace", "ClusterServingRuntime", "ClusterRole", "ClusterRoleBinding"}


def strict(schema):
    """A CRD schema that refuses fields it does not declare, as the API server's strict field
    validation does, except where the schema keeps unknown fields on purpose."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        if out.get("x-kubernetes-int-or-string") and "type" not in out and "anyOf" not in out:
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def crd_schema(doc):
    group, _, version = doc["apiVersion"].rpartition("/")
    path = SCHEMAS / group / f"{doc['kind'].lower()}_{version}.json"
    if not group or not path.exists():
        return None
    schema = strict(json.loads(path.read_text()))
    # apiVersion, kind and metadata are the API server's; their schemas are loose in every CRD.
    schema.setdefault("properties", {}).update(
        {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
    )
    return schema


def pod_spec(doc):
    kind = doc.get("kind")
    spec = doc.get("spec", {})
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return spec.get("template", {}).get("spec")
    return None


def policy(doc, where):
    """The promises every pod of ours keeps; a list of what is broken."""
    problems = []
    spec = pod_spec(doc)
    containers = []
    if spec is not None:
        if spec.get("automountServiceAccountToken") is not False:
            problems.append("pod mounts a service account token it never uses")
        if not spec.get("securityContext", {}).get("runAsNonRoot"):
            problems.append("pod securityContext lacks runAsNonRoot: true")
        containers = spec.get("containers", []) + spec.get("initContainers", [])
    elif doc.get("kind") in ("ClusterServingRuntime", "ServingRuntime"):
        containers = doc["spec"].get("containers", [])
    for c in containers:
        name = c.get("name", "?")
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"container {name}: allowPrivilegeEscalation is not false")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"container {name}: capabilities do not drop ALL")
        if spec is not None and not sc.get("readOnlyRootFilesystem"):
            problems.append(f"container {name}: root filesystem is writable")
        if not c.get("resources", {}).get("requests") or "memory" not in c.get("resources", {}).get(
            "limits", {}
        ):
            problems.append(f"container {name}: no resource requests or memory limit")
    if doc.get("kind") == "Deployment":
        for c in spec.get("containers", []):
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                if probe not in c:
                    problems.append(f"container {c.get('name')}: no {probe}")
    return [f"{where}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}: {p}" for p in problems]


def validate(doc, where):
    kind = doc.get("kind")
    schema = crd_schema(doc)
    if schema is not None:
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=str)
        return [f"{where}: {kind}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{where}: {kind}: {'/'.join(map(str, e.path))}: {e.message}"]
    except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as e:
        return [f"{where}: {kind} {doc.get('apiVersion')}: no schema to check it against ({e})"]
    return []


def main(kubectl):
    sources = []  # (where, text)
    kustomizations = sorted(p.parent for p in DEPLOY.rglob("kustomization.yaml"))
    covered = set()
    for folder in kustomizations:
        spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
        for name in spec.get("resources", []) + [p.get("path", "") for p in spec.get("patches", [])]:
            covered.add((folder / name).resolve())
        if spec.get("kind") == "Component":
            continue
        out = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True)
        where = str(folder.relative_to(ROOT))
        if out.returncode != 0:
            sys.exit(f"{where}: kustomize failed:\n{out.stderr}")
        sources.append((f"{where} (rendered)", out.stdout))
    for path in sorted(DEPLOY.rglob("*.yaml")):
        if path.name == "kustomization.yaml" or path.name in NOT_RESOURCES:
            continue
        # A file a kustomization uses is checked as rendered; any other (examples beside it) alone.
        if path.resolve() in covered:
            continue
        sources.append((str(path.relative_to(ROOT)), path.read_text()))
    problems, count = [], 0
    for where, text in sources:
        for doc in yaml.safe_load_all(text):
            if not doc:
                continue
            count += 1
            problems += validate(doc, where) + policy(doc, where)
            rendered = where.endswith("(rendered)")
            if rendered and doc["kind"] not in CLUSTER_SCOPED and not doc["metadata"].get("namespace"):
                problems.append(f"{where}: {doc['kind']}/{doc['metadata'].get('name')}: no namespace")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        sys.exit(f"{len(problems)} problem(s) in deploy/")
    print(f"deploy/: {count} resources from {len(sources)} sources valid (Kubernetes {KUBERNETES_VERSION}, strict)")


if __name__ == "__main__":
    main(sys.argv[1])
