"""The ranked answers: a table of pre-computed answers, checked and indexed at start-up.

The table (CSV) has one row per candidate answer: the question (`query`), the passage it was
found in, the answer span `passage[start:end]`, and two scores. It is read once; each question's
rows become a few NumPy arrays, so a query ranks only its own rows and never scans the table.
"""

import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import pandas as pd
from werkzeug.datastructures import MultiDict

from mlservice.config import ConfigError

COLUMNS = (
    "query",
    "passage_id",
    "passage",
    "title",
    "task",
    "score",
    "pass_rank_score",
    "start",
    "end",
    "answer",
)
NOT_EMPTY = ("query", "passage_id", "passage", "task", "answer")  # a title may be blank
NUMBERS = ("score", "pass_rank_score")
OFFSETS = ("start", "end")
# What each ranked answer reports, besides its final_score.
REPORTED = (
    "passage_id",
    "title",
    "task",
    "passage",
    "start",
    "end",
    "answer",
    "score",
    "pass_rank_score",
)
ALLOWED_K = (5, 10, 20, 30, 50)
DEFAULT_K = 10
DEFAULT_WEIGHT = 0.5
MIN_WEIGHT, MAX_WEIGHT = 0.0, 1.0  # weight of score; the rest goes to pass_rank_score
MAX_ID_LENGTH = 60
WHOLE_NUMBER = re.compile(r"[+-]?\d+")
K_TEXT = re.compile(r"[+-]?\d{1,9}")  # a whole number short enough for int() to read quickly


class AnswersError(ConfigError):
    """The answers table cannot be used; the message names the file, and the row and column."""


class ParameterError(ValueError):
    """A query parameter is unusable; `parameter` names it for the JSON error and the page."""

    def __init__(self, parameter: str, message: str):
        super().__init__(message)
        self.parameter, self.message = parameter, message


class MissingParameter(ParameterError):
    """A required parameter is absent."""


class RepeatedParameter(ParameterError):
    """A parameter is given more than once."""


class InvalidParameter(ParameterError):
    """A parameter's value is not one the table or the ranking accepts."""


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    task: str


@dataclass(frozen=True)
class _Candidates:
    """One question's rows, in table order, ready to rank."""

    records: tuple[dict, ...]  # the fields each answer reports, final_score aside
    score: np.ndarray
    pass_rank_score: np.ndarray
    passage: np.ndarray  # a small integer per distinct passage_id, for de-duplication


class AnswerTable:
    def __init__(self, questions: list[Question], candidates: dict[str, _Candidates]):
        self.questions = questions  # grouped by task, both in order of first appearance
        self._by_id = {question.id: question for question in questions}
        self._candidates = candidates

    def __contains__(self, question_id: str) -> bool:
        return question_id in self._by_id

    def question(self, question_id: str) -> Question:
        return self._by_id[question_id]

    def rank(self, question_id: str, weight: float, k: int) -> list[dict]:
        """The top k passages by final_score = weight * score + (1 - weight) * pass_rank_score.

        A passage found more than once keeps its best-scoring answer. Ties keep table order,
        so the same request always gets the same list.
        """
        rows = self._candidates[question_id]
        final = weight * rows.score + (1 - weight) * rows.pass_rank_score
        # lexsort's last key is the primary one: final_score descending, then table order.
        order = np.lexsort((np.arange(len(final)), -final))
        _, first_seen = np.unique(rows.passage[order], return_index=True)
        best = order[np.sort(first_seen)][:k]
        return [{**rows.records[i], "final_score": float(final[i])} for i in best]


def question_id(text: str) -> str:
    """A stable, URL-safe id: the question's words as an ASCII slug, e.g. how-fast-does-it-grow."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > MAX_ID_LENGTH:
        slug = slug[:MAX_ID_LENGTH].rsplit("-", 1)[0]
    return slug


def load(path: str) -> AnswerTable:
    """Read and check the CSV at `path`; raise AnswersError naming what is wrong and where."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except OSError as error:
        raise AnswersError(f"Cannot read the answers table {path}: {error.strerror}.") from None
    except UnicodeDecodeError:
        raise AnswersError(f"The answers table {path} is not UTF-8 text.") from None
    except pd.errors.EmptyDataError:
        raise AnswersError(f"The answers table {path} is empty.") from None
    except pd.errors.ParserError as error:
        reason = " ".join(str(error).split())  # pandas' message may span lines
        raise AnswersError(f"The answers table {path} is not valid CSV: {reason}") from None
    return from_frame(frame, path)


def from_frame(frame: pd.DataFrame, source: str) -> AnswerTable:
    """Check a table of text cells (as read from CSV) and index it by question."""
    frame = frame.rename(columns=lambda column: str(column).strip())
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise AnswersError(
            f"The answers table {source}, header row: missing column(s) {', '.join(missing)}."
        )
    if frame.empty:
        raise AnswersError(f"The answers table {source} has a header but no rows.")
    frame = frame[list(COLUMNS)].astype(str)
    problems = _problems(frame)
    if problems:
        row, column, message = min(problems, key=lambda problem: problem[0])
        more = f" ({len(problems) - 1} more problem(s) after it)" if len(problems) > 1 else ""
        raise AnswersError(
            f"The answers table {source}, row {row + 1}, column {column}: {message}{more}."
        )
    return _index(frame, source)


