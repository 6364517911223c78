"""The ranked answers' part of the OpenAPI document: two paths and their schemas."""

from flask import Flask

from mlservice.answers import EXTENSION
from mlservice.answers.ranking import ALLOWED_K, DEFAULT_K, DEFAULT_WEIGHT


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str) -> dict:
    return {"application/json": {"schema": _ref(name)}}


def _error(description: str) -> dict:
    # Error is the service's own schema, in the core document.
    return {"description": description, "content": _json("Error")}


def _get(summary: str, name: str) -> dict:
    return {
        "get": {
            "summary": summary,
            "responses": {"200": {"description": "OK", "content": _json(name)}},
        }
    }


def _object(properties: dict) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


_TEXT = {"type": "string"}
_WEIGHT = {"type": "number", "minimum": 0, "maximum": 1}
_K = {"type": "integer", "enum": list(ALLOWED_K)}

# The questions and ranked passages the two routes return.
SCHEMAS = {
    "Question": _object({"id": _TEXT, "text": _TEXT, "task": _TEXT}),
    "Questions": _object({"questions": {"type": "array", "items": _ref("Question")}}),
    "Answer": _object(
        {
            "passage_id": _TEXT,
            "title": _TEXT,
            "task": _TEXT,
            "passage": _TEXT,
            "start": {"type": "integer", "minimum": 0},
            "end": {"type": "integer", "minimum": 1},
            "answer": {**_TEXT, "description": "passage[start:end], the highlighted span"},
            "score": {"type": "number"},
            "pass_rank_score": {"type": "number"},
            "final_score": {"type": "number"},
        }
    ),
    "Answers": _object(
        {
            "question": _ref("Question"),
            "weight": _WEIGHT,
            "k": _K,
            "answers": {"type": "array", "items": _ref("Answer"), "maxItems": max(ALLOWED_K)},
        }
    ),
}


def _paths(question_ids: list[str]) -> dict:
    answers = {
        "summary": "The top k passages for a question, by the weighted final_score",
        "description": "final_score = weight * score + (1 - weight) * pass_rank_score; each "
        "passage appears once (its best answer), ties keep the table's order.",
        "parameters": [
            {
                "name": "question",
                "in": "query",
                "required": True,
                "description": "A question id from /api/v1/questions",
                "schema": {"type": "string", "enum": question_ids},
            },
            {
                "name": "weight",
                "in": "query",
                "required": False,
                "description": "Weight of score against pass_rank_score",
                "schema": {**_WEIGHT, "default": DEFAULT_WEIGHT},
            },
            {
                "name": "k",
                "in": "query",
                "required": False,
                "description": "How many passages at most",
                "schema": {**_K, "default": DEFAULT_K},
            },
        ],
        "responses": {
            "200": {"description": "Ranked answers, best first", "content": _json("Answers")},
            "400": _error("question is missing, or a parameter is given more than once"),
            "422": _error("Unknown question, weight not a number in [0, 1], or k not allowed"),
        },
    }
    return {
        "/api/v1/questions": _get("The example's questions, grouped by task", "Questions"),
        "/api/v1/answers": {"get": answers},
    }


def document_part(app: Flask) -> dict:
    """Paths and schemas for mlservice.openapi to merge; the question ids come from the table."""
    table = app.extensions[EXTENSION]
    return {"paths": _paths([question.id for question in table.questions]), "schemas": SCHEMAS}
