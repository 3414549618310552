"""A bounded load test of the HTTP server on loopback: a fixed number of requests at a fixed
rate, with some over the limits mixed in; p50/p99 latency, errors and the server's peak RSS.

Prints one JSON line of figures (`pytest -s` shows it) and writes it to `serve_load.json` in the
test's temporary folder.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = 200
SECONDS = 20.0  # the requests are spread evenly over this time
CLIENTS = 4
TEXTS = ["Angela Merkel met Emmanuel Macron in Paris .",
         "EU rejects German call to boycott British lamb .",
         "John Smith works for Acme Corp in New York ."]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _body(i: int) -> tuple[dict, int]:
    """Request i and the status it must get: mostly good, some over a limit."""
    if i % 20 == 7:
        return {"texts": ["x" * 30_000]}, 200  # over max_chars: an error in its slot only
    if i % 20 == 13:
        return {"texts": ["a"] * 300}, 413  # over max_texts
    return {"texts": [TEXTS[j % 3] for j in range(1 + i % 8)]}, 200


@pytest.mark.slow
def test_bounded_load_on_loopback(tmp_path, tiny_run) -> None:
    import httpx

    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    server = subprocess.Popen([sys.executable, "-m", "occamtune.cli", "serve", str(tiny_run),
                               "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    latencies: list[float] = []
    wrong: list[str] = []
    try:
        end = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stderr.read()[-3000:]
            assert time.monotonic() < end, "the server did not come up"
            time.sleep(0.5)
        start = time.monotonic()

        def client(k: int) -> None:
            with httpx.Client(timeout=30) as http:
                for i in range(k, REQUESTS, CLIENTS):
                    time.sleep(max(0.0, start + i * SECONDS / REQUESTS - time.monotonic()))
                    body, status = _body(i)
                    t0 = time.perf_counter()
                    try:
                        got = http.post(f"{url}/predict", json=body)
                    except httpx.HTTPError as exc:
                        wrong.append(f"request {i}: {exc!r}")
                        continue
                    latencies.append((time.perf_counter() - t0) * 1000)
                    if got.status_code != status:
                        wrong.append(f"request {i}: {got.status_code} {got.text[:200]}")

        threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=SECONDS + 120)
        wall = time.monotonic() - start
        rss = _peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    q = statistics.quantiles(latencies, n=100)
    figures = {"requests": REQUESTS, "clients": CLIENTS, "wall_s": round(wall, 1),
               "p50_ms": round(q[49], 1), "p99_ms": round(q[98], 1),
               "max_ms": round(max(latencies), 1), "errors": len(wrong),
               "peak_rss_mb": round(rss, 1)}
    print(json.dumps(figures))
    (tmp_path / "serve_load.json").write_text(json.dumps(figures))
    assert not wrong, wrong[:5]
    assert len(latencies) == REQUESTS
    assert wall < SECONDS + 60  # the server kept up, or nearly
