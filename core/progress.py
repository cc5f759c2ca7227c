"""Progress bars, one way for every command: on a terminal a bar, off one (a log file, CI) nothing.

A bar redraws itself with carriage returns; in a file each redraw is kept, and a log fills with them.
"""

import sys


def progress_bar(iterable=None, *, shown=True, **options):
    """A tqdm bar on stderr, drawn only where stderr is a terminal; `shown=False` (--quiet) draws none there
    either. Off a terminal it is still a bar that counts (`n`, `total`), drawing nothing."""
    from tqdm import tqdm

    return tqdm(iterable, disable=None if shown else True, file=sys.stderr, dynamic_ncols=True, **options)


def keras_verbose(shown=True):
    """Keras's `verbose` for training, the same way: its bar on a terminal (Keras writes to stdout); off one,
    a line an epoch (2), as its bar there writes a line every 50 ms."""
    if not shown:
        return 0
    return "auto" if sys.stdout.isatty() else 2
