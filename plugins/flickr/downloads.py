"""Polite, crash-safe downloading: a token bucket, retries with backoff, whole files or none.

A file is written under a temporary name in its final folder, flushed to disk, then renamed
into place, so a crash at any moment leaves either the whole file or no file under its name.
"""

import fcntl
import hashlib
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lablr.core.errors import LablrError
from lablr.core.files import atomic_file

PARTIAL = ".part"


class TokenBucket:
    """At most `burst + rate * t` acquisitions in any window of t seconds (thread-safe)."""

    def __init__(self, per_hour: float, burst: int = 1, *, clock=time.monotonic, sleep=time.sleep):
        if per_hour <= 0:
            raise LablrError("The call rate must be above zero calls per hour.")
        self.rate = per_hour / 3600.0
        self.capacity = max(1, burst)
        self._tokens = float(self.capacity)
        self._clock, self._sleep = clock, sleep
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self):
        """Take one token, waiting until there is one."""
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1 - 1e-9:  # float rounding must not leave a call waiting forever
                    self._tokens = max(0.0, self._tokens - 1)
                    return
                wait = (1 - self._tokens) / self.rate
            self._sleep(wait)


class Transient(Exception):
    """A failure worth retrying: a timeout, a dropped connection, a 5xx or a rate-limit answer."""

    def __init__(self, message, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class Gone(Exception):
    """A failure that retrying will not fix (the file was deleted, access refused)."""


@dataclass(frozen=True)
class Retry:
    attempts: int = 6
    backoff: float = 1.0  # seconds before the first retry; doubles after each failure
    cap: float = 120.0

    def call(self, function, *args, on_retry=None, sleep=time.sleep):
        """function(*args), tried again after a Transient failure, with backoff and jitter."""
        for attempt in range(1, self.attempts + 1):
            try:
                return function(*args)
            except Transient as error:
                if attempt == self.attempts:
                    raise
                delay = min(self.cap, self.backoff * 2 ** (attempt - 1)) * random.uniform(0.75, 1.25)
                if error.retry_after is not None:
                    delay = min(self.cap, max(delay, error.retry_after))
                if on_retry:
                    on_retry(error, attempt, delay)
                sleep(delay)


def write_whole(destination: Path, chunks) -> tuple[int, str]:
    """Write byte chunks to destination atomically; returns (size, sha256).

    The bytes go to `destination.part`, are fsynced, and the file is renamed into place and the
    folder fsynced: after a crash the name holds the whole file or nothing.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with atomic_file(destination, "wb", partial=destination.with_name(destination.name + PARTIAL)) as file:
        for chunk in chunks:
            file.write(chunk)
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def remove_partials(paths) -> int:
    """Delete files a killed run left half-written (call while holding the folder's lock)."""
    removed = 0
    for path in paths:
        path.unlink(missing_ok=True)
        removed += 1
    return removed


class ExclusiveLock:
    """One fetcher per catalog: an flock the kernel releases even when the process is killed."""

    def __init__(self, path: Path, what: str):
        self.path, self.what = Path(path), what
        self._file = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise LablrError(f"Another process is already {self.what} (it holds {self.path}). "
                             "Wait for it to finish, or stop it first.") from None
        return self

    def __exit__(self, *exc):
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()
