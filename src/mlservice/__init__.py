"""mlservice: a Flask machine-learning service, built to be tested, containerised and deployed."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlservice.service import Service


def create_app(test_config: dict | None = None) -> "Service":
    """Build the app; raise ConfigError or ModelError rather than start half-alive."""
    # Imported here so that `mlservice smoke` and the settings check load neither Flask nor numpy.
    from mlservice import (
        api,
        config,
        errors,
        health,
        logs,
        metrics,
        model,
        openapi,
        security,
        telemetry,
        web,
    )
    from mlservice.service import Service

    app = Service(__name__)
    app.config.from_mapping(config.from_environ())
    if test_config:
        app.config.update(test_config)
    logs.configure(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])

    model.init_app(app)
    errors.init_app(app)
    security.init_app(app)
    # The outermost WSGI middleware: everything the app does runs inside the request's telemetry.
    telemetry.init_app(app, metrics.init_app(app))
    app.register_blueprint(health.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(web.bp)
    # The nav links only to the pages of the blueprints that are registered.
    app.jinja_env.globals["blueprints"] = app.blueprints

    # The ranked-answers example: to remove it, delete this block and src/mlservice/answers/.
    from mlservice import answers

    answers.init_app(app)

    # Last, so it holds the paths every registered feature contributes.
    openapi.init_app(app)
    return app
