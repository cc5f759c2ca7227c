"""`lablr serve`: uvicorn with one Lablr app per worker, quiet except for one ready line."""

import copy
import ctypes
import os

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from .connections import HeadDeadlineProtocol
from .options import ServerOptions


def serve(options: ServerOptions | None = None, **settings):
    """Run the server with these options (or a ServerOptions made of `settings`) until it is stopped."""
    options = options or ServerOptions(**settings)
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
