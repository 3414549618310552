"""`shrink` workers on a real PostgreSQL server: a worker killed with SIGKILL mid-trial does not
hang the others (its trial is failed by Optuna's heartbeat machinery and retried), and a worker
started later on the same command finishes the study.

The test starts a throwaway cluster (`initdb`, `pg_ctl`) in a temporary folder, as the `postgres`
user when run as root, and skips where the server binaries or psycopg2 are missing.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# one pipeline only: every trial after the first is the same pipeline, so a later trial waits
# for the first one's result (the wait that used to hang on a dead worker)
SPACE = ["distill_layers=0", "heads=0.0", "ffn=0.0", "sparsity=0.0", "lowrank_energy=0.0",
         "vocab_trim=false", "codebook=false", "bits=8", "rounding=nearest", "quant_epochs=0"]
# a worker whose trials take `OCCAM_TEST_TRIAL_DELAY` seconds more: killed while inside one
WORKER = """
import os, sys, time  # noqa: E401
import importlib
s = importlib.import_module("occamtune.search.shrink")
delay = float(os.environ.get("OCCAM_TEST_TRIAL_DELAY", "0"))
if delay:
    measure = s.run_candidate
    def slow(*args, **kwargs):
        time.sleep(delay)
        return measure(*args, **kwargs)
    s.run_candidate = slow
from occamtune.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


@pytest.fixture()
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server on a Unix socket in a temporary folder; its SQLAlchemy URL."""
    pytest.importorskip("psycopg2", reason="psycopg2 (psycopg2-binary) is not installed")
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in "
                    "/usr/lib/postgresql/*/bin")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="occam-pg-"))
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        if not shutil.which("runuser"):
            pytest.skip("running as root and runuser is missing")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:  # a free port number: it names the socket file
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = folder / "data"
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres",
                        "--no-sync"], check=True, capture_output=True, timeout=120)
        options = f"-k {folder} -p {port} -c listen_addresses='' -c fsync=off"
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", options, "-l",
                        str(folder / "log"), "-w", "start"], check=True, capture_output=True,
                       timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"could not start a PostgreSQL server: {exc}")
    try:
        yield f"postgresql+psycopg2://postgres@/postgres?host={folder}&port={port}"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
                       check=False, capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def _trials(url: str, states: tuple[str, ...]) -> list:
    import optuna

    try:
        study = optuna.load_study(study_name="s", storage=url)
    except KeyError:  # not created yet
        return []
    return [t for t in study.get_trials(deepcopy=False) if t.state.name in states]


def _wait_for(what: str, check, procs: list, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"a worker ended while waiting for {what}: "
                                     f"{p.stderr.read()[-3000:]}")
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def test_a_killed_worker_neither_hangs_nor_loses_the_study(tmp_path, postgres_url,
                                                           tiny_run) -> None:
    import optuna

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT),
                                                        os.environ.get("PYTHONPATH", "")])}

    def worker(name: str, *extra: str, delay: float = 0.0) -> subprocess.Popen:
        args = ["shrink", str(tiny_run), "--output", str(tmp_path / name), "--storage",
                postgres_url, "--study", "s", "--max-drop", "100", "--quiet", "--heartbeat", "1",
                "--space", *SPACE, *extra]
        return subprocess.Popen([sys.executable, "-c", WORKER, *args],
                                env={**env, "OCCAM_TEST_TRIAL_DELAY": str(delay)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    procs = []
    try:
        a = worker("a", "--trials", "2", delay=600)  # stuck in its first trial until killed
        procs.append(a)
        _wait_for("worker a's first trial", lambda: _trials(postgres_url, ("RUNNING",)), procs)
        b = worker("b", "--trials", "2", "--no-finalize", "--seed", "1")
        procs.append(b)
        _wait_for("worker b's trial", lambda: len(_trials(postgres_url, ("RUNNING",))) >= 2,
                  procs)
        os.kill(a.pid, signal.SIGKILL)
        a.wait(timeout=30)
        # b, alone, waits for the dead worker's trial: no other trial starts to fail it
        _, err = b.communicate(timeout=120)
        assert b.returncode == 0, err[-3000:]
        c = worker("a", "--trials", "2")  # the killed worker's command, run again
        procs.append(c)
        _, err = c.communicate(timeout=120)
        assert c.returncode == 0, err[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    trials = optuna.load_study(study_name="s", storage=postgres_url).trials
    states = [t.state.name for t in trials]
    assert "RUNNING" not in states, states
    assert trials[0].state.name == "FAIL"  # the killed worker's trial, failed as stale
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    measured = [t for t in complete if "duplicate_of" not in t.user_attrs]
    assert len(measured) == 1, [(t.number, t.user_attrs) for t in trials]  # measured once
    assert {t.user_attrs.get("duplicate_of") for t in complete} - {None} <= {measured[0].number}
    assert (tmp_path / "a" / "shrink.json").is_file()
