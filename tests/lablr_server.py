"""Runs the real `lablr serve` on a free 127.0.0.1 port for a test module."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx

READY = "Lablr is serving"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_server(model, *args, timeout=180, env=None, python=sys.executable):
    """Start `lablr serve --model MODEL` (with this Python); yield (base URL, the log lines so far); stop it after."""
    port = free_port()
    command = [str(python), "-m", "lablr.core.cli", "serve", "--port", str(port), "--model", str(model), *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    lines, ready = [], threading.Event()

    def read():
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if READY in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        deadline = time.monotonic() + timeout
        while not ready.wait(0.2):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("lablr serve did not start:\n" + "\n".join(lines))
        base = f"http://127.0.0.1:{port}"
        _wait_for_health(base, deadline)
        yield base, lines
    finally:
        stop_server(process)


def stop_server(process):
    """Ctrl-C, as a user stops it; killed if it has not stopped within 20 s."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_for_health(base, deadline):
    """The ready line is logged as the app starts, a moment before uvicorn listens: retry until then."""
    while True:
        try:
            httpx.get(base + "/api/v1/health", timeout=30).raise_for_status()
            return
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
