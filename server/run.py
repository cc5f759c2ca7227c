"""`lablr serve`: uvicorn with one Lablr app per worker, quiet except for one ready line."""

import copy
import ctypes
import errno
import os
import socket

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from lablr.core.errors import LablrError

from .connections import HeadDeadlineProtocol
from .options import ServerOptions


def serve(options: ServerOptions | None = None, **settings):
    """Run the server with these options (or a ServerOptions made of `settings`) until it is stopped."""
    options = options or ServerOptions(**settings)
    check_can_listen(options.host, options.port)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    return_big_blocks_to_the_system()
    # Workers are separate processes that build their own app: the options travel in the environment.
    os.environ.update(options.to_environment())
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"]["lablr"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    log_config["loggers"]["uvicorn.error"] = {"level": "WARNING"}  # uvicorn's own startup lines
    log_config["loggers"]["uvicorn.access"]["level"] = "INFO" if options.access_log else "WARNING"
    uvicorn.run("lablr.server.app:create_app_from_env", factory=True, host=options.host, port=options.port,
                workers=options.workers, log_config=log_config, access_log=options.access_log,
                http=HeadDeadlineProtocol, timeout_keep_alive=options.keep_alive,
                limit_concurrency=options.limit_concurrency, timeout_graceful_shutdown=5)


def check_can_listen(host: str, port: int):
    """Bind as uvicorn will, and let go: a port in use is one line before the model loads, instead of
    uvicorn's two log lines after the ready line. (Another program may still take it in between.)"""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a closed server's port is free
        try:
            probe.bind((host, port))
        except socket.gaierror as error:
            raise LablrError(f"--host {host}: no such address ({error.strerror}).") from None
        except OSError as error:
            raise LablrError(_cannot_listen(host, port, error)) from None


def _cannot_listen(host, port, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return (f"Port {port} on {host} is already in use (another Lablr server, or another program): stop it, "
                f"or choose another port with --port.")
    if error.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine: give --host one of its addresses (127.0.0.1 by default)."
    return f"Cannot listen on {host} port {port}: {error.strerror}."


# glibc serves a block freed from mmap from its heap next time, and a busy server's thread arenas
# then keep every decoded image's memory: the soak benchmark saw RSS climb 60 MB after warm-up.
# A fixed threshold maps each block over 1 MB and unmaps it when freed (~200 MB less, and flat).
MMAP_THRESHOLD = 1 << 20
M_MMAP_THRESHOLD = -3  # mallopt's parameter number in glibc's malloc.h


def return_big_blocks_to_the_system():
    """For this process (mallopt) and the workers uvicorn starts (glibc reads the variable at start)."""
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))
    try:
        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except (OSError, AttributeError):  # not glibc: its allocator has its own policy
        pass
