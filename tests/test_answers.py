"""The ranked-answers example: loading and checking the table, ranking, the API and the page."""

import csv
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import html5lib
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from mlservice import create_app
from mlservice.answers.ranking import (
    ALLOWED_K,
    COLUMNS,
    AnswersError,
    MissingParameter,
    from_rows,
    load,
    parse_parameters,
    question_id,
)
from mlservice.config import ConfigError, from_environ

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample_answers.csv"
ANSWERS = "/api/v1/answers"
URL_SAFE = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


def sample_rows() -> list[dict]:
    # Read with the csv module, not the loader, so expectations do not come from the code tested.
    with SAMPLE.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def distinct_passages(question_text: str) -> int:
    return len({row["passage_id"] for row in sample_rows() if row["query"] == question_text})


@pytest.fixture
def app(model_path):
    return create_app({"TESTING": True, "MODEL_PATH": str(model_path), "ANSWERS_PATH": str(SAMPLE)})


@pytest.fixture
def table():
    return load(str(SAMPLE))


def write_csv(path: Path, rows: list[dict], columns=COLUMNS) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def row(query="Why?", passage_id="p1", passage="The answer is here.", answer="answer", **more):
    start = passage.find(answer)
    values = {
        "query": query,
        "passage_id": passage_id,
        "passage": passage,
        "title": f"Title of {passage_id}",
        "task": "general",
        "score": "0.5",
        "pass_rank_score": "0.5",
        "start": str(start),
        "end": str(start + len(answer)),
        "answer": answer,
    }
    return values | {key: str(value) for key, value in more.items()}


# The sample table ---------------------------------------------------------------------------


def test_sample_table_loads_every_question_grouped_by_task(table):
    rows = sample_rows()
    texts = list(dict.fromkeys(r["query"] for r in rows))
    assert sorted(q.text for q in table.questions) == sorted(texts)
    tasks = [q.task for q in table.questions]
    # Grouped: once a task's questions end, that task does not come back.
    assert len(list(dict.fromkeys(tasks))) == len({t for t in tasks})
    assert [t for i, t in enumerate(tasks) if i == 0 or tasks[i - 1] != t] == list(
        dict.fromkeys(tasks)
    )
    assert len(set(tasks)) >= 4
    for question in table.questions:
        assert URL_SAFE.fullmatch(question.id)
        assert question.task == next(r["task"] for r in rows if r["query"] == question.text)


def test_sample_table_exercises_duplicates_and_ties():
    rows = sample_rows()
    pairs = [(r["query"], r["passage_id"]) for r in rows]
    assert len(set(pairs)) < len(pairs), "the sample should repeat a passage for a question"
    scores = [(r["query"], r["score"], r["pass_rank_score"]) for r in rows]
    assert len(set(scores)) < len(scores), "the sample should hold tied scores"


def test_question_ids_are_stable_slugs():
    assert question_id("How fast does lantern moss spread?") == "how-fast-does-lantern-moss-spread"
    assert question_id("Où pousse-t-elle ?") == "ou-pousse-t-elle"
    long_id = question_id("word " * 40)
    assert len(long_id) <= 60
    assert URL_SAFE.fullmatch(long_id)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # 60 characters exactly: kept whole.
        ("a" * 29 + " " + "b" * 30, "a" * 29 + "-" + "b" * 30),
        # 61: cut at 60, then back to the last whole word.
        ("a" * 29 + " " + "b" * 31, "a" * 29),
        ("one two three " + "c" * 50, "one-two-three"),
        (
            "aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm",
            "aaaa-bbbb-cccc-dddd-eeee-ffff-gggg-hhhh-iiii-jjjj-kkkk-llll",
        ),
    ],
)
def test_long_question_ids_are_cut_at_the_last_word_within_sixty_characters(text, expected):
    assert question_id(text) == expected


# Refusing a bad table at start-up ------------------------------------------------------------


