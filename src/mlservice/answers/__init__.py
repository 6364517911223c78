"""The ranked-answers example: a page at /answers and two JSON routes under /api/v1.

Everything it needs lives in this folder. To remove the example, delete the folder, the block
that registers it in create_app, and tests/test_answers.py.
"""

from flask import Flask, current_app

from mlservice.answers.ranking import AnswerTable, load

EXTENSION = "mlservice.answers"


def init_app(app: Flask) -> None:
    """Load the table once, at start-up, like the model; a bad table stops the app."""
    # Imported here: both import current_answers from this module.
    from mlservice.answers import openapi, views

    app.extensions[EXTENSION] = load(app.config["ANSWERS_PATH"])
    app.register_blueprint(views.bp)
    app.register_blueprint(views.api_bp)
    app.extensions.setdefault("mlservice.openapi", []).append(openapi.document_part)


def current_answers() -> AnswerTable:
    return current_app.extensions[EXTENSION]
