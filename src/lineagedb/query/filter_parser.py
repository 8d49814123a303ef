"""Parser and type checker for MLMD ``filter_query`` strings (behaviour spec §6).

Pipeline, each stage linear in the query length:

1. **Limits** (`MAX_QUERY_LENGTH`, NUL bytes) on the raw text, before anything else.
2. **Lexer** (`_tokenize`): one compiled regex, GoogleSQL lexical rules (§6.1): quoted,
   triple-quoted and raw strings with escape validation, hex ints, floats, comments,
   backquoted identifiers. It matches anchored at the current offset only, so no input makes
   it rescan (no quadratic cases). It also tracks the nesting depth (parentheses plus chains
   of prefix ``NOT`` / ``-``) and stops at `MAX_NESTING_DEPTH` or `MAX_TOKENS`, so a
   10k-deep query costs no more than lexing its first few hundred bytes and never reaches
   the parser, and no accepted query costs more than ~16k tokens (~60 ms CPU).
3. **Parser**: lark LALR(1) over the token list (a custom-lexer adapter feeds our tokens in).
   The LALR driver is a loop, not recursion, and the grammar keeps AND/OR chains flat.
4. **Analyzer** (`_Analyzer`): resolves names against the node kind's vocabulary (§6.3),
   applies the enum-predicate rules (§6.5) and the strict typing of §6.2, and builds the
   typed AST of ``filter_ast``. It recurses, but only to the depth bounded in step 2.

We reject (INVALID_ARGUMENT) what MLMD merely passes through to SQL: arithmetic, functions,
subqueries, ``IS TRUE``/``IS FALSE``. ``NULL`` is only accepted in ``IS [NOT] NULL``.

Deliberate differences from MLMD, all on the reject side or unobservable in results:
adjacent string literals (``'a' 'b'``) are a syntax error; BYTES literals are rejected;
neighbor aliases are case-insensitive (``contexts_A`` is ``contexts_a``); ``STATE = LIVE``
(upper-case field name) is accepted as an enum predicate; ``(state) = LIVE`` is accepted.

"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from typing import Any, Final, TypeGuard

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput, UnexpectedToken
from lark.lexer import Lexer

from lineagedb.query.filter_ast import (
    And,
    AttributeRef,
    Between,
    CmpOp,
    Comparison,
    EnumPredicate,
    EnumType,
    Expr,
    FilterQueryError,
    InList,
    IsNull,
    Like,
    Literal,
    Negate,
    NeighborKind,
    NeighborRef,
    NodeKind,
    Not,
    Or,
    PropertyField,
    PropertyRef,
    Truth,
    Value,
    ValueType,
)

__all__ = [
    "MAX_NESTING_DEPTH",
    "MAX_QUERY_LENGTH",
    "MAX_TOKENS",
    "parse_filter",
    "parse_optional_filter",
]

#: Longest accepted query, in UTF-8 bytes (reliability target T21).
MAX_QUERY_LENGTH: Final = 64 * 1024
#: Deepest accepted nesting: open parentheses plus pending prefix NOT / unary minus.
MAX_NESTING_DEPTH: Final = 64
#: Most tokens accepted. Parsing costs ~3.5 µs per token; 64 KiB of one-character tokens
#: (``id IN (1,1,1,...``) would take ~230 ms, so the cap, not the length, bounds the
#: worst case (~60 ms). Real filters have tens of tokens; an ``id IN`` list of 5,000
#: numbers needs ~10,000.
MAX_TOKENS: Final = 16_384

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1

# --------------------------------------------------------------------------------------------
# Vocabulary (§6.3)

_I, _S, _E = ValueType.INT64, ValueType.STRING, ValueType.ENUM
_FieldSpec = tuple[ValueType, EnumType | None]

_COMMON_ATTRIBUTES: dict[str, _FieldSpec] = {
    "id": (_I, None),
    "type_id": (_I, None),
    "create_time_since_epoch": (_I, None),
    "last_update_time_since_epoch": (_I, None),
    "type": (_S, None),
    "name": (_S, None),
    "external_id": (_S, None),
}

_ATTRIBUTES: dict[NodeKind, dict[str, _FieldSpec]] = {
    NodeKind.ARTIFACT: {
        **_COMMON_ATTRIBUTES,
        "uri": (_S, None),
        "state": (_E, EnumType.ARTIFACT_STATE),
    },
    NodeKind.EXECUTION: {
        **_COMMON_ATTRIBUTES,
        "last_known_state": (_E, EnumType.EXECUTION_STATE),
    },
    NodeKind.CONTEXT: dict(_COMMON_ATTRIBUTES),
}

_NODE_FIELDS: dict[str, _FieldSpec] = {
    "id": (_I, None),
    "create_time_since_epoch": (_I, None),
    "last_update_time_since_epoch": (_I, None),
    "name": (_S, None),
    "type": (_S, None),
}
# parent/child contexts: MLMD's checker admits the time fields but its SQL omits them
# (INTERNAL); the spec lets us support them properly, which we do. Same for the
# artifacts_/executions_ external_id quirk.
_NEIGHBORS: dict[NodeKind, dict[NeighborKind, dict[str, _FieldSpec]]] = {
    NodeKind.ARTIFACT: {
        NeighborKind.CONTEXTS: _NODE_FIELDS,
        NeighborKind.EVENTS: {
            "type": (_E, EnumType.EVENT_TYPE),
            "milliseconds_since_epoch": (_I, None),
            "execution_id": (_I, None),
        },
    },
    NodeKind.EXECUTION: {
        NeighborKind.CONTEXTS: _NODE_FIELDS,
        NeighborKind.EVENTS: {
            "type": (_E, EnumType.EVENT_TYPE),
            "milliseconds_since_epoch": (_I, None),
            "artifact_id": (_I, None),
        },
    },
    NodeKind.CONTEXT: {
        NeighborKind.PARENT_CONTEXTS: _NODE_FIELDS,
        NeighborKind.CHILD_CONTEXTS: _NODE_FIELDS,
        NeighborKind.ARTIFACTS: {
            **_NODE_FIELDS,
            "uri": (_S, None),
            "external_id": (_S, None),
            "state": (_E, EnumType.ARTIFACT_STATE),
        },
        NeighborKind.EXECUTIONS: {
            **_NODE_FIELDS,
            "external_id": (_S, None),
            "last_known_state": (_E, EnumType.EXECUTION_STATE),
        },
    },
}

# Enum names accepted in filters (§6.5). MLMD's rewrite table omits some values; those are
# listed separately so the error says "Unsupported" rather than "Unrecognized".
_ENUM_ACCEPTED: dict[EnumType, dict[str, int]] = {
    EnumType.ARTIFACT_STATE: {
        "UNKNOWN": 0,
        "PENDING": 1,
        "LIVE": 2,
        "MARKED_FOR_DELETION": 3,
        "DELETED": 4,
    },
    EnumType.EXECUTION_STATE: {
        "UNKNOWN": 0,
        "NEW": 1,
        "RUNNING": 2,
        "COMPLETE": 3,
        "FAILED": 4,
        "CACHED": 5,
        "CANCELED": 6,
    },
    EnumType.EVENT_TYPE: {
        "DECLARED_OUTPUT": 1,
        "DECLARED_INPUT": 2,
        "INPUT": 3,
        "OUTPUT": 4,
        "INTERNAL_INPUT": 5,
        "INTERNAL_OUTPUT": 6,
    },
}
_ENUM_UNSUPPORTED: dict[EnumType, frozenset[str]] = {
    EnumType.ARTIFACT_STATE: frozenset({"ABANDONED", "REFERENCE"}),
    EnumType.EXECUTION_STATE: frozenset(),
    EnumType.EVENT_TYPE: frozenset({"UNKNOWN", "PENDING_OUTPUT"}),
}

_PROPERTY_PREFIXES: Final = {"properties": False, "custom_properties": True}
_UNADDRESSABLE_PROPERTY_FIELDS: Final = frozenset({"proto_value", "struct_value", "byte_value"})

# --------------------------------------------------------------------------------------------
# Lexer

# Keywords are case-insensitive (§6.1). Underscored types are dropped from lark's tree.
_KEYWORDS: Final = {
    "AND": "_AND",
    "OR": "_OR",
    "NOT": "NOT",
    "IN": "IN",
    "LIKE": "LIKE",
    "IS": "_IS",
    "NULL": "NULL",
    "TRUE": "TRUE",
    "FALSE": "FALSE",
    "BETWEEN": "BETWEEN",
}

# Comments and whitespace before a token. Possessive (Python 3.11+) so that a failing token
# match never backtracks into the trivia: every regex below is linear in the input.
_TRIVIA = r"(?:\s+|--[^\n]*|\#[^\n]*|/\*[\s\S]*?\*/)*+"
# Triple-quoted forms come before single-quoted ones, so ''' never lexes as ''.
_STRING_BODY = (
    r"'''(?:[^'\\]|\\[\s\S]|'(?!''))*'''"
    r'|"""(?:[^"\\]|\\[\s\S]|"(?!""))*"""'
    r"|'(?:[^'\\\n]|\\[^\n])*'"
    r'|"(?:[^"\\\n]|\\[^\n])*"'
)
_QIDENT = r"`(?:[^`\\\n]|\\[^\n])*`"
# A whole path (``properties.p.int_value``) is one token: fewer tokens make the LALR pass
# cheaper, and after a dot GoogleSQL takes any [A-Za-z0-9_]+ (a property named "2024") and
# keywords as plain names, which one regex expresses directly.
_PATH = rf"(?:[A-Za-z_][A-Za-z0-9_]*|{_QIDENT})(?:\s*\.\s*(?:[A-Za-z0-9_]+|{_QIDENT}))*"
_TOKEN_RE: Final = re.compile(
    _TRIVIA
    + "(?:"
    + "|".join(
        [
            rf"(?P<STRING>[rRbB]{{0,2}}(?:{_STRING_BODY}))",
            r"(?P<FLOAT>(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+)",
            r"(?P<INT>0[xX][0-9A-Fa-f]+|[0-9]+)",
            rf"(?P<PATH>{_PATH})",
            r"(?P<OP><>|!=|<=|>=|[=<>(),\-])",
        ]
    )
    + ")"
)
_TRIVIA_RE: Final = re.compile(_TRIVIA)
_PATH_PART_RE: Final = re.compile(rf"([A-Za-z0-9_]+)|{_QIDENT}")
_ALIAS_RE: Final = re.compile(r"[A-Za-z0-9_]+")
_IDENT_CHAR_RE: Final = re.compile(r"[A-Za-z0-9_]")
_STRING_PREFIX_RE: Final = re.compile(r"[rRbB]{1,2}['\"]")

_SIMPLE_ESCAPES: Final = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "?": "?",
    '"': '"',
    "'": "'",
    "`": "`",
}
_ESCAPE_RE: Final = re.compile(
    r"\\(?:([abfnrtv\\?\"'`])|([0-7]{3})|[xX]([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})"
    r"|U([0-9a-fA-F]{8})|([\s\S]))"
)


def _line_col(text: str, position: int) -> tuple[int, int]:
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return line, column


def _error(text: str, message: str, position: int | None) -> FilterQueryError:
    """Error whose message points at ``position`` as ZetaSQL does: ``[at line:column]``."""
    if position is not None:
        line, column = _line_col(text, position)
        message = f"{message} [at {line}:{column}]"
    return FilterQueryError(message, position)


def _unescape(text: str, body: str, body_start: int, what: str) -> str:
    """Decode GoogleSQL escapes in a non-raw string literal or quoted identifier body."""
    if "\\" not in body:
        return body
    # \x and octal escapes denote bytes; the whole literal must still be valid UTF-8.
    out = bytearray()
    pos = 0
    for match in _ESCAPE_RE.finditer(body):
        out += body[pos : match.start()].encode("utf-8")
        pos = match.end()
        at = body_start + match.start()
        simple, octal, hex2, uni4, uni8, bad = match.groups()
        if simple is not None:
            out += _SIMPLE_ESCAPES[simple].encode("utf-8")
        elif octal is not None:
            value = int(octal, 8)
            if value > 0xFF:
                raise _error(text, f"Illegal escape sequence in {what}", at)
            out.append(value)
        elif hex2 is not None:
            out.append(int(hex2, 16))
        else:
            code_text = uni4 if uni4 is not None else uni8
            if code_text is None:
                shown = "\\" + (bad if bad and bad.isprintable() else "")
                raise _error(text, f"Illegal escape sequence in {what}: {shown}", at)
            code = int(code_text, 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise _error(text, f"Illegal escape sequence in {what}: bad code point", at)
            out += chr(code).encode("utf-8")
    out += body[pos:].encode("utf-8")
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise _error(text, f"Structurally invalid UTF8 in {what}", body_start) from None


def _string_value(text: str, raw_token: str, start: int) -> str:
    prefix_len = 0
    while raw_token[prefix_len] not in "'\"":
        prefix_len += 1
    prefix = raw_token[:prefix_len].lower()
    if "b" in prefix:
        # A BYTES literal: the vocabulary has no BYTES field, so it could only ever be a
        # type mismatch.
        raise _error(text, "BYTES literals are not supported", start)
    if prefix not in ("", "r"):
        raise _error(text, "Syntax error: invalid string literal prefix", start)
    quote_len = 3 if raw_token[prefix_len : prefix_len + 3] in ("'''", '"""') else 1
    body_start = start + prefix_len + quote_len
    body = raw_token[prefix_len + quote_len : len(raw_token) - quote_len]
    value = body if prefix == "r" else _unescape(text, body, body_start, "string literal")
    if "\x00" in value:
        raise _error(text, "NUL characters are not allowed in string literals", start)
    return value


_new_str = str.__new__
_OPERATOR_TYPES: Final = {
    "(": "_LPAR",
    ")": "_RPAR",
    ",": "_COMMA",
    "-": "MINUS",
    "=": "CMP",
    "!=": "CMP",
    "<>": "CMP",
    "<": "CMP",
    "<=": "CMP",
    ">": "CMP",
    ">=": "CMP",
}
_NESTING_TYPES: Final = frozenset({"_LPAR", "_RPAR", "NOT", "MINUS"})


def _tokenize(text: str) -> list[Token]:
    """Split ``text`` into lark tokens, enforcing the nesting limit on the way.

    This loop runs once per token of queries up to 64 KiB, so it is written for speed:
    one regex match per token (leading trivia included), and tokens built without lark's
    keyword-heavy constructor (Token is a str subclass with slots; we fill what lark reads).
    """
    tokens: list[Token] = []
    append = tokens.append
    new_token = _new_str
    token_class = Token
    keywords = _KEYWORDS
    operators = _OPERATOR_TYPES
    nesting_types = _NESTING_TYPES
    ident_char = _IDENT_CHAR_RE.match
    length = len(text)
    pos = 0
    # Nesting depth = open parentheses + pending prefix operators (NOT, unary minus): what
    # the analyzer will recurse through. `pending` counts the prefix chain at the current
    # parenthesis level; `outer` saves the chains of the enclosing levels.
    outer: list[int] = []
    pending = 0
    nesting = 0
    # Anchored matching only: finditer would *search* past an unlexable spot, re-scanning
    # the trivia before it from every later offset (quadratic on 64 KiB of spaces).
    match_token = _TOKEN_RE.match
    while pos < length:
        match = match_token(text, pos)
        if match is None:
            break
        kind = match.lastgroup
        assert kind is not None
        start = match.start(kind)
        end = match.end()
        value = match.group(kind)
        if kind == "PATH":
            token_type = "PATH"
            if "." not in value and "`" not in value:
                token_type = keywords.get(value.upper(), "PATH")
        elif kind == "OP":
            token_type = operators[value]
        elif kind == "STRING":
            value = _string_value(text, value, start)
            token_type = "STRING"
        else:  # INT or FLOAT
            token_type = kind
            if end < length and ident_char(text, end):
                raise _error(text, "Syntax error: missing whitespace after numeric literal", end)
        token = new_token(token_class, value)
        token.type = token_type
        token.value = value
        token.start_pos = start
        token.end_pos = end
        append(token)
        pos = end
        if len(tokens) > MAX_TOKENS:
            raise _error(text, f"Query has too many tokens (more than {MAX_TOKENS})", start)

        if token_type in nesting_types:
            if token_type == "_LPAR":
                outer.append(pending)
                pending = 0
                nesting += 1
            elif token_type == "_RPAR":
                # The closed group is an operand: it also ends the chain that preceded it.
                nesting -= 1 + pending + (outer.pop() if outer else 0)
                pending = 0
            else:  # NOT or MINUS
                pending += 1
                nesting += 1
            if nesting > MAX_NESTING_DEPTH:
                raise _error(
                    text,
                    f"Query is nested too deeply (more than {MAX_NESTING_DEPTH} levels)",
                    start,
                )
        elif pending:
            nesting -= pending
            pending = 0

    if pos < length:
        trivia = _TRIVIA_RE.match(text, pos)
        if trivia is not None:
            pos = trivia.end()
        if pos < length:
            raise _lex_error(text, pos)
    if tokens:
        # lark copies these slots from the last token into its end-of-input token.
        last = tokens[-1]
        last.line = last.column = last.end_line = last.end_column = None
    return tokens


def _lex_error(text: str, pos: int) -> FilterQueryError:
    char = text[pos]
    if char in "'\"" or _STRING_PREFIX_RE.match(text, pos):
        return _error(text, "Syntax error: Unclosed string literal", pos)
    if char == "`":
        return _error(text, "Syntax error: Unclosed identifier literal", pos)
    if text.startswith("/*", pos):
        return _error(text, "Syntax error: Unclosed comment", pos)
    if char == "@":
        return _error(text, "Query parameters are not supported", pos)
    if char in "+*/|&^~%":
        return _error(
            text,
            f"Syntax error: Unexpected character {char!r} (arithmetic and other operators are not supported)",
            pos,
        )
    shown = repr(char) if char.isprintable() else f"U+{ord(char):04X}"
    return _error(text, f"Syntax error: Unexpected character {shown}", pos)


# --------------------------------------------------------------------------------------------
# Grammar (LALR(1)); terminals come from _tokenize. Predicates share one precedence level
# with NOT and operands sit directly below it: every extra level would cost one more
# reduction per operand.

_GRAMMAR: Final = r"""
%declare _AND _OR NOT IN LIKE _IS NULL TRUE FALSE BETWEEN
%declare _LPAR _RPAR _COMMA MINUS CMP PATH INT FLOAT STRING

start: expr

?expr: and_expr
     | and_expr (_OR and_expr)+                                 -> or_

?and_expr: not_expr
         | not_expr (_AND not_expr)+                            -> and_

?not_expr: operand
         | NOT not_expr                                         -> not_
         | operand CMP operand                                  -> comparison
         | operand LIKE operand                                 -> like
         | operand NOT LIKE operand                             -> not_like
         | operand IN _LPAR operand (_COMMA operand)* _RPAR     -> in_
         | operand NOT IN _LPAR operand (_COMMA operand)* _RPAR -> not_in
         | operand BETWEEN operand _AND operand                 -> between
         | operand NOT BETWEEN operand _AND operand             -> not_between
         | operand _IS NULL                                     -> is_null
         | operand _IS NOT NULL                                 -> is_not_null
         | operand _IS TRUE                                     -> is_bool
         | operand _IS FALSE                                    -> is_bool
         | operand _IS NOT TRUE                                 -> is_bool
         | operand _IS NOT FALSE                                -> is_bool

?operand: INT | FLOAT | STRING | TRUE | FALSE | NULL | PATH
        | _LPAR expr _RPAR
        | MINUS operand                                         -> neg
"""


class _TokenListLexer(Lexer):
    """Lets lark's LALR driver consume the token list produced by `_tokenize`."""

    def __init__(self, lexer_conf: Any) -> None:
        del lexer_conf

    def lex(self, lexer_state: Any, parser_state: Any = None) -> Iterator[Token]:
        # Interface 0: lark hands us the object given to Lark.parse (our token list).
        del parser_state
        tokens: Sequence[Token] = lexer_state
        return iter(tokens)


_PARSER: Final = Lark(
    _GRAMMAR,
    parser="lalr",
    lexer=_TokenListLexer,
    start="start",
    # Keep the tree cheap: no position propagation (tokens carry their own offsets).
    propagate_positions=False,
    maybe_placeholders=False,
)

_TOKEN_DESCRIPTIONS: Final = {
    "_AND": "keyword AND",
    "_OR": "keyword OR",
    "NOT": "keyword NOT",
    "IN": "keyword IN",
    "LIKE": "keyword LIKE",
    "_IS": "keyword IS",
    "NULL": "keyword NULL",
    "TRUE": "keyword TRUE",
    "FALSE": "keyword FALSE",
    "BETWEEN": "keyword BETWEEN",
    "_LPAR": '"("',
    "_RPAR": '")"',
    "_COMMA": '","',
    "MINUS": '"-"',
    "PATH": "identifier",
    "INT": "integer literal",
    "FLOAT": "floating point literal",
    "STRING": "string literal",
}


def _describe_token(token: Token) -> str:
    if token.type == "$END":
        return "end of query"
    if token.type == "CMP":
        return f'"{token.value}"'
    description = _TOKEN_DESCRIPTIONS.get(token.type, token.type)
    if token.type == "PATH":
        return f"{description} {token.value!r}"
    if token.type in ("INT", "FLOAT"):
        return f"{description} {token.value}"
    return description


# --------------------------------------------------------------------------------------------
# Analyzer


def _first_position(node: Tree[Token] | Token) -> int | None:
    while isinstance(node, Tree):
        if not node.children:
            return None
        node = node.children[0]
    return node.start_pos


def _comparable(a: ValueType, b: ValueType) -> bool:
    return a == b or (a.is_numeric and b.is_numeric)


def _display_type(value_type: ValueType) -> str:
    # Enum columns are INT64 in storage; say so to match GoogleSQL's wording.
    return "INT64" if value_type is ValueType.ENUM else value_type.value


_CMP_OPS: Final = {
    "=": CmpOp.EQ,
    "!=": CmpOp.NE,
    "<>": CmpOp.NE,
    "<": CmpOp.LT,
    "<=": CmpOp.LE,
    ">": CmpOp.GT,
    ">=": CmpOp.GE,
}

_Node = Tree[Token] | Token


class _Analyzer:
    """Resolves and type-checks one parse tree for one node kind."""

    def __init__(self, text: str, kind: NodeKind) -> None:
        self.text = text
        self.kind = kind
        self.attributes = _ATTRIBUTES[kind]
        self.neighbors = _NEIGHBORS[kind]
        # (custom, lower-cased name) -> spelling first seen; §6.4 item 7.
        self.property_spellings: dict[tuple[bool, str], str] = {}
        self.resolved: dict[str, AttributeRef | NeighborRef | PropertyRef] = {}

    def error(self, message: str, node: _Node | int | None) -> FilterQueryError:
        position = node if isinstance(node, int) or node is None else _first_position(node)
        return _error(self.text, message, position)

    # -- boolean level ------------------------------------------------------------------------

    def expr(self, node: _Node) -> Expr:
        if isinstance(node, Tree):
            data = node.data
            children = node.children
            if data == "or_":
                return Or(tuple(self.expr(child) for child in children))
            if data == "and_":
                return And(tuple(self.expr(child) for child in children))
            if data == "not_":
                return Not(self.expr(children[1]))
            if data == "comparison":
                return self._comparison(children)
            if data in ("like", "not_like"):
                return self._like(children)
            if data in ("in_", "not_in"):
                return self._in(children)
            if data in ("between", "not_between"):
                return self._between(children)
            if data in ("is_null", "is_not_null"):
                return self._is_null(children)
            if data == "is_bool":
                raise self.error("IS TRUE / IS FALSE is not supported; compare with = instead", children[-1])
        # Any other node is a value standing alone as a predicate: it must be BOOL.
        value = self.value(node)
        if value.value_type is not ValueType.BOOL:
            raise self.error(
                "A filter must be a boolean expression; found an expression of type " + _display_type(value.value_type),
                node,
            )
        return Truth(value)

    def _comparison(self, children: list[_Node]) -> Expr:
        left_node, op_token, right_node = children
        assert isinstance(op_token, Token)
        op_text = str(op_token.value)
        left = self.value(left_node)
        if _is_enum_ref(left):
            if op_text in ("=", "!="):
                number = self.enum_number(right_node, left)
                return EnumPredicate(left, _enum_type(left), (number,), negated=op_text == "!=")
            # MLMD does not rewrite other operators, so the enum name stays an unknown
            # identifier; resolving it reproduces "Unrecognized name: LIVE".
            self.value(right_node)
            raise self.enum_misuse(left, op_token)
        right = self.value(right_node)
        if _is_enum_ref(right):
            raise self.enum_misuse(right, op_token)
        self.check_comparable(left, right, op_text, op_token)
        return Comparison(_CMP_OPS[op_text], left, right)

    def _like(self, children: list[_Node]) -> Expr:
        negated = len(children) == 4
        operand_node, keyword, pattern_node = children[0], children[-2], children[-1]
        operand = self.value(operand_node)
        pattern = self.value(pattern_node)
        assert isinstance(keyword, Token)
        for value in (operand, pattern):
            if _is_enum_ref(value):
                raise self.enum_misuse(value, keyword)
            if value.value_type is not ValueType.STRING:
                raise self.error(
                    "No matching signature for operator LIKE for argument types: "
                    f"{_display_type(operand.value_type)}, {_display_type(pattern.value_type)}",
                    keyword,
                )
        return Like(operand, pattern, negated)

    def _in(self, children: list[_Node]) -> Expr:
        operand_node = children[0]
        negated = isinstance(children[1], Token) and children[1].type == "NOT"
        first_keyword = children[1]
        in_token = children[2] if negated else children[1]
        item_nodes = children[3:] if negated else children[2:]
        assert isinstance(in_token, Token) and isinstance(first_keyword, Token)
        operand = self.value(operand_node)
        if _is_enum_ref(operand):
            self.check_enum_in_spacing(first_keyword, in_token, item_nodes[0])
            numbers = tuple(self.enum_number(item, operand) for item in item_nodes)
            return EnumPredicate(operand, _enum_type(operand), numbers, negated=negated)
        values = []
        for item_node in item_nodes:
            item = self.value(item_node)
            if _is_enum_ref(item):
                raise self.enum_misuse(item, in_token)
            self.check_comparable(operand, item, "IN", in_token)
            values.append(item)
        return InList(operand, tuple(values), negated)

    def _between(self, children: list[_Node]) -> Expr:
        negated = len(children) == 5
        keyword = children[-3]
        assert isinstance(keyword, Token)
        operand, low, high = (self.value(children[0]), *map(self.value, children[-2:]))
        for value in (operand, low, high):
            if _is_enum_ref(value):
                raise self.enum_misuse(value, keyword)
        self.check_comparable(operand, low, "BETWEEN", keyword)
        self.check_comparable(operand, high, "BETWEEN", keyword)
        return Between(operand, low, high, negated)

    def _is_null(self, children: list[_Node]) -> Expr:
        # IS [NOT] NULL is the one place enum fields may appear without enum names.
        return IsNull(self.value(children[0]), negated=len(children) == 3)

    # -- value level --------------------------------------------------------------------------

    def value(self, node: _Node, negate: bool = False) -> Value:
        # ``negate`` carries pending unary minuses down to the operand, so that literals
        # fold with their sign (-9223372036854775808 is in range, its magnitude is not).
        if isinstance(node, Token):
            if node.type != "PATH":
                return self.literal(node, negate)
            ref = self.resolve(node)
            if not negate:
                return ref
            if not ref.value_type.is_numeric:
                raise self.error(
                    "No matching signature for operator - for argument type " + _display_type(ref.value_type),
                    node,
                )
            return Negate(ref)
        if node.data == "neg":
            return self.value(node.children[1], not negate)
        raise self.error(
            "A boolean expression cannot be used as an operand of a comparison, LIKE, IN, BETWEEN, IS or unary minus",
            node,
        )

    def literal(self, token: Token, negate: bool) -> Literal:
        token_type = token.type
        text = str(token.value)
        if token_type == "INT":
            is_hex = text[:2] in ("0x", "0X")
            digits = text[2:] if is_hex else text
            # Reject long digit strings before int(): 20 significant digits already exceed
            # INT64, and this keeps clear of Python's int-max-str-digits limit.
            if len(digits.lstrip("0")) > 20:
                raise self.error(f"Invalid integer literal: {text[:40]}", token)
            number = int(digits, 16 if is_hex else 10)
            if negate:
                number = -number
            if not _INT64_MIN <= number <= _INT64_MAX:
                sign = "-" if negate else ""
                raise self.error(f"Invalid integer literal: {sign}{text}", token)
            return Literal(number, ValueType.INT64)
        if token_type == "FLOAT":
            double = float(text)
            if not math.isfinite(double):
                raise self.error(f"Invalid floating point literal: {text[:40]}", token)
            return Literal(-double if negate else double, ValueType.DOUBLE)
        if token_type == "NULL":
            raise self.error(
                "NULL can only be used in IS NULL or IS NOT NULL (a comparison with NULL is never true)",
                token,
            )
        if negate:
            raise self.error("Unary minus can only be applied to numbers", token)
        if token_type == "STRING":
            return Literal(text, ValueType.STRING)
        return Literal(token_type == "TRUE", ValueType.BOOL)

    def path_parts(self, token: Token) -> list[tuple[str, int, bool]]:
        """(name, position, was_backquoted) for each component of a PATH token."""
        value = str(token.value)
        start = token.start_pos
        assert start is not None
        if "`" not in value and "." not in value:
            return [(value, start, False)]
        parts: list[tuple[str, int, bool]] = []
        for match in _PATH_PART_RE.finditer(value):
            at = start + match.start()
            plain = match.group(1)
            if plain is not None:
                parts.append((plain, at, False))
                continue
            name = _unescape(self.text, match.group()[1:-1], at + 1, "quoted identifier")
            if not name:
                raise self.error("Syntax error: empty quoted identifier", at)
            if "\x00" in name:
                raise self.error("NUL characters are not allowed in identifiers", at)
            parts.append((name, at, True))
        return parts

    def resolve(self, token: Token) -> AttributeRef | NeighborRef | PropertyRef:
        # Real queries repeat the same few references; resolution is pure per spelling.
        key = str(token.value)
        ref = self.resolved.get(key)
        if ref is None:
            ref = self.resolve_parts(self.path_parts(token))
            self.resolved[key] = ref
        return ref

    def resolve_parts(self, parts: list[tuple[str, int, bool]]) -> AttributeRef | NeighborRef | PropertyRef:
        head, head_at, _ = parts[0]
        shown = ".".join(part[0] for part in parts)
        if len(parts) == 1:
            spec = self.attributes.get(head.lower())
            if spec is None:
                raise self.error(f"Unrecognized name: {head}", head_at)
            return AttributeRef(head.lower(), spec[0], spec[1])

        # Prefixes are matched case-sensitively (§6.1: they must be written in lower case).
        if head in _PROPERTY_PREFIXES:
            custom = _PROPERTY_PREFIXES[head]
            if len(parts) != 3:
                raise self.error(
                    f"Invalid property reference {shown}: expected "
                    f"{head}.<name>.<int_value|double_value|string_value|bool_value>",
                    head_at,
                )
            spelled, name_at, _ = parts[1]
            field_spelled, field_at, _ = parts[2]
            field_name = field_spelled.lower()
            if field_name in _UNADDRESSABLE_PROPERTY_FIELDS:
                raise self.error(
                    f"Field {field_name} of {head}.{spelled} cannot be used in a filter",
                    field_at,
                )
            try:
                field = PropertyField(field_name)
            except ValueError:
                raise self.error(f"Field name {field_spelled} does not exist in {head}.{spelled}", field_at) from None
            # MLMD lower-cases the name (§6.4 item 7); two spellings that differ only in
            # case become the same column twice, which MLMD rejects.
            name = spelled.lower()
            seen = self.property_spellings.setdefault((custom, name), spelled)
            if seen != spelled:
                raise self.error(
                    f"Duplicate column name: {head}.{seen} and {head}.{spelled} differ only in case",
                    name_at,
                )
            return PropertyRef(custom, name, field)

        for kind, fields in self.neighbors.items():
            prefix = kind.value + "_"
            if head.startswith(prefix) and len(head) > len(prefix):
                alias = head[len(prefix) :]
                if not _ALIAS_RE.fullmatch(alias):
                    break
                if len(parts) != 2:
                    raise self.error(f"Invalid reference {shown}: expected {head}.<field>", head_at)
                field_spelled, field_at, _ = parts[1]
                field_name = field_spelled.lower()
                spec = fields.get(field_name)
                if spec is None:
                    raise self.error(f"Field name {field_spelled} does not exist in {head}", field_at)
                # GoogleSQL identifiers are case-insensitive: contexts_A is contexts_a.
                return NeighborRef(kind, alias.lower(), field_name, spec[0], spec[1])
        raise self.error(f"Unrecognized name: {head}", head_at)

    # -- checks -------------------------------------------------------------------------------

    def check_comparable(self, left: Value, right: Value, op: str, at: Token) -> None:
        if not _comparable(left.value_type, right.value_type):
            raise self.error(
                f"No matching signature for operator {op} for argument types: "
                f"{_display_type(left.value_type)}, {_display_type(right.value_type)}",
                at,
            )

    def enum_misuse(self, ref: Value, at: Token) -> FilterQueryError:
        return self.error(
            f"{_ref_text(ref)} is an enum field: use =, !=, IN or NOT IN with enum names, or IS [NOT] NULL",
            at,
        )

    def enum_number(self, node: _Node, field: Value) -> int:
        """The number of a bare enum name (§6.5: upper-case, case-sensitive)."""
        enum_type = _enum_type(field)
        if isinstance(node, Token) and node.type == "PATH":
            parts = self.path_parts(node)
            name, _, quoted = parts[0]
            if len(parts) == 1 and not quoted:
                number = _ENUM_ACCEPTED[enum_type].get(name)
                if number is not None:
                    return number
                if name in _ENUM_UNSUPPORTED[enum_type]:
                    raise self.error(f"Unsupported enum value: {name}", node)
            # Not an enum name: resolve it as a reference, as MLMD (whose rewrite left it
            # alone) would. An unknown name gets "Unrecognized name"; a known one (`state =
            # name`) falls through to the enum error below.
            self.resolve(node)
        raise self.error(
            f"{_ref_text(field)} must be compared with {enum_type.value} names, not numbers or other values",
            node,
        )

    def check_enum_in_spacing(self, first_keyword: Token, in_token: Token, item: _Node) -> None:
        # MLMD rewrites enum IN lists textually and needs whitespace around [NOT] IN;
        # `state IN(LIVE)` leaves LIVE unrewritten ("Unrecognized name: LIVE").
        text = self.text
        before = first_keyword.start_pos
        after = in_token.end_pos
        assert before is not None and after is not None
        if (before > 0 and not text[before - 1].isspace()) or not text[after : after + 1].isspace():
            name = _first_token(item)
            shown = str(name.value) if name is not None else "?"
            raise self.error(
                f"Unrecognized name: {shown} (enum names after IN need whitespace around IN)",
                item,
            )


def _first_token(node: _Node) -> Token | None:
    while isinstance(node, Tree):
        if not node.children:
            return None
        node = node.children[0]
    return node


def _is_enum_ref(value: Value) -> TypeGuard[AttributeRef | NeighborRef]:
    return value.value_type is ValueType.ENUM


def _enum_type(value: Value) -> EnumType:
    assert isinstance(value, AttributeRef | NeighborRef) and value.enum_type is not None
    return value.enum_type


def _ref_text(value: Value) -> str:
    if isinstance(value, AttributeRef):
        return value.name
    if isinstance(value, NeighborRef):
        return f"{value.kind.value}_{value.alias}.{value.field}"
    return "value"


# --------------------------------------------------------------------------------------------
# Entry points


def _syntax_error(text: str, tokens: list[Token], token: Token) -> FilterQueryError:
    if token.type == "$END":
        return _error(text, "Syntax error: Unexpected end of query", len(text))
    message = f"Syntax error: Unexpected {_describe_token(token)}"
    # Name the unsupported construct when it is recognisable from the previous token.
    index = next((i for i, t in enumerate(tokens) if t is token), 0)
    previous = tokens[index - 1] if index > 0 else None
    if previous is not None and previous.type == "PATH":
        if str(previous.value).upper() == "SELECT":
            message += " (subqueries are not supported)"
        elif token.type == "_LPAR":
            message += " (function calls are not supported)"
    return _error(text, message, token.start_pos)


def _check_limits(text: str) -> None:
    # Cheap checks first, on the raw text: a 1 MiB query fails before any scanning.
    if len(text) > MAX_QUERY_LENGTH or len(text.encode("utf-8", "surrogatepass")) > MAX_QUERY_LENGTH:
        raise FilterQueryError(f"Invalid `filter_query`: query is longer than {MAX_QUERY_LENGTH} bytes", None)
    nul = text.find("\x00")
    if nul >= 0:
        raise _error(text, "NUL characters are not allowed", nul)


def parse_filter(text: str, node_kind: NodeKind) -> Expr:
    """Parse and type-check ``text`` as a filter over nodes of ``node_kind``.

    Raises FilterQueryError (→ INVALID_ARGUMENT) for anything MLMD rejects, and also for
    constructs MLMD passes through to SQL (arithmetic, functions, subqueries). An empty or
    blank query is an error here: callers treat ``""`` as "no filter" (see
    `parse_optional_filter`).
    """
    if not isinstance(text, str):
        raise TypeError("filter text must be str")
    _check_limits(text)
    tokens = _tokenize(text)
    if not tokens:
        raise FilterQueryError("Invalid `filter_query`: query is empty", 0)
    try:
        tree = _PARSER.parse(tokens)  # custom-lexer input: our token list
    except UnexpectedToken as exc:
        raise _syntax_error(text, tokens, exc.token) from None
    except UnexpectedInput as exc:  # not raised with a token-list lexer; kept as a guard
        raise _error(text, "Syntax error", None) from exc
    return _Analyzer(text, node_kind).expr(tree.children[0])


def parse_optional_filter(text: str, node_kind: NodeKind) -> Expr | None:
    """Like `parse_filter`, but ``""`` (MLMD's "no filter") gives None."""
    if text == "":
        return None
    return parse_filter(text, node_kind)
