"""Parse sokbo's rule language into a small boolean syntax tree.

Grammar (keywords are uppercase; ``and``/``or`` in lowercase are plain terms)::

    query   := or_expr
    or_expr := and_expr ("OR" and_expr)*
    and_expr:= unary (["AND"] unary)*            # adjacent operands: implicit AND
    unary   := ("NOT" | "-") unary | near
    near    := primary ["NEAR/" n primary]       # both sides a term or phrase, n >= 1
    primary := term | "phrase" | "(" or_expr ")"
    term    := [field ":"] word | field ":" "phrase"     # field is title or text

Precedence is NOT > AND > OR.  Examples: ``"OpenAI 코리아" OR 소버린AI``,
``(삼성 OR LG) AND 배터리 -채용``, ``title:"오픈AI" 삼성 NEAR/3 협력``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sokbo.errors import QuerySyntaxError
from sokbo.normalize import key_of

__all__ = ["And", "Near", "Node", "Not", "Or", "Term", "parse_query", "terms_of"]

Field = Literal["title", "text"]
_FIELDS: tuple[Field, ...] = ("title", "text")
_OPERAND = "a term, phrase or '('"


@dataclass(frozen=True, slots=True)
class Term:
    """A bare term or a quoted phrase, optionally restricted to one field."""

    text: str
    field: Field | None = None
    phrase: bool = False


@dataclass(frozen=True, slots=True)
class And:
    """All children must hold."""

    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """At least one child must hold."""

    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """The child must not hold."""

    child: Node


@dataclass(frozen=True, slots=True)
class Near:
    """Both terms occur within ``distance`` words of each other, in either order."""

    left: Term
    right: Term
    distance: int


Node = Term | And | Or | Not | Near


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # WORD PHRASE LPAREN RPAREN AND OR NOT MINUS NEAR EOF
    text: str
    column: int
    field: Field | None = None
    distance: int = 0

    def describe(self) -> str:
        return "end of query" if self.kind == "EOF" else repr(self.text)

    def name(self) -> str:
        return self.text if self.kind in ("AND", "OR", "NOT", "NEAR") else repr(self.text)


class _Lexer:
    def __init__(self, query: str) -> None:
        self.query = query
        self.pos = 0
        self.tokens: list[_Token] = []

    def error(self, index: int, reason: str) -> QuerySyntaxError:
        return QuerySyntaxError(self.query, index + 1, reason)

    def run(self) -> list[_Token]:
        q = self.query
        while self.pos < len(q):
            ch = q[self.pos]
            if ch.isspace():
                self.pos += 1
            elif ch in "()":
                self.tokens.append(_Token("LPAREN" if ch == "(" else "RPAREN", ch, self.pos + 1))
                self.pos += 1
            elif ch == '"':
                self.tokens.append(self.phrase(self.pos, None))
            elif ch == "-":
                self.minus()
            else:
                self.word()
        self.tokens.append(_Token("EOF", "", len(q) + 1))
        return self.tokens

    def phrase(self, start: int, field: Field | None) -> _Token:
        opening = self.pos
        close = self.query.find('"', opening + 1)
        if close < 0:
            raise self.error(opening, "unclosed '\"': expected a closing '\"'")
        text = self.query[opening + 1 : close]
        if not text.strip():
            raise self.error(opening, "empty phrase: expected words between the quotes")
        self.pos = close + 1
        return _Token("PHRASE", text, start + 1, field=field)

    def minus(self) -> None:
        nxt = self.query[self.pos + 1 : self.pos + 2]
        if not nxt or nxt.isspace() or nxt == ")":
            raise self.error(self.pos, f"expected {_OPERAND} after '-'")
        self.tokens.append(_Token("MINUS", "-", self.pos + 1))
        self.pos += 1

    def word(self) -> None:
        start = self.pos
        q = self.query
        while self.pos < len(q) and not (q[self.pos].isspace() or q[self.pos] in '()"'):
            self.pos += 1
        text = q[start : self.pos]
        if text in ("AND", "OR", "NOT"):
            self.tokens.append(_Token(text, text, start + 1))
        elif text == "NEAR" or text.startswith("NEAR/"):
            self.tokens.append(self.near(text, start))
        else:
            self.tokens.append(self.term(text, start))

    def near(self, text: str, start: int) -> _Token:
        if text == "NEAR":
            raise self.error(start + 4, "expected '/' and a positive whole number, e.g. NEAR/5")
        digits = text[5:]
        if not (digits.isascii() and digits.isdigit() and int(digits) > 0):
            reason = "expected a positive whole number after 'NEAR/', e.g. NEAR/5"
            raise self.error(start + 5, reason)
        return _Token("NEAR", text, start + 1, distance=int(digits))

    def term(self, text: str, start: int) -> _Token:
        name, colon, rest = text.partition(":")
        if not colon or name not in _FIELDS:
            return _Token("WORD", text, start + 1)
        field: Field = "title" if name == "title" else "text"
        if rest:
            return _Token("WORD", rest, start + 1, field=field)
        if self.pos < len(self.query) and self.query[self.pos] == '"':
            return self.phrase(start, field)
        raise self.error(start, f"expected a term or phrase after '{name}:'")


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = _Lexer(query).run()
        self.i = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def error(self, column: int, reason: str) -> QuerySyntaxError:
        return QuerySyntaxError(self.query, column, reason)

    def parse(self) -> Node:
        if self.peek().kind == "EOF":
            raise self.error(1, f"empty query: expected {_OPERAND}")
        node = self.or_expr(None)
        token = self.peek()
        if token.kind == "RPAREN":
            raise self.error(token.column, "unexpected ')' without a matching '('")
        return node

    def or_expr(self, before: _Token | None) -> Node:
        children = [self.and_expr(before)]
        while self.peek().kind == "OR":
            children.append(self.and_expr(self.take()))
        return children[0] if len(children) == 1 else Or(tuple(children))

    def and_expr(self, before: _Token | None) -> Node:
        children = [self.unary(before)]
        while True:
            kind = self.peek().kind
            if kind == "AND":
                children.append(self.unary(self.take()))
            elif kind in ("WORD", "PHRASE", "LPAREN", "NOT", "MINUS"):
                children.append(self.unary(None))
            else:
                break
        return children[0] if len(children) == 1 else And(tuple(children))

    def unary(self, before: _Token | None) -> Node:
        if self.peek().kind in ("NOT", "MINUS"):
            operator = self.take()
            return Not(self.unary(operator))
        return self.near(before)

    def near(self, before: _Token | None) -> Node:
        left = self.primary(before)
        if self.peek().kind != "NEAR":
            return left
        operator = self.take()
        if not isinstance(left, Term):
            raise self.error(operator.column, f"expected a term or phrase before {operator.text}")
        if self.peek().kind not in ("WORD", "PHRASE"):
            raise self.error(operator.column, f"expected a term or phrase after {operator.text}")
        right = self.primary(operator)
        assert isinstance(right, Term)
        if self.peek().kind == "NEAR":
            raise self.error(self.peek().column, "NEAR cannot be chained: combine with AND")
        return Near(left, right, operator.distance)

    def primary(self, before: _Token | None) -> Node:
        token = self.take()
        if token.kind in ("WORD", "PHRASE"):
            if not key_of(token.text):
                raise self.error(token.column, "expected a term with a letter, digit or symbol")
            return Term(token.text, token.field, token.kind == "PHRASE")
        if token.kind == "LPAREN":
            node = self.or_expr(token)
            if self.peek().kind != "RPAREN":
                raise self.error(token.column, "unclosed '(': expected ')'")
            self.take()
            return node
        if before is None:  # only at the start of the query or of an implicit AND operand
            raise self.error(token.column, f"expected {_OPERAND} before {token.describe()}")
        raise self.error(
            before.column, f"expected {_OPERAND} after {before.name()}, found {token.describe()}"
        )


def _holds_without_terms(node: Node) -> bool:
    if isinstance(node, Term | Near):
        return False
    if isinstance(node, Not):
        return not _holds_without_terms(node.child)
    if isinstance(node, And):
        return all(_holds_without_terms(c) for c in node.children)
    return any(_holds_without_terms(c) for c in node.children)


def parse_query(query: str) -> Node:
    """Parse a rule query into its syntax tree.

    Args:
        query: the rule as written, e.g. ``'"OpenAI 코리아" OR 소버린AI -채용'``.

    Returns:
        A :data:`Node`: :class:`Term`, :class:`And`, :class:`Or`, :class:`Not` or
        :class:`Near`; ``And``/``Or`` of a single operand are collapsed.

    Raises:
        QuerySyntaxError: with the 1-based column and what was expected there, for an
            empty query, an unbalanced parenthesis or quote, an operator without its
            operand (``A AND``, ``OR B``, ``NOT``), a bad ``NEAR/n``, or a query that
            would match an article containing none of its terms (``-채용``).
    """
    node = _Parser(query).parse()
    if _holds_without_terms(node):
        raise QuerySyntaxError(
            query, 1, "a query needs at least one positive term (it would match almost anything)"
        )
    return node


def terms_of(node: Node) -> list[Term]:
    """Return every term and phrase of *node*, negated ones included, in query order."""
    if isinstance(node, Term):
        return [node]
    if isinstance(node, Near):
        return [node.left, node.right]
    if isinstance(node, Not):
        return terms_of(node.child)
    return [term for child in node.children for term in terms_of(child)]
