"""The ranked answers over HTTP: the page, the two JSON routes, and their error statuses."""

from dataclasses import asdict
from itertools import groupby

from flask import Blueprint, render_template, request

from mlservice.answers import current_answers
from mlservice.answers.ranking import (
    ALLOWED_K,
    DEFAULT_K,
    DEFAULT_WEIGHT,
    MAX_WEIGHT,
    MIN_WEIGHT,
    InvalidParameter,
    MissingParameter,
    ParameterError,
    RepeatedParameter,
    parse_parameters,
)
from mlservice.answers.responses import Answers, Questions
from mlservice.errors import json_error
from mlservice.responses import json_response

bp = Blueprint(
    "answers",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/answers/static",
)
api_bp = Blueprint("answers_api", __name__, url_prefix="/api/v1")

# The one place where a parameter problem becomes an HTTP status and an error code.
STATUS = {
    MissingParameter: (400, "missing_parameter"),
    RepeatedParameter: (400, "repeated_parameter"),
    InvalidParameter: (422, "invalid_parameter"),
}


@api_bp.errorhandler(ParameterError)
def parameter_error(error: ParameterError):
    status, code = STATUS[type(error)]
    return json_error(status, code, error.message, {"parameter": error.parameter})


@api_bp.get("/questions")
def questions():
    questions = [asdict(question) for question in current_answers().questions]
    return json_response(Questions(questions=questions))


@api_bp.get("/answers")
def answers():
    table = current_answers()
    question, weight, k = parse_parameters(request.args, table)
    body = Answers(
        question=asdict(table.question(question)),
        weight=weight,
        k=k,
        answers=table.rank(question, weight, k),
    )
    return json_response(body)


@bp.get("/answers")
def page():
    table = current_answers()
    default = table.questions[0].id
    question, weight, k = default, DEFAULT_WEIGHT, DEFAULT_K
    error = None
    try:
        question, weight, k = parse_parameters(request.args, table, default_question=default)
    except ParameterError as problem:
        error = problem  # shown beside the form, which keeps the defaults
    results = [] if error else [_highlighted(answer) for answer in table.rank(question, weight, k)]
    page = render_template(
        "answers.html",
        tasks=[(task, list(group)) for task, group in groupby(table.questions, lambda q: q.task)],
        question=table.question(question),
        weight=weight,
        k=k,
        allowed_k=ALLOWED_K,
        weight_range=(MIN_WEIGHT, MAX_WEIGHT),
        results=results,
        error=error,
    )
    return page, 400 if error else 200


def _highlighted(answer: dict) -> dict:
    # Three plain strings; the template autoescapes each and wraps the middle one in <mark>.
    passage, start, end = answer["passage"], answer["start"], answer["end"]
    return {**answer, "before": passage[:start], "span": passage[start:end], "after": passage[end:]}
