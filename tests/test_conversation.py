"""Follow-up detection: only the retrieval query changes, and only for short follow-ups."""

from __future__ import annotations

import pytest

from chatbot.conversation import followup_query, is_followup

PREVIOUS = "How common are osteoporotic fractures in women?"


@pytest.mark.parametrize(
    "question",
    [
        "and in men?",
        "And in men?",
        "what about the dose?",
        "What about children?",
        "how about in pregnancy?",
        "or for teenagers?",
        "But in older adults?",
        "Is it safe?",
        "What does it do?",
        "How much should they take?",
        "What are its side effects?",
        "Is that true?",
        "Why?",
        "How much?",
    ],
)
def test_short_followups_carry_the_previous_question(question: str) -> None:
    assert is_followup(question)
    assert followup_query(question, PREVIOUS) == f"{PREVIOUS} {question}"


@pytest.mark.parametrize(
    "question",
    [
        "What is osteocalcin?",
        "Which foods contain vitamin K2?",
        "Does vitamin K2 help bones?",
        "How do I change a car tyre?",
        "Is that true for vitamin D3 and calcium supplements in older adults?",
        "And what is the recommended daily dose of vitamin K2 for postmenopausal women?",
        "Osteoporosis?",
        "hello",
    ],
)
def test_questions_with_their_own_topic_stand_alone(question: str) -> None:
    assert not is_followup(question)
    assert followup_query(question, PREVIOUS) == question


@pytest.mark.parametrize("previous", [None, "", "   "])
def test_no_previous_question_means_no_context(previous: str | None) -> None:
    assert followup_query("and in men?", previous) == "and in men?"


def test_whitespace_is_trimmed() -> None:
    assert followup_query("  and in men?  ", f"  {PREVIOUS}\n") == f"{PREVIOUS} and in men?"


def test_followups_combine_with_the_previous_question_only() -> None:
    """Each turn passes the previous question as asked, so follow-ups never snowball."""
    questions = [
        "Is vitamin K2 approved in Japan?",
        "what about the dose?",
        "Is it safe in pregnancy?",
        "Why?",
    ]
    queries, previous = [], None
    for question in questions:
        queries.append(followup_query(question, previous))
        previous = question
    assert queries == [
        "Is vitamin K2 approved in Japan?",
        "Is vitamin K2 approved in Japan? what about the dose?",
        "what about the dose? Is it safe in pregnancy?",
        "Is it safe in pregnancy? Why?",
    ]


def test_empty_and_punctuation_only_questions_are_not_followups() -> None:
    assert not is_followup("")
    assert not is_followup("???")
    assert followup_query("", PREVIOUS) == ""


def test_curly_apostrophes_and_case_do_not_matter() -> None:
    assert is_followup("WHAT ABOUT IT’S DOSE?")
    assert is_followup("What’s that?")
