"""Graceful shutdown under load (RELIABILITY.md check 1, for one replica): on SIGTERM readiness
turns 503 at once, a client that stops sending when readiness fails sees no failed request,
requests in flight when the listeners close still finish, and the process exits 0 within its
grace period."""

import json
import os
import signal
import subprocess
import threading
import time

import requests

from conftest import Inferd, free_port, inferd_bin

GOOD = {"inputs": [5.1, 3.5, 1.4, 0.2]}
SLOW_ROWS = 50_000
SLOW_BODY = json.dumps({"inputs": [[5.1, 3.5, 1.4, 0.2]] * SLOW_ROWS}).encode()


class DrainingInferd(Inferd):
    """Like the conftest's Inferd, but with the shutdown delay and grace this test needs (the
    conftest always passes `--shutdown-delay 0`, and clap refuses a repeated option)."""

    def __init__(self, delay: float, grace: float, *args):
        self.http_port = free_port()
        self.grpc_port = free_port()
        self.metrics_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}"
        cmd = [
            inferd_bin(), "serve", "--host", "127.0.0.1", "--http-port", str(self.http_port),
            *self._optional_ports(),
            "--shutdown-delay", str(delay), "--shutdown-grace", str(grace), *args,
        ]
        self.proc = subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._wait_ready(30.0)


def test_sigterm_under_load_fails_no_request_of_a_client_that_watches_readiness():
    server = DrainingInferd(2.0, 10.0, "--inference-threads", "2")
    stop = threading.Event()
    failures, successes = [], []
    lock = threading.Lock()

    def client():
        with requests.Session() as s:
            while not stop.is_set():
                try:
                    r = s.post(server.url + "/predict", json=GOOD, timeout=5)
                    ok = r.status_code == 200 and r.json() == {"prediction": [0]}
                    detail = r.status_code
                except requests.RequestException as e:
                    ok, detail = False, repr(e)
                with lock:
                    (successes if ok else failures).append(detail)

    readiness_failed_at = []

    def watcher():
        # What a load balancer does: poll readiness and stop routing once it fails.
        with requests.Session() as s:
            while True:
                try:
                    status = s.get(server.url + "/v2/health/ready", timeout=1).status_code
                except requests.RequestException:
                    status = None
                if status != 200:
                    readiness_failed_at.append(time.monotonic())
                    stop.set()
                    return
                time.sleep(0.01)

    clients = [threading.Thread(target=client) for _ in range(4)]
    watch = threading.Thread(target=watcher)
    for t in clients + [watch]:
        t.start()
    try:
        # Load is flowing before the signal.
        deadline = time.monotonic() + 10
        while len(successes) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(successes) >= 200, (len(successes), failures[:5])

        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        watch.join(5)
        assert readiness_failed_at, "readiness never failed after SIGTERM"
        assert readiness_failed_at[0] - signalled < 0.5, "readiness must fail at once"
        for t in clients:
            t.join(10)
        code = server.proc.wait(2.0 + 10.0 + 5.0)
    finally:
        stop.set()
        server.stop()
    assert failures == [], f"{len(failures)} failed requests: {failures[:5]}"
    assert code == 0, server.output()[-2000:]


def wait_in_flight(server, n, fallback):
    """Waits until the server counts `n` requests in flight (from its metrics port); a build
    without one gets a fixed pause instead."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            text = requests.get(server.metrics_url + "/metrics", timeout=1).text
        except requests.ConnectionError:
            time.sleep(fallback)
            return
        inflight = sum(
            float(line.split()[-1]) for line in text.splitlines() if line.startswith("inferd_inflight_requests{")
        )
        if inflight >= n:
            return
        time.sleep(0.005)
    raise AssertionError(f"never saw {n} requests in flight")


def test_requests_in_flight_when_listeners_close_still_finish():
    server = DrainingInferd(0.0, 20.0, "--inference-threads", "1", "--io-threads", "4")
    answers = []
    lock = threading.Lock()

    def slow():
        try:
            r = requests.post(server.url + "/predict", data=SLOW_BODY,
                              headers={"Content-Type": "application/json"}, timeout=30)
            result = (r.status_code, len(r.json().get("prediction", [])) if r.status_code == 200 else r.text[:200])
        except requests.RequestException as e:
            result = (repr(e), None)
        with lock:
            answers.append(result)

    try:
        # Time one slow request alone, so the in-flight ones below outlast the signal.
        t = time.perf_counter()
        slow()
        one = time.perf_counter() - t
        answers.clear()
        threads = [threading.Thread(target=slow) for _ in range(4)]
        for th in threads:
            th.start()
        # All four must have reached the server (one computing, three queued) before SIGTERM.
        wait_in_flight(server, 4, fallback=min(0.5, one / 2))
        assert not answers, "requests finished before the signal; the test proves nothing"
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(25)
        drained_in = time.monotonic() - started
        for th in threads:
            th.join(30)
    finally:
        server.stop()
    assert answers == [(200, SLOW_ROWS)] * 4, answers
    assert code == 0, server.output()[-2000:]
    assert drained_in < 20.0


def exchange(sock, body: bytes) -> bytes:
    """Sends one kept-alive HTTP/1.1 POST /predict on `sock`; returns the response head."""
    sock.sendall(b"POST /predict HTTP/1.1\r\nHost: inferd\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before an answer: {data!r}"
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(rest) < length:
        rest += sock.recv(65536)
    return head.lower()


def test_kept_alive_connections_are_closed_after_their_answer_during_the_delay():
    """A load balancer that reuses upstream connections (nginx `keepalive`) must not keep using
    a draining pod's connection until the listener closes under it: during the delay each
    answer says `Connection: close`, and the server then closes that connection."""
    import socket

    server = DrainingInferd(3.0, 5.0)
    body = json.dumps(GOOD).encode()
    try:
        sock = socket.create_connection(("127.0.0.1", server.http_port), timeout=5)
        head = exchange(sock, body)
        assert head.startswith(b"http/1.1 200") and b"connection: close" not in head, head
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 2
        while requests.get(server.url + "/v2/health/ready", timeout=1).status_code == 200:
            assert time.monotonic() < deadline, "readiness never failed after SIGTERM"
            time.sleep(0.01)
        # The same connection, opened before the signal: answered, then closed by the server.
        head = exchange(sock, body)
        assert head.startswith(b"http/1.1 200") and b"connection: close" in head, head
        assert sock.recv(1) == b"", "the server kept the connection open"
        sock.close()
        assert server.proc.wait(3.0 + 5.0 + 5.0) == 0
    finally:
        server.stop()
