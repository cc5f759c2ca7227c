"""Progress displays: a bar per phase (`lablr fetch`), or one overall bar (`lablr build flickr`).

Both give a phase as a context manager with `update(n)`; the overall bar weighs each phase by
its expected share of the time, so the whole run moves one bar from 0 to 100%. Bars are drawn on a
terminal only (lablr.core.progress); off one, a plain line says each phase as it ends.
"""

import sys
import time
from contextlib import contextmanager


class Silent:
    @contextmanager
    def phase(self, name, total, unit="step"):
        yield _Counter()


class PhaseBars:
    """A tqdm bar for each phase, the way `lablr fetch` shows them."""

    @contextmanager
    def phase(self, name, total, unit="step"):
        from lablr.core.progress import progress_bar

        with progress_bar(total=total, desc=name, unit=unit) as bar:
            counter = _Counter(lambda done: bar.update(done - bar.n))
            yield counter
        if bar.disable:
            _say(f"{name}: {counter.n:,}")


class Overall:
    """One bar for a run of phases; `weights` are each phase's share of the whole (any scale)."""

    def __init__(self, weights: dict, *, enabled=True):
        from lablr.core.progress import progress_bar

        self.weights, self.enabled = dict(weights), enabled
        self.bar = progress_bar(total=100.0, unit="%", shown=enabled,
                                bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed} {postfix}")
        self._base = 0.0

    def _share(self, name):
        return 100.0 * self.weights.get(name, 0) / (sum(self.weights.values()) or 1)

    @contextmanager
    def phase(self, name, total, unit="step"):
        share, start = self._share(name), self._base
        counter = _Counter(lambda done: self._show(start + share * min(1.0, done / total) if total else start))
        self.bar.set_description_str(name)
        began = time.monotonic()
        try:
            yield counter
        finally:
            self._base = start + share
            self._show(self._base)
        if self.enabled and self.bar.disable:
            _say(f"{name}: done in {time.monotonic() - began:.0f} s")

    def _show(self, position):
        self.bar.update(min(100.0, position) - self.bar.n)

    def close(self):
        self.bar.close()


def _say(line: str):
    """A phase's line where no bar is drawn (a log file, CI)."""
    print(line, file=sys.stderr, flush=True)


class _Counter:
    def __init__(self, on_change=None):
        self.n, self.on_change = 0, on_change

    def update(self, n=1):
        self.n += n
        if self.on_change:
            self.on_change(self.n)


def as_progress(progress):
    """True -> a bar per phase; False or None -> nothing; a display with phase() -> itself."""
    if hasattr(progress, "phase"):
        return progress
    return PhaseBars() if progress else Silent()
