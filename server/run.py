"""`lablr serve`: uvicorn with one Lablr app per worker, quiet except for one ready line."""

import copy
import ctypes
import os

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from lablr.core import defaults

from .app import (
    ENV_ADDRESS,
    ENV_ALLOWED_HOSTS,
    ENV_BODY_TIMEOUT,
    ENV_MAX_BODY,
    ENV_MODEL,
    ENV_PERSONAL,
)
from .connections import HeadDeadlineProtocol
from .guard import allowed_names


def serve(host=defaults.HOST, port=defaults.PORT, model=defaults.DEFAULT_MODEL, workers=1,
          max_body_bytes=defaults.MAX_BODY_BYTES, access_log=False, allowed_hosts=(),
          body_timeout=defaults.BODY_TIMEOUT, keep_alive=defaults.KEEP_ALIVE_TIMEOUT,
          limit_concurrency=defaults.LIMIT_CONCURRENCY, personal=True):
    # Workers are separate processes that build their own app: the settings travel in the environment.
    shown_host = f"[{host}]" if ":" in host else host
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    return_big_blocks_to_the_system()
    os.environ.update({ENV_MODEL: str(model), ENV_MAX_BODY: str(max_body_bytes),
                       ENV_ADDRESS: f"http://{shown_host}:{port}",
                       ENV_ALLOWED_HOSTS: ",".join(sorted(allowed_names(host, allowed_hosts))),
                       ENV_BODY_TIMEOUT: str(body_timeout), ENV_PERSONAL: "1" if personal else "0"})
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"]["lablr"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    log_config["loggers"]["uvicorn.error"] = {"level": "WARNING"}  # uvicorn's own startup lines
    log_config["loggers"]["uvicorn.access"]["level"] = "INFO" if access_log else "WARNING"
    uvicorn.run("lablr.server.app:create_app_from_env", factory=True, host=host, port=port, workers=workers,
                log_config=log_config, access_log=access_log, http=HeadDeadlineProtocol,
                timeout_keep_alive=keep_alive, limit_concurrency=limit_concurrency, timeout_graceful_shutdown=5)


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
