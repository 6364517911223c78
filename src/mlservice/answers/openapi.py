"""The ranked answers' part of the OpenAPI document: two paths, generated from the models."""

from typing import Literal

from flask import Flask
from pydantic import Field, create_model

from mlservice.answers import EXTENSION
from mlservice.answers.ranking import MAX_WEIGHT, MIN_WEIGHT
from mlservice.answers.responses import Answers, Parameters, Questions
from mlservice.openapi import component_schemas, error, get, json_content


def _parameters(question_ids: list[str]) -> list[dict]:
    """The query parameters, from Parameters, with the question restricted to the table's ids."""
    question = Parameters.model_fields["question"]
    query = create_model(
        "Parameters",
        __base__=Parameters,
        question=(Literal[tuple(question_ids)], Field(description=question.description)),
    )
    schema = query.model_json_schema()
    return [
        {
            "name": name,
            "in": "query",
            "required": name in schema["required"],
            "description": field.pop("description"),
            "schema": field,
        }
        for name, field in schema["properties"].items()
    ]


def document_part(app: Flask) -> dict:
    """Paths and schemas for mlservice.openapi to merge; the question ids come from the table."""
    table = app.extensions[EXTENSION]
    answers = {
        "summary": "The top k passages for a question, by the weighted final_score",
        "description": "final_score = weight * score + (1 - weight) * pass_rank_score; each "
        "passage appears once (its best answer), ties keep the table's order.",
        "parameters": _parameters([question.id for question in table.questions]),
        "responses": {
            "200": {"description": "Ranked answers, best first", "content": json_content(Answers)},
            "400": error("question is missing, or a parameter is given more than once"),
            "422": error(
                f"Unknown question, weight not a number in [{MIN_WEIGHT:g}, {MAX_WEIGHT:g}], "
                "or k not allowed"
            ),
        },
    }
    return {
        "paths": {
            "/api/v1/questions": get("The example's questions, grouped by task", Questions),
            "/api/v1/answers": {"get": answers},
        },
        "schemas": component_schemas([Questions, Answers]),
    }