def good_rows() -> list[dict]:
    return [
        row(passage_id="p1"),
        row(passage_id="p2", passage="Another answer sits here."),
        row(passage_id="p3", passage="A third answer, longer."),
    ]


def refusal(tmp_path: Path, rows: list[dict], columns=COLUMNS) -> tuple[Path, str]:
    """Write the table, load it, and return its path and the AnswersError's whole message."""
    path = write_csv(tmp_path / "answers.csv", rows, columns)
    with pytest.raises(AnswersError) as raised:
        load(str(path))
    return path, str(raised.value)


@pytest.mark.parametrize(
    ("change", "column", "words"),
    [
        ({"score": "high"}, "score", "'high' is not a finite number"),
        ({"pass_rank_score": "inf"}, "pass_rank_score", "not a finite number"),
        ({"pass_rank_score": ""}, "pass_rank_score", "not a finite number"),
        ({"start": "1.5"}, "start", "'1.5' is not a whole number"),
        ({"end": "x"}, "end", "not a whole number"),
        ({"start": "-1"}, "start", "-1 is negative"),
        ({"start": "8", "end": "8"}, "end", "8 is not after start 8"),
        ({"start": "0", "end": "999"}, "end", "999 is past the passage's end (23)"),
        ({"start": "0", "end": "6"}, "answer", "'answer' is not passage[0:6] 'A thir'"),
        ({"passage": ""}, "passage", "the cell is empty"),
        ({"query": " "}, "query", "the cell is empty"),
        ({"task": "other"}, "task", "'other' differs from this question's 'general'"),
    ],
)
def test_bad_cell_is_refused_naming_file_row_and_column(tmp_path, change, column, words):
    rows = good_rows()
    rows[2] |= change
    path = write_csv(tmp_path / "answers.csv", rows)
    with pytest.raises(AnswersError) as raised:
        load(str(path))
    message = str(raised.value)
    assert message.startswith(f"The answers table {path}, row 3, column {column}: ")
    assert words in message


def test_first_problem_is_reported_with_a_count_of_the_rest(tmp_path):
    rows = good_rows()
    rows[1]["score"] = "?"
    rows[2]["start"] = "?"
    path = write_csv(tmp_path / "answers.csv", rows)
    with pytest.raises(AnswersError, match=r"row 2, column score: .*\(1 more problem"):
        load(str(path))


def test_one_problem_has_no_count(tmp_path):
    rows = good_rows()
    rows[1]["passage"] = ""
    path, message = refusal(tmp_path, rows)
    assert message == (f"The answers table {path}, row 2, column passage: the cell is empty.")


def test_the_first_row_with_a_problem_is_reported_in_the_order_of_the_checks(tmp_path):
    rows = good_rows()
    rows[0] |= {"query": "", "passage": ""}  # one row, two empty cells: query is checked first
    rows[1]["start"] = "x"  # a later row whose column sorts before query
    path, message = refusal(tmp_path, rows)
    assert message == (
        f"The answers table {path}, row 1, column query: the cell is empty"
        " (2 more problem(s) after it)."
    )


def test_every_missing_column_is_named(tmp_path):
    columns = [c for c in COLUMNS if c not in ("title", "end")]
    path, message = refusal(tmp_path, good_rows(), columns)
    assert message == (f"The answers table {path}, header row: missing column(s) title, end.")


def test_a_blank_title_is_allowed(tmp_path):
    rows = good_rows()
    rows[0]["title"] = ""
    table = load(str(write_csv(tmp_path / "answers.csv", rows)))
    ranked = table.rank(table.questions[0].id, 0.5, 5)
    assert [answer["title"] for answer in ranked] == ["", "Title of p2", "Title of p3"]


def test_missing_column_is_refused(tmp_path):
    path = write_csv(tmp_path / "answers.csv", good_rows(), [c for c in COLUMNS if c != "end"])
    with pytest.raises(
        AnswersError, match=rf"{re.escape(str(path))}, header row: .*column\(s\) end"
    ):
        load(str(path))


