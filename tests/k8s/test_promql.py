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



@pytest.fixture(autouse=True, scope="module")
def promtool_installed():
    # A missing tool is a broken environment, not a reason to pass: .ci/run installs it.
    assert shutil.which("promtool"), "promtool not installed (Debian package prometheus)"


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


ALERT_TESTS = """
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # 10 % of requests fail on the server side, plus client errors that must not count.
      - series: 'inferd_requests_total{job="inferd", namespace="inferd", status="ok"}'
        values: '0+85x30'
      - series: 'inferd_requests_total{job="inferd", namespace="inferd", status="bad_request"}'
        values: '0+5x30'
      - series: 'inferd_requests_total{job="inferd", namespace="inferd", status="overloaded"}'
        values: '0+6x30'
      - series: 'inferd_requests_total{job="inferd", namespace="inferd", status="internal"}'
        values: '0+4x30'
      # Every request takes between 0.5 s and 1 s.
      - series: 'inferd_request_duration_seconds_bucket{job="inferd", namespace="inferd", le="0.5"}'
        values: '0x30'
      - series: 'inferd_request_duration_seconds_bucket{job="inferd", namespace="inferd", le="1"}'
        values: '0+100x30'
      - series: 'inferd_request_duration_seconds_bucket{job="inferd", namespace="inferd", le="+Inf"}'
        values: '0+100x30'
      - series: 'kube_deployment_status_replicas_ready{deployment="inferd", namespace="inferd"}'
        values: '1 1 1 0x27'
    alert_rule_test:
      - eval_time: 3m
        alertname: InferdHighErrorRate
        exp_alerts: []
      - eval_time: 12m
        alertname: InferdHighErrorRate
        exp_alerts:
          - exp_labels: {namespace: inferd, severity: critical}
            exp_annotations:
              summary: inferd is failing more than 5% of requests
              description: 10% of requests in inferd failed on the server side (5xx) over the last 5 minutes.
      - eval_time: 20m
        alertname: InferdHighP99Latency
        exp_alerts:
          - exp_labels: {namespace: inferd, severity: warning}
            exp_annotations:
              summary: inferd p99 latency is above 500 ms
              description: p99 request latency in inferd is 995ms.
      - eval_time: 4m
        alertname: InferdNoReadyReplicas
        exp_alerts: []
      - eval_time: 6m
        alertname: InferdNoReadyReplicas
        exp_alerts:
          - exp_labels: {namespace: inferd, severity: critical}
            exp_annotations:
              summary: inferd has no ready replicas
              description: The inferd Deployment in inferd has had no ready pod for 2 minutes; every request fails.
  - interval: 1m
    input_series:
      # Only client errors: not inferd's fault, no alert.
      - series: 'inferd_requests_total{job="inferd", namespace="inferd", status="ok"}'
        values: '0+50x30'
      - series: 'inferd_requests_total{job="inferd", namespace="inferd", status="bad_request"}'
        values: '0+30x30'
      - series: 'inferd_requests_total{job="inferd", namespace="inferd", status="model_not_found"}'
        values: '0+20x30'
    alert_rule_test:
      - eval_time: 20m
        alertname: InferdHighErrorRate
        exp_alerts: []
"""


def test_alerts_fire_when_they_should(tmp_path):
    rule = one(render("base"), "PrometheusRule", "inferd")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    tests = yaml.safe_load(ALERT_TESTS)
    tests["rule_files"] = ["rules.yaml"]
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    out = subprocess.run(["promtool", "test", "rules", "tests.yaml"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
