"""What the rendered manifests promise, checked without a cluster or the binary: the seed's
numbers, the restricted pod, shutdown ordering, ports that line up across objects, overlays
that stay in step with base. (Schema validity is tests/k8s/validate.sh's job.)"""

import json
import re

import pytest

from manifests import DEPLOY, OVERLAYS, ROOT, arg_values, container, find, one, port_numbers, render

# The error_types answered with a 5xx: the alert's and the dashboard's "server errors".
SERVER_ERRORS = "internal|overloaded|model_not_ready|deadline_exceeded"

SERVER_DEPLOYMENTS = {
    "base": ["inferd"],
    "canary": ["inferd", "inferd-canary"],
    "versioned-routes": ["inferd", "inferd-v2"],
    "gpu": ["inferd"],
    "custom-metrics": ["inferd"],
    "without-monitoring": ["inferd"],
}
TARGETS = ["base"] + [f"overlays/{o}" for o in OVERLAYS]


def test_every_overlay_is_covered():
    assert sorted(SERVER_DEPLOYMENTS) == sorted(["base"] + OVERLAYS)


@pytest.fixture(scope="module")
def base():
    return render("base")


def server_deployments():
    for target in TARGETS:
        objects = render(target)
        for name in SERVER_DEPLOYMENTS[target.split("/")[-1]]:
            yield target, objects, one(objects, "Deployment", name)


def test_a_single_file_server_reports_the_version_it_serves():
    """A Deployment serving one file of the repository, /models/<model>/<version>/model.<ext>,
    says which version that is (--model-version), or its arm of a canary cannot be told from
    the other in metrics, headers and V2 metadata."""
    checked = 0
    for target, _, deployment in server_deployments():
        args = arg_values(container(deployment)["args"])
        m = re.fullmatch(r"/models/[^/]+/(\d+)/model\.\w+", args.get("model", ""))
        if m:
            checked += 1
            # --model-version defaults to 1.
            assert args.get("model-version", "1") == m.group(1), f"{target}/{deployment['metadata']['name']}"
    assert checked >= 2


