#!/usr/bin/env bash
# Renders every kustomization under deploy/kubernetes (base, overlays, kits) and validates
# every object strictly: built-in kinds against the Kubernetes OpenAPI schemas of the oldest
# supported (1.32) and the newest known Kubernetes, custom resources against tests/k8s/schemas.
# Needs: kubectl (its built-in kustomize), python3 with kubernetes-validate, jsonschema, PyYAML
# (requirements-ci.txt). Usage: tests/k8s/validate.sh [--kubernetes-version 1.33.0 ...]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
[ -x "$python" ] || python=python3
command -v kubectl >/dev/null || { echo "validate.sh: kubectl not found" >&2; exit 2; }
exec "$python" "$root/tests/k8s/validate_manifests.py" "$@"
