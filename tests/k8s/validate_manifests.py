#!/usr/bin/env python3
"""Renders every kustomization under deploy/kubernetes and validates each object strictly:
built-in kinds against the Kubernetes OpenAPI schemas (kubernetes-validate), custom resources
against the cut-down CRD schemas in tests/k8s/schemas. A kind with neither fails."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry
from referencing.jsonschema import DRAFT7

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
SCHEMAS = Path(__file__).resolve().parent / "schemas"

# The oldest Kubernetes these manifests claim (preStop `sleep` is on by default from 1.30;
# kubectl here is 1.32) and the newest release kubernetes-validate knows.
DEFAULT_VERSIONS = ["1.32.0", kubernetes_validate.latest_version()]

CUSTOM_RESOURCES = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.yaml",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.yaml",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "httproute.yaml",
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject.yaml",
}


def kustomizations() -> list[Path]:
    """Every directory holding a kustomization.yaml, i.e. base, each overlay and each kit."""
    return sorted(p.parent for p in DEPLOY.rglob("kustomization.yaml"))


def render(directory: Path) -> list[dict]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(directory)], check=True, capture_output=True, text=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def crd_validators() -> dict:
    registry = Registry()
    for path in SCHEMAS.glob("*.yaml"):
        registry = registry.with_resource(
            path.name, DRAFT7.create_resource(yaml.safe_load(path.read_text()))
        )
    validators = {}
    for key, name in CUSTOM_RESOURCES.items():
        schema = yaml.safe_load((SCHEMAS / name).read_text())
        jsonschema.Draft7Validator.check_schema(schema)
        validators[key] = jsonschema.Draft7Validator(schema, registry=registry)
    return validators


def validate_object(obj: dict, versions: list[str], crds: dict) -> list[str]:
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in crds:
        return [f"{e.json_path}: {e.message}" for e in crds[key].iter_errors(obj)]
    errors = []
    for version in versions:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"no Kubernetes {version} schema and no CRD schema for {key}")
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            errors.append(f"Kubernetes {version}: {path}: {e.message}")
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubernetes-version", action="append", dest="versions",
                        help=f"repeatable; default {' and '.join(DEFAULT_VERSIONS)}")
    args = parser.parse_args()
    versions = args.versions or os.environ.get("K8S_VERSIONS", "").split() or DEFAULT_VERSIONS
    crds = crd_validators()
    failures = 0
    for directory in kustomizations():
        objects = render(directory)
        rel = directory.relative_to(ROOT)
        for obj in objects:
            name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
            for error in validate_object(obj, versions, crds):
                failures += 1
                print(f"FAIL {rel}: {name}: {error}")
        print(f"ok   {rel}: {len(objects)} objects" if not failures else f"...  {rel}: {len(objects)} objects")
    if failures:
        print(f"{failures} validation errors", file=sys.stderr)
        return 1
    print(f"all objects valid (Kubernetes {', '.join(versions)}; CRDs from tests/k8s/schemas)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
