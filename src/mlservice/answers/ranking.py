"""The ranked answers: a table of pre-computed answers, checked and indexed at start-up.

The table (CSV) has one row per candidate answer: the question (`query`), the passage it was
found in, the answer span `passage[start:end]`, and two scores. It is read once; each question's
rows become a few NumPy arrays, so a query ranks only its own rows and never scans the table.
"""

import csv
import math
import re
import unicodedata
from dataclasses import dataclass

import numpy as np
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
    """Read and check the CSV at `path`; raise AnswersError naming what is wrong and where.

    Read with the csv module (blank lines are no rows); every row must have at most the header's
    fields, and a shorter one is filled with empty cells, as a spreadsheet shows it.
    """
    try:
        with open(path, encoding="utf-8", newline="") as file:
            lines = list(csv.reader(file, strict=True))
    except OSError as error:
        raise AnswersError(f"Cannot read the answers table {path}: {error.strerror}.") from None
    except UnicodeDecodeError:
        raise AnswersError(f"The answers table {path} is not UTF-8 text.") from None
    except csv.Error as error:
        raise AnswersError(f"The answers table {path} is not valid CSV: {error}.") from None
    lines = [cells for cells in lines if any(cell.strip() for cell in cells)]
    if not lines:
        raise AnswersError(f"The answers table {path} is empty.")
    header, *rows = lines
    for line, cells in enumerate(rows, start=2):
        if len(cells) > len(header):
            raise AnswersError(
                f"The answers table {path} is not valid CSV: Expected {len(header)} fields in "
                f"line {line}, saw {len(cells)}."
            )
    padded = [cells + [""] * (len(header) - len(cells)) for cells in rows]
    return from_cells(header, padded, path)


def from_rows(rows: list[dict], source: str) -> AnswerTable:
    """from_cells for a table given as one mapping of column to value per row."""
    header = list(dict.fromkeys(column for row in rows for column in row))
    return from_cells(header, [[str(row.get(c, "")) for c in header] for row in rows], source)


def from_cells(header: list[str], rows: list[list[str]], source: str) -> AnswerTable:
    """Check a table of text cells (as read from CSV) and index it by question."""
    names = [str(column).strip() for column in header]
    missing = [column for column in COLUMNS if column not in names]
    if missing:
        raise AnswersError(
            f"The answers table {source}, header row: missing column(s) {', '.join(missing)}."
        )
    if not rows:
        raise AnswersError(f"The answers table {source} has a header but no rows.")
    # One list of text cells per column, in table order (the first of two equal names counts).
    table = {column: [cells[names.index(column)] for cells in rows] for column in COLUMNS}
    problems = _problems(table)
    if problems:
        row, column, message = min(problems, key=lambda problem: problem[0])
        more = f" ({len(problems) - 1} more problem(s) after it)" if len(problems) > 1 else ""
        raise AnswersError(
            f"The answers table {source}, row {row + 1}, column {column}: {message}{more}."
        )
    return _index(table, source)


def _number(text: str) -> float:
    try:
        return float(text.strip()) if "_" not in text else math.nan
    except ValueError:
        return math.nan


def _problems(table: dict[str, list[str]]) -> list[tuple[int, str, str]]:
    """(row position, column, message) for every bad cell; rows count from 0 after the header."""
    problems = []
    for column in NOT_EMPTY:
        for row, cell in enumerate(table[column]):
            if not cell.strip():
                problems.append((row, column, "the cell is empty"))
    for column in NUMBERS:
        for row, cell in enumerate(table[column]):
            if not math.isfinite(_number(cell)):
                problems.append((row, column, f"{cell!r} is not a finite number"))
    for column in OFFSETS:
        for row, cell in enumerate(table[column]):
            if not WHOLE_NUMBER.fullmatch(cell.strip()):
                problems.append((row, column, f"{cell!r} is not a whole number"))
    if problems:
        return problems  # spans and answers are only checked once the offsets are numbers

    spans = zip(table["passage"], table["start"], table["end"], table["answer"], strict=True)
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
    for row, (query, task) in enumerate(zip(table["query"], table["task"], strict=True)):
        expected = first_task.setdefault(query, task)
        if task != expected:
            problems.append((row, "task", f"{task!r} differs from this question's {expected!r}"))
    return problems


def _index(table: dict[str, list[str]], source: str) -> AnswerTable:
    values = {
        **table,
        "score": [float(cell) for cell in table["score"]],
        "pass_rank_score": [float(cell) for cell in table["pass_rank_score"]],
        "start": [int(cell) for cell in table["start"]],
        "end": [int(cell) for cell in table["end"]],
    }
    rows_by_text: dict[str, list[int]] = {}
    for row, text in enumerate(table["query"]):
        rows_by_text.setdefault(text, []).append(row)
    questions: dict[str, Question] = {}
    for text, rows in rows_by_text.items():
        slug = question_id(text)
        if not slug or slug in questions:
            other = f" as {questions[slug].text!r}" if slug in questions else ""
            raise AnswersError(
                f"The answers table {source}, row {rows[0] + 1}, column query: {text!r} "
                f"gives the id {slug!r}{other}; question ids are the question's words as a "
                "slug, so reword it."
            )
        questions[slug] = Question(slug, text, table["task"][rows[0]])

    candidates = {}
    for question in questions.values():
        rows = rows_by_text[question.text]
        passages: dict[str, int] = {}  # a small integer per distinct passage_id, first seen first
        candidates[question.id] = _Candidates(
            records=tuple({name: values[name][row] for name in REPORTED} for row in rows),
            score=np.array([values["score"][row] for row in rows]),
            pass_rank_score=np.array([values["pass_rank_score"][row] for row in rows]),
            passage=np.array(
                [passages.setdefault(table["passage_id"][row], len(passages)) for row in rows]
            ),
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
