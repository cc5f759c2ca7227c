"""`lablr serve`: uvicorn with one Lablr app per worker, quiet except for one ready line."""

import copy
import os

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from lablr.core import defaults

from .app import ENV_ADDRESS, ENV_MAX_BODY, ENV_MODEL, ENV_PERSONAL


def serve(host=defaults.HOST, port=defaults.PORT, model=defaults.DEFAULT_MODEL, workers=1,
          max_body_bytes=defaults.MAX_BODY_BYTES, access_log=False, personal=True):
    # Workers are separate processes that build their own app: the settings travel in the environment.
    shown_host = f"[{host}]" if ":" in host else host
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    os.environ.update({ENV_MODEL: str(model), ENV_MAX_BODY: str(max_body_bytes),
                       ENV_ADDRESS: f"http://{shown_host}:{port}", ENV_PERSONAL: "1" if personal else "0"})
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"]["lablr"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    log_config["loggers"]["uvicorn.error"] = {"level": "WARNING"}  # uvicorn's own startup lines
    log_config["loggers"]["uvicorn.access"]["level"] = "INFO" if access_log else "WARNING"
    uvicorn.run("lablr.server.app:create_app_from_env", factory=True, host=host, port=port, workers=workers,
                log_config=log_config, access_log=access_log,
                limit_concurrency=None, timeout_graceful_shutdown=5)