def test_extra_columns_are_ignored(tmp_path):
    rows = [r | {"pass_id": "7"} for r in good_rows()]
    path = write_csv(tmp_path / "answers.csv", rows, (*COLUMNS, "pass_id"))
    assert [q.text for q in load(str(path)).questions] == ["Why?"]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "is empty"),
        (",".join(COLUMNS).encode() + b"\n", "has a header but no rows"),
        (b"query,answer\n\xff\xfe\n", "is not UTF-8"),
        (
            ",".join(COLUMNS).encode() + b"\n" + b"1," * 9 + b"1\n" + b"2," * 11 + b"2\n",
            "is not valid CSV: .*Expected 10 fields in line 3, saw 12",
        ),
    ],
)
def test_unreadable_tables_are_refused(tmp_path, content, words):
    path = tmp_path / "answers.csv"
    path.write_bytes(content)
    with pytest.raises(AnswersError, match=words):
        load(str(path))


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(AnswersError, match=r"Cannot read the answers table .*nope\.csv"):
        load(str(tmp_path / "nope.csv"))


def test_questions_whose_ids_collide_are_refused(tmp_path):
    rows = [row(query="What is it?"), row(query="What is it!", passage_id="p2")]
    path = write_csv(tmp_path / "answers.csv", rows)
    with pytest.raises(AnswersError, match=r"row 2, column query: .*'what-is-it'"):
        load(str(path))


def test_a_colliding_id_names_the_file_and_the_other_question(tmp_path):
    rows = [row(query="What is it?"), row(query="What is it!", passage_id="p2")]
    path, message = refusal(tmp_path, rows)
    assert message == (
        f"The answers table {path}, row 2, column query: 'What is it!' gives the id "
        "'what-is-it' as 'What is it?'; question ids are the question's words as a slug, "
        "so reword it."
    )


def test_an_id_without_words_names_no_other_question(tmp_path):
    path, message = refusal(tmp_path, [row(query="???")])
    assert message == (
        f"The answers table {path}, row 1, column query: '???' gives the id ''; question ids "
        "are the question's words as a slug, so reword it."
    )


def test_question_without_letters_or_digits_is_refused(tmp_path):
    path = write_csv(tmp_path / "answers.csv", [row(query="???")])
    with pytest.raises(AnswersError, match=r"row 1, column query"):
        load(str(path))


def test_answers_path_setting():
    assert from_environ({})["ANSWERS_PATH"] == "data/sample_answers.csv"
    assert from_environ({"ANSWERS_PATH": " x.csv "})["ANSWERS_PATH"] == "x.csv"
    with pytest.raises(ConfigError, match="ANSWERS_PATH is set but empty"):
        from_environ({"ANSWERS_PATH": "  "})


