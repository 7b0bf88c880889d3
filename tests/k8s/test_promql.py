"""Every PromQL expression in the kit parses and the alert rules load, checked with promtool
(Debian package `prometheus`): the PrometheusRule's groups as a rules file, and the Grafana
panels' and the KEDA trigger's queries wrapped as recording rules, with Grafana's variables
filled in."""

import json
import shutil
import subprocess

import pytest
import yaml

from manifests import DEPLOY, find, one, render

GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$namespace": "inferd",
                     "${datasource}": "prometheus"}

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None,
                                reason="promtool not installed (Debian package prometheus)")


def promtool_check(tmp_path, groups: list[dict]) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    out = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_alert_rules_load(tmp_path):
    rule = one(render("base"), "PrometheusRule", "inferd")
    promtool_check(tmp_path, rule["spec"]["groups"])


def test_dashboard_and_autoscaler_queries_parse(tmp_path):
    dash = (DEPLOY / "grafana" / "dashboards" / "inferd.json").read_text()
    exprs = [t["expr"] for p in json.loads(dash)["panels"] for t in p["targets"]]
    for so in find(render("overlays/custom-metrics"), "ScaledObject"):
        exprs += [t["metadata"]["query"] for t in so["spec"]["triggers"] if t["type"] == "prometheus"]
    rules = []
    for i, expr in enumerate(exprs):
        for var, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, f"unfilled Grafana variable in {expr}"
        rules.append({"record": f"inferd_check:{i}", "expr": expr})
    promtool_check(tmp_path, [{"name": "queries", "rules": rules}])
