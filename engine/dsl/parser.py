"""Formula text → syntax tree, with positioned, bilingual syntax errors (公式解析)."""

from __future__ import annotations

import datetime as dt
import re
from functools import cache

from lark import Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from engine.dsl import ast, formula_cache
from engine.dsl.grammar import lark_parser
from engine.dsl.syntax_messages import (
    FULL_WIDTH,
    GENERIC,
    LIST_ARGUMENTS,
    LIST_NOT_ALLOWED,
    NO_NULL,
    NULL_WORDS,
    SYNTAX_MESSAGES,
    TOKEN_NAMES,
    UNKNOWN_CHARACTER,
    full_width_message,
)
from engine.errors import FormulaError
from engine.settings import LIMITS

MAX_FORMULA_LENGTH = LIMITS.formula_chars
MAX_DEPTH = LIMITS.formula_depth


def _pos(meta_or_token) -> int:
    return getattr(meta_or_token, "start_pos", 0) or 0


@v_args(meta=True)
class _ToAst(Transformer):
    """Builds `engine.dsl.ast` nodes from the Lark parse tree."""

    def number(self, meta, items):
        text = str(items[0]).replace("_", "")
        return ast.Literal(_pos(items[0]), float(text), "number")

    def percent(self, meta, items):
        text = str(items[0]).rstrip("%").replace("_", "")
        return ast.Literal(_pos(items[0]), float(text) / 100.0, "number")

    def string(self, meta, items):
        return ast.Literal(_pos(items[0]), str(items[0])[1:-1], "string")

    def date(self, meta, items):
        tok = items[0]
        try:
            value = dt.date.fromisoformat(str(tok))
        except ValueError:
            raise FormulaError("bad_date", f"'{tok}' is not a valid date (YYYY-MM-DD)",
                               f"“{tok}”不是有效日期（应为 YYYY-MM-DD）", _pos(tok)) from None
        return ast.Literal(_pos(tok), value, "date")

    def true(self, meta, items):
        return ast.Literal(_pos(items[0]), True, "bool")

    def false(self, meta, items):
        return ast.Literal(_pos(items[0]), False, "bool")

    def name(self, meta, items):
        return ast.Name(_pos(items[0]), tuple(str(t) for t in items))

    def list(self, meta, items):
        return ast.ListExpr(_pos(meta), tuple(i for i in items if i is not None))

    def if_expr(self, meta, items):
        return ast.IfElse(_pos(items[0]), items[1], items[3], items[5])

    def or_op(self, meta, items):
        return ast.Binary(_pos(items[1]), "or", items[0], items[2])

    def and_op(self, meta, items):
        return ast.Binary(_pos(items[1]), "and", items[0], items[2])

    def not_op(self, meta, items):
        return ast.Unary(_pos(items[0]), "not", items[1])

    def compare(self, meta, items):
        return ast.Binary(_pos(items[1]), str(items[1]), items[0], items[2])

    def binop(self, meta, items):
        return ast.Binary(_pos(items[1]), str(items[1]), items[0], items[2])

    def in_op(self, meta, items):
        return ast.InList(_pos(items[1]), items[0], items[2], False)

    def not_in_op(self, meta, items):
        return ast.InList(_pos(items[1]), items[0], items[3], True)

    def neg(self, meta, items):
        operand = items[1]
        if isinstance(operand, ast.Literal) and operand.kind == "number":
            return ast.Literal(_pos(items[0]), -operand.value, "number")
        return ast.Unary(_pos(items[0]), "-", operand)

    def index(self, meta, items):
        return ast.Index(_pos(meta), items[0], items[1])

    def filtered(self, meta, items):
        return ("where", items[0], items[2])

    def keyword(self, meta, items):
        return ("keyword", str(items[0]), items[1])

    def arguments(self, meta, items):
        return [i for i in items if i is not None]

    def call(self, meta, items):
        fname, arguments = items[0], items[1] or []
        args, keywords, where = [], [], None
        for arg in arguments:
            if isinstance(arg, tuple) and arg[0] == "keyword":
                keywords.append((arg[1], arg[2]))
            elif isinstance(arg, tuple) and arg[0] == "where":
                if where is not None:
                    raise FormulaError("two_where", "only one 'where' filter is allowed in a call",
                                       "一个函数调用中只能有一个“where”过滤条件", _pos(fname))
                args.append(arg[1])
                where = arg[2]
            else:
                if keywords:
                    raise FormulaError("positional_after_keyword",
                                       "a plain argument cannot follow a named one (name=value)",
                                       "位置参数不能放在命名参数（name=value）之后", arg.pos)
                args.append(arg)
        return ast.Call(_pos(fname), str(fname), tuple(args), tuple(keywords), where)


