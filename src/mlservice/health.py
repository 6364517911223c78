"""Liveness and readiness, for load balancers, Docker's HEALTHCHECK, App Engine's warmup requests
and the deploy smoke test."""

from flask import Blueprint

from mlservice.model import current_model
from mlservice.responses import Health, Ready, json_response

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    # Liveness: the process answers. No model work, so it stays cheap under load.
    return json_response(Health(status="ok"))


@bp.get("/readyz")
# App Engine sends a warmup request to each new instance before live traffic (app.yaml's
# inbound_services); gradual traffic migration needs them (docs/deploy/appengine.md).
@bp.get("/_ah/warmup")
def readyz():
    # Readiness: the app only starts with a loaded model, so answering means ready.
    return json_response(Ready(status="ready", model_version=current_model().version))
