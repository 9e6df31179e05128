"""Unit tests for sokbo.query: the rule language's parser and its errors."""

from __future__ import annotations

import pytest

from sokbo.errors import QuerySyntaxError
from sokbo.query import And, Near, Not, Or, Term, parse_query, terms_of

A, B, C = Term("A"), Term("B"), Term("C")


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        ("소버린AI", Term("소버린AI")),
        ('"OpenAI 코리아"', Term("OpenAI 코리아", phrase=True)),
        ("A B", And((A, B))),
        ("A AND B", And((A, B))),
        ("A OR B", Or((A, B))),
        ("A OR B C", Or((A, And((B, C))))),
        ("A B OR C", Or((And((A, B)), C))),
        ("(A OR B) C", And((Or((A, B)), C))),
        ("A NOT B", And((A, Not(B)))),
        ("A -B", And((A, Not(B)))),
        ("A -(B OR C)", And((A, Not(Or((B, C)))))),
        ('A -"B C"', And((A, Not(Term("B C", phrase=True))))),
        ("NOT B A", And((Not(B), A))),
        ("A NOT B OR C", Or((And((A, Not(B))), C))),
        ("A NEAR/3 B", Near(A, B, 3)),
        ('"A B" NEAR/10 C', Near(Term("A B", phrase=True), C, 10)),
        ("A NEAR/2 B C", And((Near(A, B, 2), C))),
        ("title:소버린AI", Term("소버린AI", field="title")),
        ('title:"OpenAI 코리아"', Term("OpenAI 코리아", field="title", phrase=True)),
        ("text:A", Term("A", field="text")),
        ("data-center", Term("data-center")),
        ("a and b", And((Term("a"), Term("and"), Term("b")))),
        ("NEARBY", Term("NEARBY")),
        ("http://x", Term("http://x")),
        ('A"B C"', And((A, Term("B C", phrase=True)))),
        ("((A))", A),
        ("A (-B OR -C)", And((A, Or((Not(B), Not(C)))))),
    ],
)
def test_parse(query: str, tree: object) -> None:
    assert parse_query(query) == tree


@pytest.mark.parametrize(
    ("query", "column", "reason"),
    [
        ("", 1, "empty query"),
        ("   ", 1, "empty query"),
        ("A AND", 3, "expected a term, phrase or '(' after AND"),
        ("A OR", 3, "expected a term, phrase or '(' after OR"),
        ("OR B", 1, "expected a term, phrase or '(' before 'OR'"),
        ("AND", 1, "expected a term, phrase or '(' before 'AND'"),
        ("NOT", 1, "expected a term, phrase or '(' after NOT"),
        ("A AND OR B", 3, "after AND, found 'OR'"),
        ("A NEAR/x B", 8, "expected a positive whole number after 'NEAR/'"),
        ("A NEAR/0 B", 8, "expected a positive whole number"),
        ("A NEAR/ B", 8, "expected a positive whole number"),
        ("A NEAR B", 7, "expected '/' and a positive whole number"),
        ("A NEAR/2", 3, "expected a term or phrase after NEAR/2"),
        ("(A B) NEAR/2 C", 7, "expected a term or phrase before NEAR/2"),
        ("A NEAR/2 (B)", 3, "expected a term or phrase after NEAR/2"),
        ("A NEAR/2 B NEAR/3 C", 12, "NEAR cannot be chained"),
        ("(A OR B", 1, "unclosed '(': expected ')'"),
        ("A (B (C)", 3, "unclosed '('"),
        ("A)", 2, "unexpected ')'"),
        ("A OR B))", 7, "unexpected ')'"),
        ("()", 1, "after '(', found ')'"),
        ('"OpenAI 코리아', 1, "unclosed '\"'"),
        ('A "B', 3, "unclosed '\"'"),
        ('A ""', 3, "empty phrase"),
        ("A -", 3, "after '-'"),
        ("A - B", 3, "after '-'"),
        ("title:", 1, "expected a term or phrase after 'title:'"),
        ("A title:(B)", 3, "after 'title:'"),
        ("A ·", 3, "expected a term with a letter"),
        ("-채용", 1, "a query needs at least one positive term"),
        ("NOT 채용", 1, "a query needs at least one positive term"),
        ("A OR -B", 1, "a query needs at least one positive term"),
    ],
)
def test_errors_name_the_column(query: str, column: int, reason: str) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse_query(query)
    assert caught.value.column == column
    assert reason in caught.value.reason
    assert caught.value.query == query
    assert f"column {column}" in str(caught.value)


def test_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_query("A AND")


def test_terms_of_lists_every_term_in_order() -> None:
    node = parse_query('"OpenAI 코리아" OR (소버린AI -채용) OR 삼성 NEAR/2 배터리')
    assert [t.text for t in terms_of(node)] == [
        "OpenAI 코리아",
        "소버린AI",
        "채용",
        "삼성",
        "배터리",
    ]
