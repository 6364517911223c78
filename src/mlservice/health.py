"""Liveness and readiness, for load balancers, Docker's HEALTHCHECK and the deploy smoke test."""

from flask import Blueprint

from mlservice.model import current_model

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    # Liveness: the process answers. No model work, so it stays cheap under load.
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    # Readiness: the app only starts with a loaded model, so answering means ready.
    return {"status": "ready", "model_version": current_model().version}
