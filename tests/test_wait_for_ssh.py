"""components/scripts/wait-for-ssh.sh, run for real by bash on this machine, as the
`<node>-ssh-wait` step runs it from the machine running Pulumi (stdin of `bash -s`), against
small TCP servers on loopback standing in for a booting instance's sshd."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from components.transport import render_stdin


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """Accepts on 127.0.0.1:`port` from `after` seconds on, greeting each client with `greeting`."""

    def __init__(self, port: int, greeting: bytes, after: float) -> None:
        self.port, self.greeting, self.after = port, greeting, after
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def serve(self) -> None:
        if self.stop.wait(self.after):
            return
        with socket.socket() as listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen()
            listener.settimeout(0.2)
            while not self.stop.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                with client:
                    client.sendall(self.greeting)


@pytest.fixture
def server() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for one in started:
        one.stop.set()
        one.thread.join(timeout=2)


def wait(port: int, bound: int) -> tuple[subprocess.CompletedProcess[str], float]:
    stdin = render_stdin("wait-for-ssh.sh", {"SSH_HOST": "127.0.0.1", "SSH_PORT": str(port),
                                             "SSH_WAIT_SECONDS": str(bound)})
    start = time.monotonic()
    done = subprocess.run(["bash", "-s"], input=stdin, capture_output=True, text=True,
                          timeout=bound + 30, check=False)
    return done, time.monotonic() - start


def start(servers: list[Server], port: int, greeting: bytes, after: float) -> None:
    one = Server(port, greeting, after)
    servers.append(one)
    one.thread.start()


def test_it_returns_once_sshd_sends_its_banner(server: list[Server]) -> None:
    port = free_port()
    start(server, port, b"SSH-2.0-OpenSSH_9.6\r\n", after=4)
    done, seconds = wait(port, bound=60)
    assert done.returncode == 0, done.stderr
    assert f"127.0.0.1:{port} answers (SSH-2.0-OpenSSH_9.6) after" in done.stderr
    assert 3 < seconds < 30  # waited for the server, not for the bound


def test_it_stops_with_one_line_after_its_bound_when_nothing_answers() -> None:
    port = free_port()
    done, seconds = wait(port, bound=5)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 1
    assert errors == [
        f"error: wait-for-ssh.sh: no SSH server answered at 127.0.0.1:{port} within 5s (last "
        "answer: nothing): is the machine booting, its sshd running, and this address allowed "
        "by the firewall (adminCidrs)?"
    ]
    assert 5 <= seconds < 25


def test_something_that_is_not_sshd_does_not_count(server: list[Server]) -> None:
    port = free_port()
    start(server, port, b"HTTP/1.1 400 Bad Request\r\n", after=0)
    done, _ = wait(port, bound=4)
    assert done.returncode == 1
    assert "last answer: 'HTTP/1.1 400 Bad Request'" in done.stderr