def test_production_entry_point_stops_with_one_line(tmp_path, model_path):
    rows = good_rows()
    rows[0]["end"] = "500"
    path = write_csv(tmp_path / "broken.csv", rows)
    env = {**os.environ, "MODEL_PATH": str(model_path), "ANSWERS_PATH": str(path)}
    result = subprocess.run(
        [sys.executable, "-c", "import mlservice.wsgi"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        f"mlservice cannot start: The answers table {path}, row 1, column end"
    )


# Ranking --------------------------------------------------------------------------------------


def test_duplicate_passage_keeps_its_best_answer_and_ties_keep_table_order():
    rows = [
        row(passage_id="a", passage="alpha one two", answer="one", score=0.2, pass_rank_score=0.2),
        row(passage_id="b", passage="beta three", answer="three", score=0.5, pass_rank_score=0.5),
        row(passage_id="c", passage="gamma four", answer="four", score=0.5, pass_rank_score=0.5),
        row(passage_id="a", passage="alpha one two", answer="two", score=0.9, pass_rank_score=0.1),
    ]
    table = from_rows(rows, "test")
    [qid] = [q.id for q in table.questions]
    at_score = table.rank(qid, 1.0, 5)
    assert [(r["passage_id"], r["answer"]) for r in at_score] == [
        ("a", "two"),
        ("b", "three"),
        ("c", "four"),
    ]
    # At weight 0 the later 'a' row scores 0.1, so the earlier one (0.2) represents passage a.
    at_pass_rank = table.rank(qid, 0.0, 5)
    assert [(r["passage_id"], r["answer"]) for r in at_pass_rank] == [
        ("b", "three"),
        ("c", "four"),
        ("a", "one"),
    ]
    assert table.rank(qid, 0.0, 5) == at_pass_rank  # deterministic


# Hypothesis: tables with few passages and few score values, so duplicates and ties are common.
SCORES = st.sampled_from(["0", "0.1", "0.25", "0.5", "0.75", "1", "3.5", "-2"])


@st.composite
def tables(draw):
    size = draw(st.integers(min_value=1, max_value=30))
    rows = []
    for _ in range(size):
        passage_id = draw(st.sampled_from("abcdefghij"))
        rows.append(
            row(
                query=draw(st.sampled_from(["First question?", "Second question?"])),
                passage_id=passage_id,
                passage=f"Passage {passage_id} holds an answer.",
                answer=draw(st.sampled_from(["Passage", "holds", "answer"])),
                score=draw(SCORES),
                pass_rank_score=draw(SCORES),
            )
        )
    return rows


def oracle(rows: list[dict], question: str, weight: float, k: int) -> list[tuple]:
    """The ranking written the slow, obvious way: sort all rows, keep each passage's first."""
    scored = [
        (-(weight * float(r["score"]) + (1 - weight) * float(r["pass_rank_score"])), i, r)
        for i, r in enumerate(rows)
        if r["query"] == question
    ]
    seen, kept = set(), []
    for _, _, r in sorted(scored, key=lambda item: item[:2]):
        if r["passage_id"] not in seen:
            seen.add(r["passage_id"])
            kept.append((r["passage_id"], r["answer"], r["score"], r["pass_rank_score"]))
    return kept[:k]


WEIGHTS = st.one_of(st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]), st.floats(0, 1))
KS = st.sampled_from(ALLOWED_K)


def as_tuples(answers: list[dict]) -> list[tuple]:
    return [
        (a["passage_id"], a["answer"], f"{a['score']:g}", f"{a['pass_rank_score']:g}")
        for a in answers
    ]


def normalised(expected: list[tuple]) -> list[tuple]:
    return [(p, a, f"{float(s):g}", f"{float(r):g}") for p, a, s, r in expected]


# A loaded CI runner can take longer than hypothesis' 200 ms default to build a table.
RELAXED = settings(deadline=None)


@RELAXED
@given(rows=tables(), weight=WEIGHTS, k=st.sampled_from([1, 2, 3, *ALLOWED_K]))
def test_ranking_properties(rows, weight, k):
    table = from_rows(rows, "generated")
    for question in table.questions:
        answers = table.rank(question.id, weight, k)
        finals = [a["final_score"] for a in answers]
        assert finals == sorted(finals, reverse=True)
        ids = [a["passage_id"] for a in answers]
        assert len(ids) == len(set(ids))
        distinct = {r["passage_id"] for r in rows if r["query"] == question.text}
        assert len(answers) == min(k, len(distinct))
        for a in answers:
            assert a["final_score"] == weight * a["score"] + (1 - weight) * a["pass_rank_score"]
            assert a["passage"][a["start"] : a["end"]] == a["answer"]
        assert as_tuples(answers) == normalised(oracle(rows, question.text, weight, k))


