"""`lablr serve`'s options travel to each worker process as one object."""

from lablr.server.options import ServerOptions


def test_server_options_survive_the_trip_to_a_worker():
    options = ServerOptions(model="/models/mine", host="::1", port=9000, workers=3, allowed_hosts=("lablr.home",),
                            body_timeout=12.5, personal=False)
    back = ServerOptions.from_environment(options.to_environment())
    assert back == options
    assert back.address == "http://[::1]:9000" and "lablr.home" in back.host_names()
    assert ServerOptions.from_environment({}) is None  # outside `lablr serve`: create_app's own defaults
