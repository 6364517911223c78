"""The production app plus /threads: the native thread pools as a served request sees them."""

import json

import threadpoolctl

from mlservice.wsgi import app as service


def app(environ, start_response):
    if environ["PATH_INFO"] != "/threads":
        return service(environ, start_response)
    pools = [
        (pool["internal_api"], pool["num_threads"]) for pool in threadpoolctl.threadpool_info()
    ]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(pools).encode()]
