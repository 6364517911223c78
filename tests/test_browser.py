"""The pages in a real browser: Playwright drives the system's Chromium against gunicorn.

Chromium comes from the OS (Debian's `chromium`, or CHROMIUM_PATH), never `playwright install`.
Locally the tests skip when it is missing; under CI=true they fail instead.
"""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from mlservice.contract import label_key, show
from scripts.live_server import running_server
from tests.values import FEATURES, LABELS, below

# `make screenshot` sets this to docs/screenshot.png; other runs leave the docs untouched.
SCREENSHOT_PATH = os.environ.get("SCREENSHOT_PATH")
# ... and this to docs/model-card.png, the model card page.
MODEL_CARD_SCREENSHOT_PATH = os.environ.get("MODEL_CARD_SCREENSHOT_PATH")
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI containers run as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        message = f"Chromium not found at {CHROMIUM}; install it or set CHROMIUM_PATH"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def base_url(model_path):
    with running_server(env={"MODEL_PATH": str(model_path)}, workers=2) as url:
        yield url


@pytest.fixture
def page(browser, base_url):
    context = browser.new_context(base_url=base_url, viewport={"width": 1000, "height": 800})
    page = context.new_page()
    problems: list[str] = []

    def on_console(message):
        # Errors include CSP violations ("Refused to ..."). HTTP statuses are not problems here:
        # the tests assert them, and Chromium asks every new site for /favicon.ico.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    yield page
    context.close()
    assert problems == []


def field(page: Page, name: str):
    return page.locator(f"input[name='{name}']")


@pytest.mark.parametrize("label", LABELS)
def test_example_button_fills_the_form_and_submitting_shows_the_prediction(page, card, label):
    if label not in card["examples"]:
        pytest.skip(f"no held-out {label} row was predicted right, so there is no example")
    page.goto("/")
    page.locator(".examples").get_by_role("link", name=label, exact=True).click()
    for name, value in card["examples"][label].items():
        assert float(field(page, name).input_value()) == value
    page.get_by_role("button", name="Get prediction").click()
    expect(page.locator("#prediction")).to_have_text(label)
    expect(page.locator(".result")).to_contain_text("Probability")
    expect(page.locator("#probabilities tbody tr")).to_have_count(len(LABELS))


def test_typed_values_are_predicted_and_the_page_is_screenshotted(page, example, tmp_path):
    label, row = example
    page.goto("/")
    for name, value in row.items():
        field(page, name).fill(str(value))
    page.get_by_role("button", name="Get prediction").click()
    expect(page.locator("#prediction")).to_have_text(label)
    # The form keeps what was typed, so the reader sees which case was classified.
    first = FEATURES[0].name
    assert float(field(page, first).input_value()) == row[first]
    screenshot = Path(SCREENSHOT_PATH) if SCREENSHOT_PATH else tmp_path / "page.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_bad_value_shows_that_fields_error(page, example):
    label, _ = example
    low, empty = FEATURES[-1], FEATURES[0]
    page.goto("/")
    page.locator(".examples").get_by_role("link", name=label, exact=True).click()
    field(page, low.name).fill(repr(below(low)))
    field(page, empty.name).fill("")
    page.get_by_role("button", name="Get prediction").click()
    expect(page.get_by_role("alert")).to_contain_text("Check the highlighted fields")
    expect(page.locator(f"#{low.name}-error")).to_have_text(f"Must be {show(low.min)} or more.")
    if empty is not low:
        expect(page.locator(f"#{empty.name}-error")).to_have_text("Enter a number.")
    expect(field(page, low.name)).to_have_attribute("aria-invalid", "true")
    for feature in FEATURES[1:-1]:
        expect(page.locator(f"#{feature.name}-error")).to_have_count(0)
    expect(page.locator("#prediction")).to_have_count(0)


def test_answers_page_ranks_and_highlights(page):
    page.goto("/answers")
    question = page.locator("#question")
    options = question.locator("option")
    assert options.count() >= 2
    chosen = options.nth(1).get_attribute("value")
    question.select_option(chosen)
    page.locator("#weight").fill("0.3")
    # The slider's script runs (the policy allows it): the number follows the slider.
    expect(page.locator("#weight-value")).to_have_text("0.3")
    page.get_by_role("button", name="Rank answers").click()

    expect(page).to_have_url(re.compile(rf"question={re.escape(chosen)}.*weight=0\.3"))
    answers = page.locator("ol.answers > li")
    expect(answers.first).to_be_visible()
    scores = [
        float(re.search(r"final score ([\d.]+)", text).group(1))
        for text in answers.locator(".meta").all_inner_texts()
    ]
    assert scores == sorted(scores, reverse=True)
    marks = answers.locator("mark").all_inner_texts()
    assert len(marks) == answers.count()
    assert all(mark.strip() for mark in marks)


def test_model_card_page_from_the_header_draws_its_curves_and_is_screenshotted(
    page, card, tmp_path
):
    page.goto("/")
    page.get_by_role("navigation").get_by_role("link", name="Model card").click()
    expect(page).to_have_url(re.compile(r"/model$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Model card")
    held_out = card["metrics"]["held_out"]
    expect(page.locator("#roc-auc")).to_have_text(f"{held_out['roc_auc']:.4f}")
    expect(page.locator("#confusion-matrix tbody tr")).to_have_count(len(card["labels"]))
    positive = held_out["curves"][0]["positive_label"]
    key = label_key(positive)
    for name, figure in [
        (f"ROC curve for {positive}", f"#roc-{key}"),
        (f"Precision-recall curve for {positive}", f"#precision-recall-{key}"),
    ]:
        image = page.get_by_role("img", name=name)
        expect(image).to_be_visible()
        line = page.locator(f"{figure} polyline")
        box = line.bounding_box()
        assert box["width"] > 100
        assert box["height"] > 50
        # The stylesheet reaches the inline SVG: unstyled, a polyline is filled black.
        assert line.evaluate("node => getComputedStyle(node).fill") == "none"
    screenshot = (
        Path(MODEL_CARD_SCREENSHOT_PATH) if MODEL_CARD_SCREENSHOT_PATH else tmp_path / "model.png"
    )
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