def test_seed_resources_and_replicas(base):
    c = container(one(base, "Deployment", "inferd"))
    assert c["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"},
                              "limits": {"cpu": "500m", "memory": "512Mi"}}
    hpa = one(base, "HorizontalPodAutoscaler", "inferd")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 5)
    assert hpa["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 60
    # The HPA owns the replica count; a `replicas` in the Deployment would fight it on apply.
    assert "replicas" not in one(base, "Deployment", "inferd")["spec"]


def test_ingress_is_the_seeds(base):
    ing = one(base, "Ingress", "inferd")
    assert ing["spec"]["ingressClassName"] == "nginx"
    (rule,) = ing["spec"]["rules"]
    assert rule["host"] == "ml.local"
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    # The seed's rewrite-target: / would send /predict to /.
    assert "nginx.ingress.kubernetes.io/rewrite-target" not in ing["metadata"].get("annotations", {})


@pytest.mark.parametrize("target", TARGETS)
def test_pods_are_restricted(target):
    objects = render(target)
    for d in find(objects, "Deployment"):
        pod = d["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 65532 and psc["runAsGroup"] == 65532
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert not sc.get("privileged", False)
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    for sa in find(objects, "ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False
    for ns in find(objects, "Namespace"):
        assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_shutdown_is_ordered_inside_the_grace_period():
    for target, _, d in server_deployments():
        pod = d["spec"]["template"]["spec"]
        c = container(d)
        args = arg_values(c["args"])
        pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
        delay, grace = float(args["shutdown-delay"]), float(args["shutdown-grace"])
        total = pod["terminationGracePeriodSeconds"]
        # preStop runs first (endpoints drain while inferd serves everything), then SIGTERM:
        # readiness false + accepting for `delay`, then up to `grace` for in-flight requests.
        assert pre_stop >= 3, f"{target}: preStop sleep too short for endpoint propagation"
        assert delay >= 1, f"{target}: inferd must keep accepting after SIGTERM"
        assert pre_stop + delay + grace < total, (
            f"{target}/{d['metadata']['name']}: preStop {pre_stop} + delay {delay} + grace {grace} "
            f">= terminationGracePeriodSeconds {total}: SIGKILL would cut the drain short")
        strategy = d["spec"].get("strategy", {}).get("rollingUpdate", {})
        if "replicas" not in d["spec"] or d["spec"]["replicas"] > 0:
            assert strategy.get("maxUnavailable") == 0, f"{target}: a rollout must not go below capacity"


def test_ports_line_up():
    """Container args, named container ports, probes, Services, the ServiceMonitor and the
    NetworkPolicy all name the same ports."""
    for target, objects, d in server_deployments():
        c = container(d)
        ports = port_numbers(c)
        args = arg_values(c["args"])
        assert ports == {"http": int(args["http-port"]), "grpc": int(args["grpc-port"]),
                         "metrics": int(args["metrics-port"])}, target
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            get = c[probe]["httpGet"]
            assert get["port"] in ports, f"{target}: {probe} names port {get['port']}"
            assert get["path"] in ("/v2/health/ready", "/v2/health/live"), f"{target}: {probe}"
        assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
        assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
        labels = d["spec"]["template"]["metadata"]["labels"]
        selector = d["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items()
        services = [s for s in find(objects, "Service") if s["spec"]["selector"].items() <= labels.items()]
        assert len(services) == 1, f"{target}: {d['metadata']['name']} is behind {len(services)} Services"
        for sp in services[0]["spec"]["ports"]:
            assert sp["targetPort"] in ports, f"{target}: Service port {sp['name']}"
        for np in find(objects, "NetworkPolicy"):
            if np["spec"]["podSelector"]["matchLabels"].items() <= labels.items():
                for rule in np["spec"]["ingress"]:
                    for p in rule["ports"]:
                        assert p["port"] in ports, f"{target}: NetworkPolicy port {p['port']}"
        for sm in find(objects, "ServiceMonitor"):
            svc_labels = services[0]["metadata"]["labels"]
            assert sm["spec"]["selector"]["matchLabels"].items() <= svc_labels.items(), target
            (endpoint,) = sm["spec"]["endpoints"]
            by_name = {sp["name"]: sp for sp in services[0]["spec"]["ports"]}
            assert by_name[endpoint["port"]]["targetPort"] == "metrics"
            assert endpoint["path"] == "/metrics"


def test_pdb_selects_the_server_pods(base):
    pdb = one(base, "PodDisruptionBudget", "inferd")
    labels = one(base, "Deployment", "inferd")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"].get("maxUnavailable") == 1


def test_network_policy_admits_only_ingress_and_prometheus(base):
    np = one(base, "NetworkPolicy", "inferd")
    assert set(np["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert np["spec"]["egress"] == []
    sources = [(r["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
                sorted(p["port"] for p in r["ports"])) for r in np["spec"]["ingress"]]
    assert sources == [("ingress-nginx", ["grpc", "http"]), ("monitoring", ["metrics"])]


def test_model_volume_is_mounted_read_only(base):
    d = one(base, "Deployment", "inferd")
    mounts = {m["name"]: m for m in container(d)["volumeMounts"]}
    assert mounts["models"]["mountPath"] == "/models" and mounts["models"]["readOnly"] is True
    claim = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}["models"]
    assert claim["persistentVolumeClaim"]["claimName"] == one(base, "PersistentVolumeClaim", "inferd-models")["metadata"]["name"]
    assert "--model-repository=/models" in container(d)["args"]


def _normalised_pod(d: dict) -> dict:
    spec = json.loads(json.dumps(d["spec"]["template"]["spec"]))
    c = spec["containers"][0]
    c["args"] = [a for a in c["args"] if not a.startswith(("--model", "--default-model"))]
    spec["topologySpreadConstraints"] = None
    return spec


@pytest.mark.parametrize("overlay,name", [("canary", "inferd-canary"), ("versioned-routes", "inferd-v2")])
def test_second_deployments_stay_in_step_with_base(overlay, name):
    objects = render(f"overlays/{overlay}")
    assert _normalised_pod(one(objects, "Deployment", name)) == _normalised_pod(one(objects, "Deployment", "inferd"))
    args = container(one(objects, "Deployment", name))["args"]
    assert "--model=/models/iris/2/model.pkl" in args
    assert "--model=/models/iris/1/model.pkl" in container(one(objects, "Deployment", "inferd"))["args"]


def test_canary_weights():
    objects = render("overlays/canary")
    canary = one(objects, "Ingress", "inferd-canary")
    ann = canary["metadata"]["annotations"]
    assert ann["nginx.ingress.kubernetes.io/canary"] == "true"
    assert 0 < int(ann["nginx.ingress.kubernetes.io/canary-weight"]) < 100
    assert canary["spec"]["rules"] == [{**r, "http": {"paths": [{**p, "backend": {"service": {
        "name": "inferd-canary", "port": {"name": "http"}}}} for p in r["http"]["paths"]]}}
        for r in one(objects, "Ingress", "inferd")["spec"]["rules"]]
    route = one(objects, "HTTPRoute", "inferd")
    weights = {b["name"]: b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]}
    assert weights == {"inferd": 90, "inferd-canary": 10}


def test_versioned_routes():
    objects = render("overlays/versioned-routes")
    ing = one(objects, "Ingress", "inferd")
    routes = {p["path"]: p["backend"]["service"]["name"] for p in ing["spec"]["rules"][0]["http"]["paths"]}
    assert routes["/v1(/|$)(.*)"] == "inferd" and routes["/v2(/|$)(.*)"] == "inferd-v2"
    assert ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/rewrite-target"] == "/$2"
    for pattern in routes:
        assert re.match(pattern, "/v1/predict" if "v1" in pattern else "/v2/predict" if "v2" in pattern else "/predict")


def test_gpu_overlay():
    d = one(render("overlays/gpu"), "Deployment", "inferd")
    pod = d["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["nodeSelector"]
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert container(d)["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_custom_metrics_replaces_the_cpu_hpa():
    objects = render("overlays/custom-metrics")
    assert not find(objects, "HorizontalPodAutoscaler")
    so = one(objects, "ScaledObject", "inferd")
    assert so["spec"]["scaleTargetRef"]["name"] == "inferd"
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (1, 5)
    queries = [t["metadata"]["query"] for t in so["spec"]["triggers"] if t["type"] == "prometheus"]
    assert queries and all("inferd_inflight_requests" in q for q in queries)


def test_dashboard_covers_the_issue_panels():
    dash = json.loads((DEPLOY / "grafana" / "dashboards" / "inferd.json").read_text())
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
    for needed in ("inferd_requests_total", f'status=~"{SERVER_ERRORS}"', "histogram_quantile(0.5,",
                   "histogram_quantile(0.95,", "histogram_quantile(0.99,", "inferd_queue_duration_seconds",
                   "inferd_batch_size", "inferd_inflight_requests", "kube_deployment_status_replicas_ready"):
        assert needed in exprs, needed
    objects = render("grafana")
    cm = one(objects, "ConfigMap", "inferd-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["inferd.json"]) == dash


def test_alerts(base):
    rule = one(base, "PrometheusRule", "inferd")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == {"InferdHighErrorRate", "InferdHighP99Latency", "InferdNoReadyReplicas"}
    assert f'status=~"{SERVER_ERRORS}"' in alerts["InferdHighErrorRate"]["expr"]


def test_server_error_selector_matches_the_error_table():
    """`status` on inferd_requests_total is "ok" or the error_type; the alert and dashboard
    count as server errors exactly the error types inferd answers with a 5xx."""
    table = (ROOT / "crates" / "inferd-core" / "src" / "error.rs").read_text()
    rows = re.findall(r'=> \((\d{3}), GrpcCode::\w+, "(\w+)"\)', table)
    assert len(rows) >= 8, "inferd-core's ErrorKind table changed shape; update this parser"
    server = {error_type for status, error_type in rows if status.startswith("5")}
    assert set(SERVER_ERRORS.split("|")) == server


def test_loadtest_job_is_the_documented_one():
    job = one(render("loadtest"), "Job", "inferd-loadtest")
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["args"] == ["bench", "--url", "http://inferd/predict", "--concurrency", "64", "--duration", "60s"]
