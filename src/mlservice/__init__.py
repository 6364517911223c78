"""mlservice: a Flask machine-learning service, built to be tested, containerised and deployed."""

from flask import Flask


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app; raise ConfigError or ModelError rather than start half-alive."""
    # Imported here so that `mlservice smoke` loads neither Flask's app nor scikit-learn.
    from mlservice import answers, answers_web, api, config, errors, health, model, security, web

    app = Flask(__name__)
    app.config.from_mapping(config.from_environ())
    if test_config:
        app.config.update(test_config)
    config.configure_logging(app.config["LOG_LEVEL"])

    model.init_app(app)
    answers.init_app(app)
    errors.init_app(app)
    security.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(web.bp)
    app.register_blueprint(answers_web.bp)
    app.register_blueprint(answers_web.api_bp)
    return app
