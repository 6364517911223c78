"""The ranked answers' JSON bodies and query parameters, as pydantic models.

The two routes build their answers from these models, and the example's part of the OpenAPI
document is generated from them (mlservice.answers.openapi).
"""

from typing import Annotated, Literal

from pydantic import Field

from mlservice.answers.ranking import ALLOWED_K, DEFAULT_K, DEFAULT_WEIGHT, MAX_WEIGHT, MIN_WEIGHT
from mlservice.responses import Body

Weight = Annotated[
    float,
    Field(ge=MIN_WEIGHT, le=MAX_WEIGHT, description="Weight of score against pass_rank_score"),
]
K = Annotated[Literal[ALLOWED_K], Field(description="How many passages at most")]


class Question(Body):
    id: str
    text: str
    task: str


class Questions(Body):
    questions: list[Question]


class Answer(Body):
    passage_id: str
    title: str
    task: str
    passage: str
    start: int = Field(ge=0)
    end: int = Field(ge=1)
    answer: str = Field(description="passage[start:end], the highlighted span")
    score: float
    pass_rank_score: float
    final_score: float


class Answers(Body):
    question: Question
    weight: Weight
    k: K
    answers: list[Answer] = Field(max_length=max(ALLOWED_K))


class Parameters(Body):
    """GET /api/v1/answers's query; the question ids are added per table in the document."""

    question: str = Field(description="A question id from /api/v1/questions")
    weight: Weight = DEFAULT_WEIGHT
    k: K = DEFAULT_K
