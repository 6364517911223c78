"""The ranked-answers example over HTTP: a page at /answers and two JSON routes under /api/v1."""

from dataclasses import asdict
from itertools import groupby

from flask import Blueprint, render_template, request

from mlservice.answers import (
    ALLOWED_K,
    DEFAULT_K,
    DEFAULT_WEIGHT,
    ParameterError,
    current_answers,
    parse_parameters,
)
from mlservice.errors import ApiError

bp = Blueprint("answers", __name__)
api_bp = Blueprint("answers_api", __name__, url_prefix="/api/v1")


@api_bp.get("/questions")
def questions():
    return {"questions": [asdict(question) for question in current_answers().questions]}


@api_bp.get("/answers")
def answers():
    table = current_answers()
    try:
        question, weight, k = parse_parameters(request.args, table)
    except ParameterError as error:
        details = {"parameter": error.parameter}
        raise ApiError(error.status, error.code, error.message, details) from None
    return {
        "question": asdict(table.question(question)),
        "weight": weight,
        "k": k,
        "answers": table.rank(question, weight, k),
    }


@bp.get("/answers")
def page():
    table = current_answers()
    default = table.questions[0].id
    question, weight, k = default, DEFAULT_WEIGHT, DEFAULT_K
    error = None
    try:
        question, weight, k = parse_parameters(request.args, table, default_question=default)
    except ParameterError as problem:
        error = problem
    results = [] if error else [_highlighted(answer) for answer in table.rank(question, weight, k)]
    page = render_template(
        "answers.html",
        tasks=[(task, list(group)) for task, group in groupby(table.questions, lambda q: q.task)],
        question=table.question(question),
        weight=weight,
        k=k,
        allowed_k=ALLOWED_K,
        results=results,
        error=error,
    )
    return page, 400 if error else 200


def _highlighted(answer: dict) -> dict:
    # Three plain strings; the template autoescapes each and wraps the middle one in <mark>.
    passage, start, end = answer["passage"], answer["start"], answer["end"]
    return {**answer, "before": passage[:start], "span": passage[start:end], "after": passage[end:]}
