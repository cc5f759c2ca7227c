"""What `lablr serve` can set, in one object: the CLI fills it, `serve` runs uvicorn with it, and
each worker process (uvicorn starts them; they build their own app) reads it back from one
environment variable.
"""

import json
import os
from dataclasses import asdict, dataclass, fields

from lablr.core import defaults

from .guard import allowed_names

ENVIRONMENT = "LABLR_SERVER_OPTIONS"  # how the options travel to the worker processes, as JSON


@dataclass(frozen=True)
class ServerOptions:
    model: str = defaults.DEFAULT_MODEL  # a bundle's path or a bundled model's name
    host: str = defaults.HOST
    port: int = defaults.PORT
    workers: int = 1
    max_body_bytes: int = defaults.MAX_BODY_BYTES
    access_log: bool = False
    allowed_hosts: tuple[str, ...] = ()  # besides loopback names and the host served on
    body_timeout: float = defaults.BODY_TIMEOUT
    keep_alive: float = defaults.KEEP_ALIVE_TIMEOUT
    limit_concurrency: int = defaults.LIMIT_CONCURRENCY
    personal: bool = True  # False: serve the bundle alone, neither using nor recording what the user publishes
    extension_ids: tuple[str, ...] = ()  # the only browser extensions answered; none given: any

    @property
    def address(self) -> str:
        """The address people open: http://host:port (an IPv6 host in brackets)."""
        return f"http://{f'[{self.host}]' if ':' in self.host else self.host}:{self.port}"

    def host_names(self) -> list[str]:
        """The Host names the server answers: loopback, the host served on, and the allowed ones."""
        return sorted(allowed_names(self.host, self.allowed_hosts))

    def to_environment(self) -> dict[str, str]:
        return {ENVIRONMENT: json.dumps({**asdict(self), "model": str(self.model)})}

    @classmethod
    def from_environment(cls, environ=os.environ) -> "ServerOptions | None":
        """The options `lablr serve` set for this worker, or None outside `lablr serve`."""
        raw = environ.get(ENVIRONMENT)
        if not raw:
            return None
        known = {f.name for f in fields(cls)}
        values = {name: value for name, value in json.loads(raw).items() if name in known}
        return cls(**{**values, "allowed_hosts": tuple(values.get("allowed_hosts", ())),
                      "extension_ids": tuple(values.get("extension_ids", ()))})
