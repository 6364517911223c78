"""The production app plus two routes the observability tests need: one fails, one takes time."""

import logging
import time

from flask import request

from mlservice.wsgi import app

log = logging.getLogger(__name__)


@app.get("/boom")
def boom():
    raise RuntimeError("the model fell over")


@app.get("/sleep")
def sleep():
    seconds = float(request.args["seconds"])
    log.info("sleeping for %s s", seconds)  # says which worker (pid) holds the request
    time.sleep(seconds)
    return {"slept": seconds}
