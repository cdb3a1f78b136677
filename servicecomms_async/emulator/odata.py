"""A small OData ``$filter`` parser/evaluator and the ``$select`` parser, for the legacy and Graph routes.

Grammar (whitespace-separated, keywords and operators lower case as OData requires)::

    expr       := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := unary ("and" unary)*
    unary      := "not" unary | "(" expr ")" | comparison | lambda
    comparison := FIELD OP literal
    lambda     := COLLECTION "/" ("any" | "all") "(" [VAR ":" expr] ")"
    OP         := eq | ne | gt | ge | lt | le
    literal    := 'string' ('' escapes a quote) | datetime | [-]integer
                | true | false | null | datetime'...'

Field names are resolved case-insensitively against the operation's wire fields. Inside a
lambda (``services/any(s:s eq 'Exchange Online')``) the expression may only use its range
variable, which stands for one string element of the collection; ``any()`` without an
argument is true for a non-empty collection. Lambdas do not nest.

Evaluation contract (rows are ``Mapping[str, object]`` of *typed* values: datetime
fields hold ``int`` microseconds since the Unix epoch, or None):

* ``collection`` fields hold a sequence of strings (or None, taken as empty);
* a comparison against a null field value is false, except ``eq null``;
* ``ne null`` is true for any non-null value;
* strings compare case-insensitively (``casefold``), for ordering too;
* datetimes compare as instants (offsets honoured); a quoted string that parses as a
  datetime is accepted where a datetime is expected.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

FieldKind = Literal["string", "datetime", "int", "bool", "collection"]
Row = Mapping[str, object]
Predicate = Callable[[Row], bool]

_OPS = ("eq", "ne", "gt", "ge", "lt", "le")
_KEYWORDS = frozenset({*_OPS, "and", "or", "not"})
# The key a lambda's range variable is bound to in the element rows its body is evaluated on.
_ELEMENT = "$element"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class ODataError(ValueError):
    """A client error in a query option; ``str(error)`` is safe to send back."""


# --- datetimes -------------------------------------------------------------------------

_DT_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?)?",
    re.ASCII,
)


def parse_datetime_us(text: str) -> int | None:
    """Parse an ISO 8601 / OData DateTimeOffset to microseconds since the epoch.

    Accepts a date alone (midnight UTC), a missing offset (UTC), ``Z`` or ``±HH:MM``,
    and any number of fraction digits (truncated to microseconds). Returns None when
    ``text`` is not such a value.
    """
    m = _DT_RE.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second, frac, offset = m.groups()
    try:
        dt = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((frac or "0")[:6].ljust(6, "0")),
            tzinfo=timezone.utc,
        )
    except ValueError:
        return None
    if offset and offset != "Z":
        sign = 1 if offset[0] == "+" else -1
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 23 or minutes > 59:
            return None
        dt -= sign * timedelta(hours=hours, minutes=minutes)
    delta = dt - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


# --- tokenizer -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: Literal["(", ")", "/", ":", "str", "dt", "int", "word", "end"]
    text: str
    pos: int
    value: object = None


_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*", re.ASCII)
_INT_RE = re.compile(r"-?\d+(?![\d.:T-])", re.ASCII)
_DT_TOKEN_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?",
    re.ASCII,
)


def _read_string(text: str, start: int) -> tuple[str, int]:
    """Read a quoted literal starting at ``text[start] == "'"``; return (value, end)."""
    out: list[str] = []
    i = start + 1
    while True:
        j = text.find("'", i)
        if j < 0:
            raise ODataError(
                f"Invalid $filter: unterminated string literal starting at position {start}."
            )
        out.append(text[i:j])
        if j + 1 < len(text) and text[j + 1] == "'":
            out.append("'")
            i = j + 2
            continue
        return "".join(out), j + 1


def tokenize(text: str) -> list[_Token]:
    """Split a ``$filter`` expression into tokens; raise :class:`ODataError` on junk."""
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "()/:":
            # "/" and ":" only occur in lambdas (datetimes and strings are read whole below).
            tokens.append(_Token(c, c, i))  # type: ignore[arg-type]
            i += 1
        elif c == "'":
            value, end = _read_string(text, i)
            tokens.append(_Token("str", text[i:end], i, value))
            i = end
        elif (m := _DT_TOKEN_RE.match(text, i)) is not None:
            us = parse_datetime_us(m.group())
            if us is None:
                raise ODataError(
                    f"Invalid $filter: {m.group()!r} at position {i} is not a valid datetime."
                )
            tokens.append(_Token("dt", m.group(), i, us))
            i = m.end()
        elif (m := _INT_RE.match(text, i)) is not None:
            tokens.append(_Token("int", m.group(), i, int(m.group())))
            i = m.end()
        elif (m := _WORD_RE.match(text, i)) is not None:
            word = m.group()
            end = m.end()
            if word in ("datetime", "datetimeoffset") and end < n and text[end] == "'":
                # OData v3 style typed literal: datetime'2020-01-01T00:00:00Z'
                value, end = _read_string(text, end)
                us = parse_datetime_us(value)
                if us is None:
                    raise ODataError(
                        f"Invalid $filter: {value!r} at position {i} is not a valid datetime."
                    )
                tokens.append(_Token("dt", text[i:end], i, us))
            else:
                tokens.append(_Token("word", word, i))
            i = end
        else:
            raise ODataError(f"Invalid $filter: unexpected character {c!r} at position {i}.")
    tokens.append(_Token("end", "", n))
    return tokens


# --- parser ----------------------------------------------------------------------------


def _describe(tok: _Token) -> str:
    return "end of expression" if tok.kind == "end" else f"{tok.text!r} at position {tok.pos}"


class _Parser:
    def __init__(
        self, text: str, fields: Mapping[str, FieldKind], aliases: Mapping[str, str]
    ) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.fields = fields
        self.by_lower = {name.lower(): name for name in fields}
        for alias, target in aliases.items():
            self.by_lower[alias.lower()] = target
        # Inside a lambda body: the range variable's name; None elsewhere.
        self.range_variable: str | None = None

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def parse(self) -> Predicate:
        if self.peek().kind == "end":
            raise ODataError("Invalid $filter: the expression is empty.")
        pred = self.or_expr()
        tok = self.peek()
        if tok.kind != "end":
            raise ODataError(
                f"Invalid $filter: expected 'and', 'or' or end of expression, found {_describe(tok)}."
            )
        return pred

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.peek().kind == "word" and self.peek().text == "or":
            self.take()
            parts.append(self.and_expr())
        if len(parts) == 1:
            return parts[0]
        return lambda row: any(p(row) for p in parts)

    def and_expr(self) -> Predicate:
        parts = [self.unary()]
        while self.peek().kind == "word" and self.peek().text == "and":
            self.take()
            parts.append(self.unary())
        if len(parts) == 1:
            return parts[0]
        return lambda row: all(p(row) for p in parts)

    def unary(self) -> Predicate:
        tok = self.peek()
        if tok.kind == "word" and tok.text == "not":
            self.take()
            inner = self.unary()
            return lambda row: not inner(row)
        if tok.kind == "(":
            self.take()
            inner = self.or_expr()
            close = self.take()
            if close.kind != ")":
                raise ODataError(
                    f"Invalid $filter: expected ')' to close '(' at position {tok.pos}, "
                    f"found {_describe(close)}."
                )
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        tok = self.take()
        if tok.kind != "word" or tok.text in _KEYWORDS:
            raise ODataError(f"Invalid $filter: expected a property name, found {_describe(tok)}.")
        if self.range_variable is not None:
            if tok.text != self.range_variable:
                raise ODataError(
                    f"Invalid $filter: {tok.text!r} at position {tok.pos} cannot be used inside a "
                    f"lambda; compare the range variable {self.range_variable!r} instead."
                )
            return self.operator_and_literal(tok, _ELEMENT, "string", label=tok.text)
        field = self.by_lower.get(tok.text.lower())
        if field is None:
            raise ODataError(
                f"Invalid $filter: {tok.text!r} is not a property that can be filtered on. "
                f"Valid properties: {', '.join(sorted(self.fields))}."
            )
        kind = self.fields[field]
        if self.peek().kind == "/":
            if kind != "collection":
                raise ODataError(
                    f"Invalid $filter: {tok.text!r} is not a collection, so it has no any()/all()."
                )
            return self.lambda_expr(field)
        if kind == "collection":
            raise ODataError(
                f"Invalid $filter: {tok.text!r} is a collection; filter it with a lambda such as "
                f"{tok.text}/any(x:x eq 'value')."
            )
        return self.operator_and_literal(tok, field, kind)

    def lambda_expr(self, field: str) -> Predicate:
        self.take()  # "/"
        name = self.take()
        if name.kind != "word" or name.text not in ("any", "all"):
            raise ODataError(
                f"Invalid $filter: expected 'any' or 'all' after {field!r}/, found {_describe(name)}."
            )
        self.expect("(", f"after {name.text!r}")
        if name.text == "any" and self.peek().kind == ")":
            self.take()
            return lambda row: bool(row.get(field))
        if self.range_variable is not None:
            raise ODataError(f"Invalid $filter: lambdas cannot nest (position {name.pos}).")
        variable = self.take()
        if variable.kind != "word" or variable.text in _KEYWORDS:
            raise ODataError(
                f"Invalid $filter: expected a range variable name after '{name.text}(', "
                f"found {_describe(variable)}."
            )
        self.expect(":", f"after the range variable {variable.text!r}")
        self.range_variable = variable.text
        try:
            body = self.or_expr()
        finally:
            self.range_variable = None
        self.expect(")", f"to close {name.text}(")
        quantifier = any if name.text == "any" else all

        def matches(row: Row) -> bool:
            elements = row.get(field) or ()
            assert isinstance(elements, (list, tuple))
            return quantifier(body({_ELEMENT: element}) for element in elements)

        return matches

    def expect(self, kind: str, where: str) -> None:
        tok = self.take()
        if tok.kind != kind:
            raise ODataError(f"Invalid $filter: expected {kind!r} {where}, found {_describe(tok)}.")

    def operator_and_literal(
        self, tok: _Token, field: str, kind: FieldKind, label: str | None = None
    ) -> Predicate:
        op_tok = self.take()
        if op_tok.kind != "word" or op_tok.text not in _OPS:
            raise ODataError(
                f"Invalid $filter: expected a comparison operator ({', '.join(_OPS)}) after "
                f"{tok.text!r}, found {_describe(op_tok)}."
            )
        lit = self.take()
        return _compile_comparison(field, kind, op_tok.text, lit, label)


def _literal(field: str, kind: FieldKind, op: str, lit: _Token) -> object:
    """Check the literal against the field's type and return its comparable value (``field`` is
    the name errors show)."""
    if lit.kind == "word" and lit.text == "null":
        return None
    if kind == "string":
        if lit.kind == "str":
            assert isinstance(lit.value, str)
            return lit.value.casefold()
    elif kind == "datetime":
        if lit.kind == "dt":
            return lit.value
        if lit.kind == "str":
            assert isinstance(lit.value, str)
            us = parse_datetime_us(lit.value)
            if us is not None:
                return us
    elif kind == "int":
        if lit.kind == "int":
            return lit.value
    elif kind == "bool" and lit.kind == "word" and lit.text in ("true", "false"):
        if op not in ("eq", "ne"):
            raise ODataError(
                f"Invalid $filter: operator {op!r} cannot be applied to Boolean property {field!r}."
            )
        return lit.text == "true"
    if lit.kind == "end":
        raise ODataError(f"Invalid $filter: expected a value after {field!r} {op}.")
    if lit.kind in ("(", ")", "/", ":") or (
        lit.kind == "word" and lit.text in (*_OPS, "and", "or")
    ):
        raise ODataError(
            f"Invalid $filter: expected a value after {field!r} {op}, found {_describe(lit)}."
        )
    expected = {
        "string": "a quoted string",
        "datetime": "a datetime such as 2020-01-01T00:00:00Z",
        "int": "an integer",
        "bool": "true or false",
        "collection": "a lambda such as any(x:x eq 'value')",
    }[kind]
    raise ODataError(
        f"Invalid $filter: property {field!r} must be compared with {expected} or null, "
        f"found {_describe(lit)}."
    )


def _compile_comparison(
    field: str, kind: FieldKind, op: str, lit: _Token, label: str | None = None
) -> Predicate:
    value = _literal(label or field, kind, op, lit)
    if value is None:
        if op == "eq":
            return lambda row: row.get(field) is None
        if op == "ne":
            return lambda row: row.get(field) is not None
        return lambda row: False
    fold = kind == "string"

    def get(row: Row) -> object:
        v = row.get(field)
        if fold and isinstance(v, str):
            return v.casefold()
        return v

    if op == "eq":
        return lambda row: (v := get(row)) is not None and v == value
    if op == "ne":
        return lambda row: (v := get(row)) is not None and v != value
    # Ordering: values of one field share a type, so comparing them is safe; the
    # try/except guards against a row holding an unexpected type.
    cmp: Callable[[object, object], bool] = {
        "gt": lambda a, b: a > b,
        "ge": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "le": lambda a, b: a <= b,
    }[op]

    def ordered(row: Row) -> bool:
        v = get(row)
        if v is None:
            return False
        try:
            return cmp(v, value)
        except TypeError:
            return False

    return ordered


def parse_filter(
    text: str,
    fields: Mapping[str, FieldKind],
    aliases: Mapping[str, str] | None = None,
) -> Predicate:
    """Compile ``text`` into a predicate over typed rows.

    ``fields`` maps the filterable wire names to their kinds; ``aliases`` maps extra
    accepted names to one of those wire names. Raises :class:`ODataError` with a message
    saying what is wrong (position, expected token, unknown property, type mismatch).
    """
    return _Parser(text, fields, aliases or {}).parse()


def select_names(text: str, allowed: Sequence[str]) -> list[str] | None:
    """Parse ``$select`` into canonical wire names, in request order and each once, or None for ``*``.

    The one ``$select`` parser of the legacy and the Graph routes. Names are comma-separated and
    resolved case-insensitively against ``allowed``; an empty entry or an unknown name raises
    :class:`ODataError` listing the valid names.
    """
    by_lower = {name.lower(): name for name in allowed}
    names: list[str] = []
    for raw in text.split(","):
        name = raw.strip()
        if name == "*":
            return None
        canonical = by_lower.get(name.lower())
        if canonical is None:
            problem = (
                f"{name[:64]!r} is not a property of this resource"
                if name
                else "empty property name"
            )
            raise ODataError(f"Invalid $select: {problem}. Valid properties: {', '.join(allowed)}.")
        if canonical not in names:
            names.append(canonical)
    return names


def parse_select(text: str, allowed: Sequence[str]) -> frozenset[str] | None:
    """The set of names :func:`select_names` finds in ``text``, or None for ``*``."""
    names = select_names(text, allowed)
    return None if names is None else frozenset(names)


def apply_select(item: Mapping[str, object], selected: frozenset[str]) -> dict[str, object]:
    """Keep only the selected keys of ``item``, in the item's own key order."""
    return {k: v for k, v in item.items() if k in selected}
