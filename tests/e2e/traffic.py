"""A bounded HTTP request loop, run in a thread while the cluster changes under it."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from types import TracebackType


def answers(url: str, timeout: float = 3) -> bool:
    """True when one GET of `url` answers HTTP 200 within `timeout` s."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False


class RequestLoop:
    """GETs `url` every `interval` seconds until stopped or `max_seconds` pass.

    Counts requests and failures (a status other than 200, a timeout, a refused connection);
    `describe_failures()` groups them by reason and says when, in seconds since the loop
    started, the first and last of each happened, so a failure can be matched with the step
    that caused it. Only for addresses on this machine.
    """

    def __init__(self, url: str, interval: float = 0.05, timeout: float = 3,
                 max_seconds: float = 600) -> None:
        self.url = url
        self.interval = interval
        self.timeout = timeout
        self.max_seconds = max_seconds
        self.total = 0
        self.failures = 0
        self.reasons: Counter[str] = Counter()
        self.failed_at: dict[str, list[float]] = {}
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self._started = time.monotonic()
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.total += 1
            try:
                with urllib.request.urlopen(self.url, timeout=self.timeout) as response:
                    response.read()
                    if response.status != 200:
                        self._fail(f"HTTP {response.status}")
            except urllib.error.HTTPError as exc:
                self._fail(f"HTTP {exc.code}")
            except OSError as exc:
                self._fail(type(getattr(exc, "reason", exc)).__name__)
            self._stop.wait(self.interval)

    def _fail(self, reason: str) -> None:
        self.failures += 1
        self.reasons[reason] += 1
        self.failed_at.setdefault(reason, []).append(time.monotonic() - self._started)

    def describe_failures(self) -> str:
        return ", ".join(
            f"{n}x {r} (between {min(self.failed_at[r]):.1f} s and {max(self.failed_at[r]):.1f} s)"
            for r, n in self.reasons.most_common()) or "none"

    def __enter__(self) -> RequestLoop:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout + 5)
