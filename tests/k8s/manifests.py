"""Shared helpers for the manifest tests: render a kustomization, find objects in it."""

import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
OVERLAYS = sorted(p.name for p in (DEPLOY / "overlays").iterdir() if (p / "kustomization.yaml").exists())


def render(relative: str) -> list[dict]:
    out = subprocess.run(["kubectl", "kustomize", str(DEPLOY / relative)],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(objects: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [o for o in objects
            if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects: list[dict], kind: str, name: str) -> dict:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def container(deployment: dict) -> dict:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "one container per inferd pod"
    return containers[0]


def port_numbers(c: dict) -> dict[str, int]:
    """Named container ports: {"http": 8080, ...}."""
    return {p["name"]: p["containerPort"] for p in c.get("ports", [])}


def arg_values(args: list[str]) -> dict[str, str]:
    """`--name=value` arguments as a dict (the manifests always use the `=` form)."""
    values = {}
    for a in args:
        if a.startswith("--") and "=" in a:
            name, value = a[2:].split("=", 1)
            values[name] = value
    return values