def _problems(frame: pd.DataFrame) -> list[tuple[int, str, str]]:
    """(row position, column, message) for every bad cell; rows count from 0 after the header."""
    problems = []
    for column in NOT_EMPTY:
        for row in np.flatnonzero(frame[column].str.strip() == ""):
            problems.append((row, column, "the cell is empty"))
    for column in NUMBERS:
        values = pd.to_numeric(frame[column].str.strip(), errors="coerce").to_numpy(dtype=float)
        for row in np.flatnonzero(~np.isfinite(values)):
            problems.append((row, column, f"{frame[column].iat[row]!r} is not a finite number"))
    for column in OFFSETS:
        whole = frame[column].str.strip().str.fullmatch(WHOLE_NUMBER.pattern)
        for row in np.flatnonzero(~whole):
            problems.append((row, column, f"{frame[column].iat[row]!r} is not a whole number"))
    if problems:
        return problems  # spans and answers are only checked once the offsets are numbers

    spans = zip(frame["passage"], frame["start"], frame["end"], frame["answer"], strict=True)
    for row, (passage, start_text, end_text, answer) in enumerate(spans):
        start, end = int(start_text), int(end_text)
        if start < 0:
            problems.append((row, "start", f"{start} is negative"))
        elif start >= end:
            problems.append((row, "end", f"{end} is not after start {start}"))
        elif end > len(passage):
            problems.append((row, "end", f"{end} is past the passage's end ({len(passage)})"))
        elif passage[start:end] != answer:
            problems.append(
                (row, "answer", f"{answer!r} is not passage[{start}:{end}] {passage[start:end]!r}")
            )
    first_task: dict[str, str] = {}
    for row, (query, task) in enumerate(zip(frame["query"], frame["task"], strict=True)):
        expected = first_task.setdefault(query, task)
        if task != expected:
            problems.append((row, "task", f"{task!r} differs from this question's {expected!r}"))
    return problems


def _index(frame: pd.DataFrame, source: str) -> AnswerTable:
    frame = frame.assign(
        score=frame["score"].astype(float),
        pass_rank_score=frame["pass_rank_score"].astype(float),
        start=frame["start"].astype(int),
        end=frame["end"].astype(int),
    )
    questions: dict[str, Question] = {}
    rows_by_text = frame.groupby("query", sort=False).indices
    for text, rows in rows_by_text.items():
        slug = question_id(text)
        if not slug or slug in questions:
            other = f" as {questions[slug].text!r}" if slug in questions else ""
            raise AnswersError(
                f"The answers table {source}, row {rows[0] + 1}, column query: {text!r} "
                f"gives the id {slug!r}{other}; question ids are the question's words as a "
                "slug, so reword it."
            )
        questions[slug] = Question(slug, text, frame["task"].iat[rows[0]])

    candidates = {}
    for question in questions.values():
        rows = frame.iloc[rows_by_text[question.text]]
        candidates[question.id] = _Candidates(
            # to_dict gives Python numbers, not NumPy scalars: ready for JSON and the page.
            records=tuple(rows[list(REPORTED)].to_dict("records")),
            score=rows["score"].to_numpy(),
            pass_rank_score=rows["pass_rank_score"].to_numpy(),
            passage=pd.factorize(rows["passage_id"])[0],
        )
    tasks = list(dict.fromkeys(question.task for question in questions.values()))
    ordered = sorted(questions.values(), key=lambda question: tasks.index(question.task))
    return AnswerTable(ordered, candidates)


def parse_parameters(args: MultiDict, table: AnswerTable, default_question: str | None = None):
    """(question id, weight, k) from query parameters, or ParameterError naming the bad one."""
    question = _single(args, "question")
    if question is None:
        if default_question is None:
            raise MissingParameter("question", "question is required.")
        question = default_question
    elif question not in table:
        raise InvalidParameter(
            "question", f"question {question!r} is unknown; GET /api/v1/questions lists the ids."
        )

    weight = DEFAULT_WEIGHT
    if (raw := _single(args, "weight")) is not None:
        try:
            weight = float(raw)
        except ValueError:
            raise InvalidParameter("weight", f"weight must be a number, got {raw!r}.") from None
        if not MIN_WEIGHT <= weight <= MAX_WEIGHT:  # also refuses nan
            raise InvalidParameter(
                "weight", f"weight must be between {MIN_WEIGHT:g} and {MAX_WEIGHT:g}, got {raw!r}."
            )

    k = DEFAULT_K
    if (raw := _single(args, "k")) is not None:
        k = int(raw) if K_TEXT.fullmatch(raw.strip()) else None
        if k not in ALLOWED_K:
            allowed = ", ".join(map(str, ALLOWED_K))
            raise InvalidParameter("k", f"k must be one of {allowed}, got {raw!r}.")
    return question, weight, k


def _single(args: MultiDict, name: str) -> str | None:
    values = args.getlist(name)
    if len(values) > 1:
        message = f"{name} is given {len(values)} times; give it once."
        raise RepeatedParameter(name, message)
    return values[0] if values else None
