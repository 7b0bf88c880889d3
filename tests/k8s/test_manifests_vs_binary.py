"""The rendered manifests against the real binary: every server Deployment's container args
parse and serve, the probe paths answer on the ports the probes name, the ServiceMonitor's
port serves /metrics with every series the alerts, dashboard and autoscaler query, and
SIGTERM turns readiness off at once and exits 0 within the pod's shutdown budget.

The args run as written except for two substitutions a test on a shared machine needs: free
ports in place of 8080/8081/8082 (test_manifests.py checks the args and containerPorts agree)
and a temporary model repository in place of /models, holding the seed's model (a
RandomForestClassifier on iris, saved with joblib as the seed's train_model.py does)."""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from manifests import DEPLOY, ROOT, arg_values, container, find, one, port_numbers, render

SEED_BODY = json.dumps({"inputs": [5.1, 3.5, 1.4, 0.2]}).encode()
TARGETS = {"base": ["inferd"], "overlays/canary": ["inferd", "inferd-canary"],
           "overlays/versioned-routes": ["inferd", "inferd-v2"], "overlays/gpu": ["inferd"],
           "overlays/custom-metrics": ["inferd"], "overlays/without-monitoring": ["inferd"]}


def inferd_bin() -> str:
    path = os.environ.get("INFERD_BIN") or str(ROOT / "target" / "release" / "inferd")
    if not os.path.exists(path):
        pytest.fail(f"inferd binary not found at {path}: run `cargo build --release` or set INFERD_BIN")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def post_seed(port: int) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", "/predict", SEED_BODY, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def model_repo(tmp_path_factory) -> Path:
    """The seed's step 1, twice: iris/1 and iris/2 (another forest), as model.pkl, with
    dynamic batching configured for the repository case."""
    import joblib
    from sklearn import datasets, ensemble

    X, y = datasets.load_iris(return_X_y=True)
    repo = tmp_path_factory.mktemp("models")
    for version, trees in ((1, 100), (2, 50)):
        (repo / "iris" / str(version)).mkdir(parents=True)
        clf = ensemble.RandomForestClassifier(n_estimators=trees, random_state=version).fit(X, y)
        joblib.dump(clf, repo / "iris" / str(version) / "model.pkl")
    # Batching on, so the batch-size and queue-time series the dashboard plots exist.
    (repo / "iris" / "config.toml").write_text("[batching]\nmax_batch_size = 8\nmax_queue_delay_ms = 1\n")
    return repo


def server_specs():
    """(where, deployment, container) for every distinct server container in the overlays."""
    seen = {}
    for target, names in TARGETS.items():
        objects = render(target)
        for name in names:
            d = one(objects, "Deployment", name)
            key = tuple(container(d)["args"])
            seen.setdefault(key, (f"{target}:{name}", objects, d))
    return list(seen.values())


SPECS = server_specs()


