"""The OData query options the Batch list operations take: ``$filter`` and ``$select``.

``$filter`` grammar (the subset Batch accepts on list operations)::

    expr       := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := unary ("and" unary)*
    unary      := "not" unary | "(" expr ")" | comparison | function
    comparison := path op literal            op: eq ne gt ge lt le
    function   := ("startswith" | "endswith" | "substringof"...) "(" path "," literal ")"
    path       := name ("/" name)*           e.g. state, executionInfo/result
    literal    := 'text' ('' escapes a quote) | integer | true | false | null | datetime'ISO-8601'

Comparisons of strings are case-insensitive for enum-like values, as the service treats them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Predicate = Callable[[Mapping[str, Any]], bool]


class ODataError(ValueError):
    """A ``$filter`` or ``$select`` the service cannot parse; the message says where."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<datetime>datetime'(?:[^']*)')
      | (?P<string>'(?:[^']|'')*')
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<punct>[(),])
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*)
    )""",
    re.VERBOSE,
)

_COMPARATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a is not None and b is not None and a > b,
    "ge": lambda a, b: a is not None and b is not None and a >= b,
    "lt": lambda a, b: a is not None and b is not None and a < b,
    "le": lambda a, b: a is not None and b is not None and a <= b,
}
_FUNCTIONS: dict[str, Callable[[str, str], bool]] = {
    "startswith": lambda value, arg: value.lower().startswith(arg.lower()),
    "endswith": lambda value, arg: value.lower().endswith(arg.lower()),
}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ODataError(f"$filter: unexpected character at position {position}: {text[position:position + 20]!r}")
        kind = match.lastgroup or ""
        tokens.append(_Token(kind, match.group(kind), match.start(kind)))
        position = match.end()
    return tokens


def _literal(token: _Token) -> Any:
    if token.kind == "string":
        return token.text[1:-1].replace("''", "'")
    if token.kind == "number":
        return float(token.text) if "." in token.text else int(token.text)
    if token.kind == "datetime":
        return _parse_datetime(token.text[len("datetime'"):-1], token.position)
    if token.kind == "word" and token.text in ("true", "false"):
        return token.text == "true"
    if token.kind == "word" and token.text == "null":
        return None
    raise ODataError(f"$filter: expected a literal at position {token.position}, found {token.text!r}")


def _parse_datetime(text: str, position: int) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ODataError(f"$filter: bad datetime literal at position {position}: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def resolve(document: Mapping[str, Any], path: str) -> Any:
    """Return the value at ``a/b/c`` in a JSON-shaped document (None when any part is missing)."""
    value: Any = document
    for part in path.split("/"):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _comparable(value: Any, literal: Any) -> tuple[Any, Any]:
    """Bring a document value and a literal to one type: dates parse, strings compare case-insensitively."""
    if isinstance(literal, dt.datetime) and isinstance(value, str):
        try:
            return _parse_datetime(value, 0), literal
        except ODataError:
            return value, None
    if isinstance(literal, str) and isinstance(value, str):
        return value.lower(), literal.lower()
    return value, literal


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise ODataError(f"$filter: unexpected end of expression in {self.text!r}")
        self.index += 1
        return token

    def expect(self, text: str) -> None:
        token = self.take()
        if token.text != text:
            raise ODataError(f"$filter: expected {text!r} at position {token.position}, found {token.text!r}")

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "word" and token.text.lower() == word:
            self.index += 1
            return True
        return False

    def parse(self) -> Predicate:
        predicate = self.or_expr()
        leftover = self.peek()
        if leftover is not None:
            raise ODataError(f"$filter: unexpected {leftover.text!r} at position {leftover.position}")
        return predicate

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.keyword("or"):
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda doc: any(part(doc) for part in parts))

    def and_expr(self) -> Predicate:
        parts = [self.unary()]
        while self.keyword("and"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else (lambda doc: all(part(doc) for part in parts))

    def unary(self) -> Predicate:
        if self.keyword("not"):
            inner = self.unary()
            return lambda doc: not inner(doc)
        token = self.take()
        if token.text == "(":
            inner = self.or_expr()
            self.expect(")")
            return inner
        if token.kind != "word":
            raise ODataError(f"$filter: expected a property name at position {token.position}, found {token.text!r}")
        next_token = self.peek()
        if next_token is not None and next_token.text == "(":
            return self.function(token)
        return self.comparison(token)

    def function(self, name: _Token) -> Predicate:
        function = _FUNCTIONS.get(name.text.lower())
        if function is None:
            raise ODataError(f"$filter: unsupported function {name.text!r} at position {name.position}")
        self.expect("(")
        path_token = self.take()
        if path_token.kind != "word":
            raise ODataError(f"$filter: expected a property name at position {path_token.position}")
        self.expect(",")
        argument = _literal(self.take())
        self.expect(")")
        if not isinstance(argument, str):
            raise ODataError(f"$filter: {name.text}() needs a string argument")
        path = path_token.text
        return lambda doc: isinstance(resolve(doc, path), str) and function(resolve(doc, path), argument)

    def comparison(self, path_token: _Token) -> Predicate:
        operator_token = self.take()
        comparator = _COMPARATORS.get(operator_token.text.lower())
        if comparator is None:
            raise ODataError(
                f"$filter: expected one of eq, ne, gt, ge, lt, le at position {operator_token.position}, "
                f"found {operator_token.text!r}"
            )
        literal = _literal(self.take())
        path = path_token.text

        def predicate(doc: Mapping[str, Any]) -> bool:
            value, wanted = _comparable(resolve(doc, path), literal)
            try:
                return comparator(value, wanted)
            except TypeError:  # e.g. a string property compared with a number
                return False

        return predicate


def parse_filter(text: str | None) -> Predicate:
    """Build a predicate over REST documents for a ``$filter`` value (everything passes when empty)."""
    if text is None or not text.strip():
        return lambda _doc: True
    return _Parser(text).parse()


def parse_select(text: str | None) -> list[str] | None:
    """Return the property names a ``$select`` keeps (None: all)."""
    if text is None or not text.strip():
        return None
    names = [name.strip() for name in text.split(",")]
    for name in names:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*", name):
            raise ODataError(f"$select: {name!r} is not a property name")
    return names


def apply_select(document: Mapping[str, Any], names: list[str] | None) -> dict[str, Any]:
    """Keep only the selected top-level properties (and OData annotations)."""
    if names is None:
        return dict(document)
    keep = {name.split("/")[0] for name in names}
    return {key: value for key, value in document.items() if key in keep or key.startswith("odata.")}