@RELAXED
@given(rows=tables(), k=KS, other=st.lists(SCORES, min_size=30, max_size=30))
def test_weight_one_ranks_by_score_alone_and_zero_by_pass_rank_score(rows, k, other):
    table = from_rows(rows, "generated")
    # Replace the other score with unrelated values: the ranking must not move.
    new_pass_rank = [r | {"pass_rank_score": v} for r, v in zip(rows, other, strict=False)]
    new_score = [r | {"score": v} for r, v in zip(rows, other, strict=False)]
    pass_rank_changed = from_rows(new_pass_rank, "generated")
    score_changed = from_rows(new_score, "generated")
    for question in table.questions:
        by_score = table.rank(question.id, 1.0, k)
        assert [a["final_score"] for a in by_score] == [a["score"] for a in by_score]
        assert passage_ids(pass_rank_changed.rank(question.id, 1.0, k)) == passage_ids(by_score)
        by_pass_rank = table.rank(question.id, 0.0, k)
        assert [a["final_score"] for a in by_pass_rank] == [
            a["pass_rank_score"] for a in by_pass_rank
        ]
        assert passage_ids(score_changed.rank(question.id, 0.0, k)) == passage_ids(by_pass_rank)


def passage_ids(answers: list[dict]) -> list[str]:
    return [a["passage_id"] for a in answers]


# The JSON API ---------------------------------------------------------------------------------


def test_questions_endpoint_lists_ids_text_and_task(client, table):
    response = client.get("/api/v1/questions")
    assert response.status_code == 200
    questions = response.get_json()["questions"]
    assert questions == [{"id": q.id, "text": q.text, "task": q.task} for q in table.questions]
    assert {q["text"] for q in questions} == {r["query"] for r in sample_rows()}


def test_answers_endpoint_returns_ranked_spans(client, table):
    question = table.questions[2]
    response = client.get(ANSWERS, query_string={"question": question.id, "weight": 0.3, "k": 5})
    assert response.status_code == 200
    body = response.get_json()
    assert body["question"] == {"id": question.id, "text": question.text, "task": question.task}
    assert (body["weight"], body["k"]) == (0.3, 5)
    answers = body["answers"]
    assert len(answers) == min(5, distinct_passages(question.text))
    for answer in answers:
        assert set(answer) >= {
            "passage_id",
            "title",
            "task",
            "passage",
            "start",
            "end",
            "score",
            "pass_rank_score",
            "final_score",
        }
        assert answer["passage"][answer["start"] : answer["end"]] == answer["answer"]
        assert answer["task"] == question.task
    assert [a["final_score"] for a in answers] == sorted(
        (a["final_score"] for a in answers), reverse=True
    )


def test_answers_endpoint_defaults_weight_and_k(client, table):
    question = table.questions[0]
    body = client.get(ANSWERS, query_string={"question": question.id}).get_json()
    assert (body["weight"], body["k"]) == (0.5, 10)
    assert len(body["answers"]) == min(10, distinct_passages(question.text))


@pytest.mark.parametrize(
    ("query", "status", "code", "parameter"),
    [
        ("", 400, "missing_parameter", "question"),
        ("question=no-such-question", 422, "invalid_parameter", "question"),
        ("question=", 422, "invalid_parameter", "question"),
        ("question={q}&weight=abc", 422, "invalid_parameter", "weight"),
        ("question={q}&weight=", 422, "invalid_parameter", "weight"),
        ("question={q}&weight=-0.1", 422, "invalid_parameter", "weight"),
        ("question={q}&weight=1.01", 422, "invalid_parameter", "weight"),
        ("question={q}&weight=nan", 422, "invalid_parameter", "weight"),
        ("question={q}&weight=inf", 422, "invalid_parameter", "weight"),
        ("question={q}&k=7", 422, "invalid_parameter", "k"),
        ("question={q}&k=10.0", 422, "invalid_parameter", "k"),
        ("question={q}&k=", 422, "invalid_parameter", "k"),
        ("question={q}&k=5&k=10", 400, "repeated_parameter", "k"),
    ],
)
def test_bad_parameters_get_a_json_error_naming_them(client, table, query, status, code, parameter):
    response = client.get(f"{ANSWERS}?{query.format(q=table.questions[0].id)}")
    assert response.status_code == status
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code
    assert error["details"] == {"parameter": parameter}
    assert parameter in error["message"]