class Pod:
    """The container's args run locally, with free ports and the test repository."""

    def __init__(self, c: dict, repo: Path, log: Path):
        self.ports = {name: free_port() for name in port_numbers(c)}
        flag_for = {"http": "http-port", "grpc": "grpc-port", "metrics": "metrics-port"}
        by_flag = {flag_for[name]: str(port) for name, port in self.ports.items()}
        args = []
        for a in c["args"]:
            if a.startswith("--") and "=" in a:
                flag, value = a[2:].split("=", 1)
                value = by_flag.get(flag, value)
                if flag == "host":
                    value = "127.0.0.1"
                value = re.sub(r"^/models(?=/|$)", str(repo), value)
                a = f"--{flag}={value}"
            args.append(a)
        self.args = args
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([inferd_bin(), *args], stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def wait_ready(self, path: str, port_name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"inferd {' '.join(self.args)} exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if get(self.ports[port_name], path, 1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        pytest.fail(f"not ready within the startup probe's budget ({timeout} s):\n{self.output()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def referenced_metrics() -> set[str]:
    """inferd_* series named by the PrometheusRule, the dashboard and the KEDA trigger."""
    texts = [json.dumps(o) for o in find(render("base"), "PrometheusRule")]
    texts += [json.dumps(o) for o in find(render("overlays/custom-metrics"), "ScaledObject")]
    texts.append((DEPLOY / "grafana" / "dashboards" / "inferd.json").read_text())
    return set(re.findall(r"\binferd_[a-z_]+", " ".join(texts)))


@pytest.mark.parametrize("where,objects,deployment", SPECS, ids=[s[0] for s in SPECS])
def test_container_runs_as_the_manifest_says(where, objects, deployment, model_repo, tmp_path):
    c = container(deployment)
    pod_spec = deployment["spec"]["template"]["spec"]
    startup = c["startupProbe"]
    budget = startup["periodSeconds"] * startup["failureThreshold"]
    pod = Pod(c, model_repo, tmp_path / "inferd.log")
    try:
        pod.wait_ready(startup["httpGet"]["path"], startup["httpGet"]["port"], min(budget, 60))
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            g = c[probe]["httpGet"]
            status, _ = get(pod.ports[g["port"]], g["path"], c[probe]["timeoutSeconds"])
            assert status == 200, f"{where}: {probe} {g['path']} on {g['port']} -> {status}"

        status, body = post_seed(pod.ports["http"])
        assert status == 200 and json.loads(body) == {"prediction": [0]}, f"{where}: {status} {body!r}"
        conn = http.client.HTTPConnection("127.0.0.1", pod.ports["http"], timeout=5)
        conn.request("POST", "/predict", b'{"inputs": [1]}', {"Content-Type": "application/json"})
        assert conn.getresponse().status == 400
        conn.close()

        for sm in find(objects, "ServiceMonitor"):
            (endpoint,) = sm["spec"]["endpoints"]
            service_port = {p["name"]: p for s in find(objects, "Service")
                            for p in s["spec"]["ports"]}[endpoint["port"]]
            status, text = get(pod.ports[service_port["targetPort"]], endpoint["path"])
            assert status == 200, f"{where}: ServiceMonitor scrape {endpoint['path']} -> {status}"
            exposed = set(re.findall(r"^(inferd_[a-z_]+?)(?:_bucket|_sum|_count)?[{ ]",
                                     text.decode(), re.MULTILINE))
            exposed |= set(re.findall(r"^# TYPE (inferd_[a-z_]+) ", text.decode(), re.MULTILINE))
            wanted = {re.sub(r"_(bucket|sum|count)$", "", m) for m in referenced_metrics()}
            missing = sorted(m for m in wanted if m not in exposed)
            assert not missing, f"{where}: queried but not exposed on /metrics: {missing}"
            # The alert and dashboard read `status` as "ok" or the error_type, and count
            # only server-side error types as failures: a bad request must not be one.
            statuses = set(re.findall(r'^inferd_requests_total\{[^}]*status="([^"]*)"', text.decode(), re.MULTILINE))
            assert "ok" in statuses, f"{where}: no status=\"ok\" series after a good request: {statuses}"
            assert "bad_request" in statuses, f"{where}: the bad request was not counted: {statuses}"
            alert_exprs = " ".join(r["expr"] for o in find(render("base"), "PrometheusRule")
                                   for g in o["spec"]["groups"] for r in g["rules"])
            server_errors = re.search(r'status=~"([^"]+)"', alert_exprs)
            assert not re.fullmatch(server_errors.group(1), "bad_request")

        with socket.create_connection(("127.0.0.1", pod.ports["grpc"]), timeout=2):
            pass

        # SIGTERM (after the preStop sleep in the cluster): not ready at once, still serving.
        args = arg_values(c["args"])
        delay, grace = float(args["shutdown-delay"]), float(args["shutdown-grace"])
        pod.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        ready_path = c["readinessProbe"]["httpGet"]["path"]
        while get(pod.ports["http"], ready_path)[0] != 503:
            assert time.monotonic() - sent < 1.0, f"{where}: readiness still 200 a second after SIGTERM"
            time.sleep(0.02)
        status, body = post_seed(pod.ports["http"])
        assert status == 200, f"{where}: request during --shutdown-delay -> {status}"
        budget = pod_spec["terminationGracePeriodSeconds"] - c["lifecycle"]["preStop"]["sleep"]["seconds"]
        try:
            rc = pod.proc.wait(budget)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{where}: still running {budget} s after SIGTERM (kubelet would SIGKILL)")
        assert rc == 0, f"{where}: exit {rc} after SIGTERM:\n{pod.output()}"
        assert time.monotonic() - sent >= delay - 0.5, f"{where}: exited before --shutdown-delay"
        assert grace > 0
    finally:
        pod.kill()


def test_loadtest_job_args_run_against_a_server(model_repo, tmp_path):
    binary = inferd_bin()
    job = one(render("loadtest"), "Job", "inferd-loadtest")
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    port = free_port()
    server = subprocess.Popen([binary, "serve", "--host", "127.0.0.1", f"--http-port={port}",
                               f"--grpc-port={free_port()}", f"--metrics-port={free_port()}",
                               "--shutdown-delay=0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if get(port, "/v2/health/ready", 1)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "server did not start"
            time.sleep(0.05)
        # The Job's arguments, aimed here and shortened: same flags, same value formats.
        local = [a.replace("http://inferd/", f"http://127.0.0.1:{port}/") for a in args]
        local[local.index("--concurrency") + 1] = "4"
        local[local.index("--duration") + 1] = "2s"
        out = subprocess.run([binary, *local], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, f"inferd {' '.join(local)} -> {out.returncode}:\n{out.stdout}\n{out.stderr}"
    finally:
        server.kill()
        server.wait()