def _raw_parse(text: str):
    return lark_parser().parse(text)


# Tokens that can start a value: a mistake before one of them is the same mistake whichever it is.
_VALUE_START = {"NAME", "NUMBER", "PERCENT", "STRING", "DATE", "TRUE", "FALSE", "LPAR", "LSQB", "IF", "NOT",
                "MINUS"}


def _token_class(token) -> str:
    kind = getattr(token, "type", "$END")
    return "value" if kind in _VALUE_START else kind


def _failure(err: UnexpectedToken) -> tuple:
    """Where a parse failed: LALR state number, token text, kind of token, what would have been accepted."""
    state = getattr(err.state, "position", err.state)
    return state, str(err.token), _token_class(err.token), frozenset(err.accepts or ())


@cache
def _example_failures() -> list[tuple[str, tuple]]:
    out = []
    for code, (_, _, examples) in SYNTAX_MESSAGES.items():
        for example in examples:
            try:
                _raw_parse(example)
            except UnexpectedToken as ut:
                out.append((code, _failure(ut)))
            except UnexpectedInput:
                continue
    return out


def _match_example(err: UnexpectedInput) -> str | None:
    """The message whose bad example failed in the same parser state on the same kind of token,
    preferring one with the same acceptable continuations, then the same token.

    (Lark's own `match_examples` also compares the stack depth, so a mistake inside brackets
    missed its message, and with use_accepts it crashes with a TypeError in its debug logging.)
    """
    if not isinstance(err, UnexpectedToken):
        return None
    state, token, kind, accepts = _failure(err)
    # where only a value may come next, any token there means the value is missing
    wants_value = bool(accepts) and accepts <= _VALUE_START
    best, best_rank = None, 5
    for code, (ex_state, ex_token, ex_kind, ex_accepts) in _example_failures():
        if ex_state != state:
            continue
        if ex_kind == kind:
            rank = 2 * (ex_accepts != accepts) + (ex_token != token)
        elif wants_value and ex_kind == "$END":
            rank = 4
        else:
            continue
        if rank < best_rank:
            best, best_rank = code, rank
    return best


def _syntax_error(text: str, err: UnexpectedInput) -> FormulaError:
    offset = getattr(err, "pos_in_stream", None)
    if isinstance(err, UnexpectedEOF) or offset is None:
        offset = len(text)
    if isinstance(err, UnexpectedCharacters):
        ch = text[offset] if offset < len(text) else ""
        if ch == "=":
            en, zh = SYNTAX_MESSAGES["single_equals"][:2]
            return FormulaError("single_equals", en, zh, offset)
        if ch in FULL_WIDTH:
            return FormulaError("full_width", *full_width_message(ch), offset)
        return FormulaError("unknown_character", f"{UNKNOWN_CHARACTER[0]}: '{ch}'",
                            f"{UNKNOWN_CHARACTER[1]}：“{ch}”", offset)
    code = _match_example(err)
    at_end = isinstance(err, UnexpectedToken) and err.token.type == "$END"
    if at_end:
        offset = len(text)  # lark places the end at the last token; the mistake is after it
    if code is None and at_end:
        expected = getattr(err, "expected", set()) or set()
        code = "unclosed_paren" if "RPAR" in expected else "unclosed_bracket" if "RSQB" in expected else None
    if code is None:
        expected = sorted({TOKEN_NAMES.get(t, t) for t in getattr(err, "expected", []) or []})
        en, zh = GENERIC
        got = getattr(err, "token", None)
        got_text = "end of formula" if got is None or got.type == "$END" else f"'{got}'"
        got_zh = "公式结尾" if got is None or got.type == "$END" else f"“{got}”"
        return FormulaError("syntax", f"{en}: found {got_text}, expected one of {', '.join(expected)}",
                            f"{zh}：遇到 {got_zh}", offset)
    en, zh = SYNTAX_MESSAGES[code][:2]
    return FormulaError(code, en, zh, offset)