def test_a_missing_question_says_it_is_required(table):
    with pytest.raises(MissingParameter) as raised:
        parse_parameters(MultiDict(), table)
    assert str(raised.value) == raised.value.message == "question is required."


def test_a_k_not_allowed_lists_the_allowed_ones(client, table):
    response = client.get(f"{ANSWERS}?question={table.questions[0].id}&k=7")
    assert response.get_json()["error"]["message"] == "k must be one of 5, 10, 20, 30, 50, got '7'."


@pytest.mark.parametrize(
    ("weight", "message"),
    [
        ("1.01", "weight must be between 0 and 1, got '1.01'."),
        ("-0", None),
        ("1", None),
        ("nan", "weight must be between 0 and 1, got 'nan'."),
        ("heavy", "weight must be a number, got 'heavy'."),
    ],
)
def test_weight_is_a_number_from_zero_to_one(client, table, weight, message):
    response = client.get(
        ANSWERS, query_string={"question": table.questions[0].id, "weight": weight}
    )
    if message is None:
        assert response.status_code == 200
    else:
        assert response.get_json()["error"]["message"] == message


@pytest.mark.parametrize(("k", "status"), [("+5", 200), (" 10 ", 200), ("1" * 4301, 422)])
def test_k_is_read_as_a_short_whole_number(client, table, k, status):
    response = client.get(ANSWERS, query_string={"question": table.questions[0].id, "k": k})
    assert response.status_code == status
    page = client.get("/answers", query_string={"k": k})
    assert page.status_code == (200 if status == 200 else 400)


def test_the_page_slider_spans_the_weight_range(client):
    page = client.get("/answers").get_data(as_text=True)
    assert re.search(r'type="range" id="weight" name="weight" min="0" max="1" ', page)


@pytest.mark.parametrize("k", ALLOWED_K)
def test_each_allowed_k_is_accepted(client, table, k):
    response = client.get(ANSWERS, query_string={"question": table.questions[0].id, "k": k})
    assert response.status_code == 200
    assert response.get_json()["k"] == k


def schema_validator(document: dict, name: str) -> jsonschema.Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


def test_openapi_document_describes_both_routes(client, table):
    document = client.get("/api/v1/openapi.json").get_json()
    jsonschema.Draft202012Validator.check_schema(document["components"]["schemas"]["Answers"])
    operation = document["paths"]["/api/v1/answers"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert parameters["question"]["schema"]["enum"] == [q.id for q in table.questions]
    assert parameters["question"]["required"] is True
    assert parameters["k"]["schema"]["enum"] == list(ALLOWED_K)
    assert parameters["weight"]["schema"]["minimum"] == 0
    assert parameters["weight"]["schema"]["maximum"] == 1
    assert {"200", "400", "422"} <= set(operation["responses"])
    questions = client.get("/api/v1/questions").get_json()
    schema_validator(document, "Questions").validate(questions)
    error = client.get(ANSWERS).get_json()
    schema_validator(document, "Error").validate(error)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), weight=WEIGHTS, k=KS)
def test_api_answers_match_their_schema_for_any_valid_request(client, table, data, weight, k):
    document = client.get("/api/v1/openapi.json").get_json()
    question = data.draw(st.sampled_from([q.id for q in table.questions]))
    response = client.get(
        ANSWERS, query_string={"question": question, "weight": repr(weight), "k": k}
    )
    assert response.status_code == 200
    body = response.get_json()
    schema_validator(document, "Answers").validate(body)
    answers = body["answers"]
    assert len(answers) <= k
    assert len({a["passage_id"] for a in answers}) == len(answers)
    finals = [a["final_score"] for a in answers]
    assert finals == sorted(finals, reverse=True)


