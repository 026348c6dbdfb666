"""``moment-search serve`` as a user runs it: what it says at start, per request, and on failure."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from moment_search.serve.access_log import redacted


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from moment_search.cli.app import main; "
            "sys.exit(main(sys.argv[1:]))", "serve", *args]


class Server:
    """A ``serve`` subprocess whose stderr lines are collected as they come."""

    def __init__(self, *args: str):
        self.lines: list[str] = []
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(serve_command(*args), stderr=subprocess.PIPE,
                                        stdout=subprocess.DEVNULL, text=True, env=env)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line.rstrip())

    def wait_for(self, text: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.lines if text in line]
            if found:
                return found[0]
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no line with {text!r}; got {self.lines}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def test_serve_says_where_it_listens_what_it_loaded_and_logs_each_request(served_index):
    port = free_port()
    server = Server("--index", str(served_index), "--port", str(port), "--api-key", "s3cret",
                    "--parallel", "2")
    try:
        ready = server.wait_for("ready:")
        assert str(served_index) in ready and "6 videos" in ready and "ONNX int8" in ready
        assert "2 worker thread(s)" in ready
        server.wait_for(f"running on http://127.0.0.1:{port}")
        url = f"http://127.0.0.1:{port}/api/search?q=person+does+action&k=2&key=s3cret"
        with ThreadPoolExecutor(8) as pool:  # concurrent clients, all answered
            statuses = list(pool.map(lambda _: urllib.request.urlopen(url, timeout=30).status,
                                     range(16)))
        assert statuses == [200] * 16
        line = server.wait_for("GET /api/search")
        assert " 200 " in line and line.endswith(" ms") and "s3cret" not in line
        assert "key=***" in line
    finally:
        server.stop()
    assert sum("GET /api/search" in line for line in server.lines) == 16


def test_serve_stops_loudly_with_exit_1_when_the_index_cannot_be_loaded(served_index, tmp_path):
    index = shutil.copytree(served_index, tmp_path / "index")
    faiss_file = next(index.glob("index-*.faiss"))
    data = bytearray(faiss_file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle
    faiss_file.write_bytes(bytes(data))
    result = subprocess.run(serve_command("--index", str(index), "--port", str(free_port())),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "error: cannot serve" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [("--port", "70000"), ("--index", "/no/such/index")])
def test_serve_refuses_bad_options_in_one_line(args):
    result = subprocess.run(serve_command(*args), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr


def test_keys_never_reach_the_log():
    assert redacted("q=a&key=s3cret&k=2") == "q=a&key=***&k=2"
    assert redacted("key=s3cret") == "key=***"
    assert redacted("monkey=1") == "monkey=1"
    assert redacted("%6Bey=s3cret&q=a") == "key=***&q=a"  # the server reads it as key too