def _depth(node: ast.Node) -> int:
    stack, best = [(node, 1)], 0
    while stack:
        current, depth = stack.pop()
        best = max(best, depth)
        stack.extend((child, depth + 1) for child in ast.children(current))
    return best


def parse_formula(text: str) -> ast.Node:
    """Parse one policy formula; raise FormulaError with an offset on any mistake, including a
    `null`/`None` or a list where the language takes none. A formula parsed before comes from the
    formula cache (engine.dsl.formula_cache)."""
    return formula_cache.CACHE.parse(text, _parse_formula)


def _parse_formula(text: str) -> ast.Node:
    node = parse_expression(text)
    _check_values(node)
    return node


def parse_expression(text: str) -> ast.Node:
    """Parse any text of the grammar (a bare list too); raise FormulaError on a syntax mistake."""
    if len(text) > MAX_FORMULA_LENGTH:
        raise FormulaError("formula_too_long",
                           f"formula is {len(text)} characters, more than the limit {MAX_FORMULA_LENGTH}",
                           f"公式长度 {len(text)} 超过上限 {MAX_FORMULA_LENGTH}", 0)
    if not text.strip():
        en, zh = SYNTAX_MESSAGES["empty_formula"][:2]
        raise FormulaError("empty_formula", en, zh, 0)
    try:
        tree = _raw_parse(text)
    except UnexpectedInput as err:
        raise _null_word(text) or _syntax_error(text, err) from None
    except RecursionError:
        raise FormulaError("too_deep", "formula is nested too deeply", "公式嵌套层数过多", 0) from None
    try:
        node = _ToAst().transform(tree)
    except Exception as err:  # lark wraps transformer errors
        inner = getattr(err, "orig_exc", err)
        if isinstance(inner, FormulaError):
            raise inner from None
        if isinstance(inner, RecursionError):  # thousands of nested operators
            raise FormulaError("too_deep", f"formula is nested more than {MAX_DEPTH} levels deep",
                               f"公式嵌套超过 {MAX_DEPTH} 层", 0) from None
        raise
    if _depth(node) > MAX_DEPTH:
        raise FormulaError("too_deep", f"formula is nested more than {MAX_DEPTH} levels deep",
                           f"公式嵌套超过 {MAX_DEPTH} 层", 0)
    return node


# texts and comments are matched (and skipped) so that a null word inside them does not count
_NULL_PATTERN = re.compile(r""""[^"\n]*"|'[^'\n]*'|#[^\n]*|(?<![\w.])(?:""" + "|".join(NULL_WORDS) + r")(?![\w.])")


def _null_word(text: str) -> FormulaError | None:
    """A formula that does not parse and uses a word such as `None` (as in `x is None`): that word first."""
    for match in _NULL_PATTERN.finditer(text):
        if match.group(0) in NULL_WORDS:
            return FormulaError("no_null", *NO_NULL, match.start())
    return None


def _check_values(node: ast.Node) -> None:
    """No `null`/`None` names, and lists only where the language takes them (after `in`, in bands/step)."""
    allowed: set[int] = set()
    for current in ast.walk(node):
        if isinstance(current, ast.Name) and len(current.parts) == 1 and current.parts[0] in NULL_WORDS:
            raise FormulaError("no_null", *NO_NULL, current.pos)
        if isinstance(current, ast.InList):
            allowed.add(id(current.options))
        elif isinstance(current, ast.Call) and current.function in LIST_ARGUMENTS:
            allowed.update(id(arg) for arg in current.args)
        elif isinstance(current, ast.ListExpr) and id(current) not in allowed:
            raise FormulaError("list_not_allowed", *LIST_NOT_ALLOWED, current.pos)


__all__ = ["parse_expression", "parse_formula", "Token"]