# The page -------------------------------------------------------------------------------------


def parse(html: str):
    # A strict parser: markup errors fail the test instead of being repaired silently.
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    return parser.parse(html)


def test_page_without_parameters_shows_the_first_question(client, table):
    response = client.get("/answers")
    assert response.status_code == 200
    doc = parse(response.get_data(as_text=True))
    first = table.questions[0]
    selected = doc.findall(".//select[@id='question']//option[@selected]")
    assert [o.get("value") for o in selected] == [first.id]
    groups = [g.get("label") for g in doc.findall(".//select[@id='question']/optgroup")]
    assert groups == list(dict.fromkeys(q.task for q in table.questions))
    slider = doc.find(".//input[@id='weight']")
    assert (slider.get("type"), slider.get("min"), slider.get("max"), slider.get("step")) == (
        "range",
        "0",
        "1",
        "0.1",
    )
    assert slider.get("value") == "0.5"
    assert doc.find(".//output[@id='weight-value']").text == "0.5"
    k_options = [o.get("value") for o in doc.findall(".//select[@id='k']/option")]
    assert k_options == [str(n) for n in ALLOWED_K]
    assert len(doc.findall(".//ol[@class='answers']/li")) == min(10, distinct_passages(first.text))
    assert "Sample data" in response.get_data(as_text=True)


def test_page_parameters_are_linkable(client, table):
    question = table.questions[-1]
    response = client.get("/answers", query_string={"question": question.id, "weight": 0.3, "k": 5})
    assert response.status_code == 200
    doc = parse(response.get_data(as_text=True))
    assert doc.find(".//output[@id='weight-value']").text == "0.3"
    assert doc.find(".//select[@id='k']/option[@selected]").get("value") == "5"
    items = doc.findall(".//ol[@class='answers']/li")
    assert len(items) == min(5, distinct_passages(question.text))
    expected = client.get(ANSWERS, query_string={"question": question.id, "weight": 0.3, "k": 5})
    for item, answer in zip(items, expected.get_json()["answers"], strict=True):
        assert item.find("h3").text == answer["title"]
        assert item.find(".//mark").text == answer["answer"]


def test_page_with_a_bad_parameter_explains_it(client):
    response = client.get("/answers?weight=2")
    assert response.status_code == 400
    doc = parse(response.get_data(as_text=True))
    alert = doc.find(".//*[@role='alert']")
    assert "weight" in "".join(alert.itertext())
    assert doc.find(".//ol[@class='answers']") is None


def test_page_escapes_the_passage_and_marks_only_the_span(tmp_path, model_path):
    passage = 'Before <script>alert(1)</script> then <b class="x">bold & answer</b> after.'
    answer = '<b class="x">bold & answer</b>'
    path = write_csv(
        tmp_path / "answers.csv", [row(query="<i>Q</i>?", passage=passage, answer=answer)]
    )
    app = create_app({"TESTING": True, "MODEL_PATH": str(model_path), "ANSWERS_PATH": str(path)})
    html = app.test_client().get("/answers").get_data(as_text=True)
    assert "<script>alert" not in html
    assert '<b class="x">' not in html
    assert "<i>Q</i>" not in html
    doc = parse(html)
    paragraph = doc.find(".//p[@class='passage']")
    assert "".join(paragraph.itertext()) == passage
    assert [m.text for m in paragraph.findall("mark")] == [answer]


