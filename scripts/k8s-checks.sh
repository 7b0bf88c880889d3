#!/usr/bin/env bash
# Every check of the Kubernetes kit, in order, for scripts/test-all and .ci/run:
#   1. render every kustomization and validate each object (Kubernetes + CRD schemas);
#   2. the manifests' promises, and the Dockerfile against the chroot check (no binary);
#   3. the manifests against the release binary, and the rehearsal behind nginx;
#   4. the image's final stage in a chroot (needs root; skipped with a notice otherwise).
# Needs kubectl, nginx (Debian nginx-light), promtool (Debian prometheus), curl, binutils,
# util-linux, iproute2, and .venv with
# requirements-ci.txt. INFERD_BIN defaults to target/release/inferd (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
export INFERD_BIN="${INFERD_BIN:-$PWD/target/release/inferd}"

step() { printf '\n=== %s\n' "$*"; }

step "kubernetes: render and validate every overlay"
PYTHON="$PY" tests/k8s/validate.sh

step "kubernetes: manifest and Dockerfile checks"
"$PY" -m pytest -q tests/k8s/test_manifests.py tests/k8s/test_dockerfile.py tests/k8s/test_promql.py

step "kubernetes: manifests against the binary ($INFERD_BIN)"
"$PY" -m pytest -q tests/k8s/test_manifests_vs_binary.py

step "rehearsal: rolling restart and kill -9 behind nginx"
"$PY" -m pytest -q -s tests/e2e/test_rehearsal.py

step "image: final stage in a chroot"
if [ "$(id -u)" = 0 ]; then
    tests/k8s/final-stage.sh
else
    echo "skipped: tests/k8s/final-stage.sh needs root (chroot, namespaces)"
fi