def test_page_has_no_inline_script_and_links_from_every_page(client):
    for path in ("/", "/answers"):
        doc = parse(client.get(path).get_data(as_text=True))
        assert doc.find(".//nav/a[@href='/answers']") is not None
        for script in doc.iter("script"):
            assert script.get("src"), "inline script would need 'unsafe-inline'"
            assert not (script.text or "").strip()
        for element in doc.iter():
            assert not [name for name in element.attrib if name.startswith("on")]
    # The example serves its own stylesheet and script, from its own static folder.
    doc = parse(client.get("/answers").get_data(as_text=True))
    assets = [link.get("href") for link in doc.iter("link") if link.get("rel") == "stylesheet"]
    assets += [script.get("src") for script in doc.iter("script")]
    assert "/answers/static/answers.css" in assets
    assert "/answers/static/answers.js" in assets
    for url in assets:
        with client.get(url) as asset:
            assert asset.status_code == 200, url
    with client.get("/answers/static/answers.js") as script:
        assert b"weight-value" in script.data


def test_sample_csv_is_plain_csv_with_the_original_columns():
    header = next(csv.reader(io.StringIO(SAMPLE.read_text(encoding="utf-8"))))
    assert header == list(COLUMNS)


# Removing the example ---------------------------------------------------------------------------

# Not copied: environments, caches; the copy uses this project's environment and model.
IGNORED = shutil.ignore_patterns(
    ".git", ".venv", ".tools", "__pycache__", "*.pyc", ".*_cache", ".hypothesis", ".schemathesis",
    "coverage.xml", ".coverage", "mutants",
)  # fmt: skip
# The service's own tests: the predict API, the OpenAPI document, the pages, health and headers.
REMAINING_TESTS = ["test_api.py", "test_openapi.py", "test_web.py", "test_security.py"]
# What the copy checks once the example is gone: no route, no link, no path in the document.
WITHOUT_ANSWERS = """
from mlservice import create_app
app = create_app({"TESTING": True, "MODEL_PATH": "models/model.skops"})
client = app.test_client()
assert client.get("/answers").status_code == 404, "the page is still served"
assert client.get("/api/v1/questions").status_code == 404, "the questions are still served"
assert 'href="/answers"' not in client.get("/").get_data(as_text=True), "the nav still links"
paths = client.get("/api/v1/openapi.json").get_json()["paths"]
assert "/api/v1/answers" not in paths and "/api/v1/questions" not in paths, sorted(paths)
"""


def remove_answers(copy: Path) -> None:
    """What a user does to drop the example: the folder, the block in create_app, its tests."""
    shutil.rmtree(copy / "src/mlservice/answers")
    (copy / "tests" / "test_answers.py").unlink()
    factory = copy / "src/mlservice/__init__.py"
    lines = factory.read_text().splitlines(keepends=True)
    [start] = [i for i, line in enumerate(lines) if "The ranked-answers example" in line]
    [end] = [i for i, line in enumerate(lines) if line.strip() == "answers.init_app(app)"]
    assert start < end <= start + 3, "the block in create_app should be a few adjacent lines"
    factory.write_text("".join(lines[:start] + lines[end + 2 :]))  # and the blank line after


@pytest.mark.slow
def test_the_service_and_its_tests_stay_green_without_the_example(tmp_path, model_path):
    copy = tmp_path / "copy"
    shutil.copytree(ROOT, copy, ignore=IGNORED, symlinks=True)
    remove_answers(copy)
    bin_dir = Path(sys.executable).parent
    # The copy's package comes first on the path, before this project's editable install.
    env = {**os.environ, "PYTHONPATH": str(copy / "src")}
    env.pop("ANSWERS_PATH", None)

    def run(*command):
        done = subprocess.run(
            command, cwd=copy, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done

    where = run(sys.executable, "-c", "import mlservice; print(mlservice.__file__)")
    assert where.stdout.strip() == str(copy / "src/mlservice/__init__.py")
    run(str(bin_dir / "ruff"), "check", "--no-cache", "src", "tests/conftest.py")
    run(sys.executable, "-c", WITHOUT_ANSWERS)
    tests = [f"tests/{name}" for name in REMAINING_TESTS]
    run(sys.executable, "-m", "pytest", *tests, "-q", "--no-cov", "-p", "no:cacheprovider")
