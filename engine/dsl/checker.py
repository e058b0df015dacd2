"""Static checks of a formula: names, entity levels, types; collects dependencies (公式检查).

The checker translates the syntax tree into the typed tree (engine.dsl.typed): every name
resolved, every node typed and placed on its entity, every call bound to its built-in. Built-in
functions are checked by their own entries in the function table the checker is given.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.dsl import ast
from engine.dsl import typed as T
from engine.errors import FormulaError
from engine.model.model import Model
from engine.model.spec import MONEY_UNITS, Variable

NUMERIC = "number"
MAX_DIGITS = 10  # round(x, d): float64 money keeps about 15 significant digits


class FunctionCheck(Protocol):
    """What the checker needs of a built-in: whether it filters rows, and its own check."""

    name: str
    takes_where: bool

    def check(self, checker: Checker, node: ast.Call, scope: str, in_before: bool) -> T.Call: ...


@dataclass
class Ref:
    """What a dotted name resolves to (while checking it)."""

    kind: str  # var | param | table | column | rows
    name: str
    entity: str | None = None
    path: list[str] = field(default_factory=list)  # links from the scope entity up to `entity`
    column: str | None = None


@dataclass
class Checked:
    """A checked formula: its typed tree and what it depends on."""

    node: T.Expr
    type: str
    deps: set[tuple[str, str]]
    params: set[str]
    tables: set[str]
    recurrent: bool


def _suggest(name: str, options) -> str:
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return close[0] if close else ""


def _err(code: str, en: str, zh: str, node: ast.Node) -> FormulaError:
    return FormulaError(code, en, zh, node.pos)


def error(code: str, en: str, zh: str, node: ast.Node) -> FormulaError:
    """A formula error (English, Chinese) at the position of `node`."""
    return _err(code, en, zh, node)


class Checker:
    """Checks formulas of one policy against its model, parameters, tables and built-in functions,
    and translates each into its typed tree. While `table_scope` names a table, names are that
    table's columns, one value per table row (inside a total such as sum(drg.weight))."""

    table_scope: str | None = None

    def __init__(self, model: Model, parameters: Mapping[str, Any], tables: Mapping[str, Any],
                 functions: Mapping[str, FunctionCheck]):
        self.model, self.parameters, self.tables = model, parameters, tables
        self.functions = functions

    # ---- entry point -------------------------------------------------------------------
    def check(self, variable: Variable) -> Checked:
        self.variable = variable
        self.deps: set[tuple[str, str]] = set()
        self.params: set[str] = set()
        self.tables_used: set[str] = set()
        self.recurrent = False
        node = self.expr(variable.node, variable.entity, in_before=False)
        typ, want = node.type, variable.type
        if not _compatible(want, typ):
            raise FormulaError("wrong_result_type",
                               f"the formula gives a {_type_name(typ)} but '{variable.name}' is declared as a "
                               f"{_type_name(want)} (type: {want})",
                               f"公式结果是{_type_zh(typ)}，但“{variable.name}”声明为{_type_zh(want)}（type: {want}）", 0)
        return Checked(node, typ, self.deps, self.params, self.tables_used, self.recurrent)

    # ---- expressions -------------------------------------------------------------------
    def expr(self, node: ast.Node, scope: str, in_before: bool) -> T.Expr:
        """The typed tree of `node`, evaluated on entity `scope`; `in_before`: inside a function
        that reads only earlier rows of a chain."""
        method = getattr(self, "_" + type(node).__name__.lower())
        return method(node, scope, in_before)

    def _literal(self, node: ast.Literal, scope: str, in_before: bool) -> T.Expr:
        # a number written beyond float range (1e400) would silently become infinity
        if node.kind == "number" and not math.isfinite(float(node.value)):
            raise _err("not_finite", "this number is too large to be finite (the largest is about 1.8e308); "
                       "write an ordinary number", "此数值过大，不是有限数（上限约为 1.8e308）；请写普通数字", node)
        return T.Literal(node.pos, node.kind, scope, node.value, node.kind, syntax=node)

    def _listexpr(self, node: ast.ListExpr, scope: str, in_before: bool) -> T.Expr:
        items = tuple(self.expr(item, scope, in_before) for item in node.items)
        types = {item.type for item in items}
        if len(types) > 1:
            raise _err("mixed_list", "a list mixes different kinds of values",
                       "列表中混有不同类型的值", node)
        typ = "list:" + (types.pop() if types else NUMERIC)
        return T.ListOf(node.pos, typ, scope, items, money=_same_money(items), syntax=node)

    def _unary(self, node: ast.Unary, scope: str, in_before: bool) -> T.Expr:
        operand = self.expr(node.operand, scope, in_before)
        if node.op == "not":
            self.want(operand.type, "bool", node.operand, "not")
            return T.Unary(node.pos, "bool", scope, "not", operand, money=False, syntax=node)
        self.want(operand.type, NUMERIC, node.operand, "-")
        return T.Unary(node.pos, NUMERIC, scope, "-", operand, money=operand.money, syntax=node)

    def _binary(self, node: ast.Binary, scope: str, in_before: bool) -> T.Expr:
        if node.op in ("==", "!=") and (self._link_of(node.left, scope) or self._link_of(node.right, scope)):
            return self._link_compare(node, scope, in_before)
        left_node = self.expr(node.left, scope, in_before)
        right_node = self.expr(node.right, scope, in_before)
        left, right, op = left_node.type, right_node.type, node.op
        if op in ("and", "or"):
            self.want(left, "bool", node.left, op)
            self.want(right, "bool", node.right, op)
            return T.Binary(node.pos, "bool", scope, op, left_node, right_node, money=False, syntax=node)
        if op in ("+", "-", "*", "/"):
            if op == "-" and left == right == "date":
                return T.Binary(node.pos, NUMERIC, scope, op, left_node, right_node, money=False, syntax=node)
            for side, typ in ((node.left, left), (node.right, right)):
                if typ == "bool":
                    raise _err("bool_arithmetic",
                               f"a yes/no value cannot be used with '{op}'; write (if CONDITION then 1 else 0)",
                               f"是/否值不能参与“{op}”运算；请写 (if 条件 then 1 else 0)", side)
                self.want(typ, NUMERIC, side, op)
            return T.Binary(node.pos, NUMERIC, scope, op, left_node, right_node,
                            money=_arithmetic_money(op, left_node.money, right_node.money), syntax=node)
        if left != right and not (_compatible(left, right)):
            raise _err("compare_types",
                       f"'{op}' compares a {_type_name(left)} with a {_type_name(right)}",
                       f"“{op}”把{_type_zh(left)}与{_type_zh(right)}相比较", node)
        if op not in ("==", "!=") and left not in (NUMERIC, "date", "string"):
            raise _err("order_types", f"'{op}' needs numbers, dates or texts, not a {_type_name(left)}",
                       f"“{op}”只能比较数字、日期或文本，不能比较{_type_zh(left)}", node)
        self._check_category(left_node, right_node)
        self._check_category(right_node, left_node)
        return T.Compare(node.pos, "bool", scope, op, left_node, right_node, money=False, syntax=node)

    def _link_of(self, node: ast.Node, scope: str) -> T.Link | None:
        """The link a name stands for (`signed_institution`, `institution.fund`), or None."""
        if not isinstance(node, ast.Name) or self.table_scope is not None:
            return None
        try:
            ref = self.resolve(node, list(node.parts), scope, [])
        except FormulaError:
            return None
        links = self.model.entities[ref.entity].links if ref.kind == "var" else {}
        if ref.name not in links:
            return None
        target = links[ref.name]
        return T.Link(node.pos, f"link:{target}", scope, ref.name, ref.entity, target, tuple(ref.path),
                      money=False, syntax=node)

    def _link_compare(self, node: ast.Binary, scope: str, in_before: bool) -> T.Expr:
        """`signed_institution == institution`: two links to the same entity compared as identities
        (the same row); a link with anything else is an error."""
        left, right = self._link_of(node.left, scope), self._link_of(node.right, scope)
        if left is None or right is None:
            link = left if left is not None else right
            assert link is not None and isinstance(link.syntax, ast.Name)
            err = self._link_error(link.syntax, self.resolve(link.syntax, list(link.syntax.parts), scope, []))
            raise FormulaError(err.code, f"{err.en}; or compare it with another link to a {link.target}, "
                               f"e.g. signed_institution == institution",
                               f"{err.zh}；或与另一个指向{link.target}的关联比较，例如 signed_institution == institution",
                               err.offset)
        if left.target != right.target:
            raise _err("compare_link",
                       f"'{node.op}' compares links to different entities: '{ast.to_text(node.left)}' names a "
                       f"{left.target}, '{ast.to_text(node.right)}' a {right.target}; they can never be the same row",
                       f"“{node.op}”比较指向不同实体的关联：“{ast.to_text(node.left)}”指向{left.target}，"
                       f"“{ast.to_text(node.right)}”指向{right.target}，二者不可能是同一行", node)
        return T.Compare(node.pos, "bool", scope, node.op, left, right, money=False, syntax=node)

    def _inlist(self, node: ast.InList, scope: str, in_before: bool) -> T.Expr:
        value = self.expr(node.value, scope, in_before)
        options = self.expr(node.options, scope, in_before)
        if not options.type.startswith(("list:", "column:")):
            raise _err("in_needs_list",
                       f"'{ast.to_text(node.options)}' is not a list: 'in' needs a list [...], a list parameter "
                       "or a table column (x in drg.drg_group)",
                       f"“{ast.to_text(node.options)}”不是列表：“in”后面应为列表 [...]、列表参数或表列"
                       "（如 x in drg.drg_group）", node.options)
        if options.type.split(":", 1)[1] != value.type and not (isinstance(options, T.ListOf) and not options.items):
            raise _err("compare_types", f"'in' looks for a {_type_name(value.type)} in a list of another kind",
                       f"“in”在另一类型的列表中查找{_type_zh(value.type)}", node)
        items = options.items if isinstance(options, T.ListOf) else (options,)
        for item in items:
            self._check_category(value, item)
        return T.InList(node.pos, "bool", scope, value, items, node.negate, money=False, syntax=node)

    def _ifelse(self, node: ast.IfElse, scope: str, in_before: bool) -> T.Expr:
        cond = self.expr(node.condition, scope, in_before)
        self.want(cond.type, "bool", node.condition, "if")
        then = self.expr(node.then, scope, in_before)
        other = self.expr(node.otherwise, scope, in_before)
        if not _compatible(then.type, other.type):
            raise _err("branch_types",
                       f"'then' gives a {_type_name(then.type)} but 'else' gives a {_type_name(other.type)}",
                       f"“then”分支是{_type_zh(then.type)}，而“else”分支是{_type_zh(other.type)}", node.otherwise)
        money = then.money if then.money == other.money else _money_beside_pending(then, other)
        return T.If(node.pos, then.type, scope, cond, then, other, money=money, syntax=node)

    def _index(self, node: ast.Index, scope: str, in_before: bool) -> T.Expr:
        if not isinstance(node.target, ast.Name):
            raise _err("bad_index", "only a parameter by category can be indexed, as in rate[level]",
                       "只能对分类参数取值，例如 rate[level]", node)
        target = self.expr(node.target, scope, in_before)
        if not (isinstance(target, T.Param) and self.parameters[target.name].kind == "map"):
            raise _err("bad_index", f"'{node.target.dotted}' is not a parameter by category; it cannot take [ ]",
                       f"“{node.target.dotted}”不是分类参数，不能用 [ ] 取值", node)
        key = self.expr(node.key, scope, in_before)
        if key.type not in (NUMERIC, "string", "bool"):
            raise _err("bad_index", "a category key must be a number, text or yes/no value",
                       "分类键必须是数字、文本或是/否值", node.key)
        return T.Index(node.pos, self.parameters[target.name].value_type, scope, target.name, key,
                       money=target.money, syntax=node)

    # ---- names -------------------------------------------------------------------------
    def _name(self, node: ast.Name, scope: str, in_before: bool) -> T.Expr:
        ref = self.resolve(node, list(node.parts), scope, [])
        if self.table_scope is not None and ref.kind != "column":
            raise self._outside_table(node)
        if ref.kind == "var":
            var = self.model.entities[ref.entity].variables[ref.name]
            if ref.name in self.model.entities[ref.entity].links:  # no column holds a link's ids
                raise self._link_error(node, ref)
            if ref.entity == self.variable.entity and ref.name == self.variable.name and not ref.path:
                if scope != self.variable.entity or not in_before:
                    raise _err("self_reference",
                               f"'{ref.name}' refers to itself; only earlier rows of a chain may be read, "
                               f"e.g. chain_sum_before({ref.name})",
                               f"“{ref.name}”引用了自身；只能读取链上更早的记录，例如 chain_sum_before({ref.name})",
                               node)
                self.recurrent = True
            else:
                self.deps.add((ref.entity, ref.name))
            return T.Var(node.pos, var.type, scope, ref.name, ref.entity, tuple(ref.path),
                         money=var.is_money, syntax=node)
        if ref.kind == "param":
            self.params.add(ref.name)
            param = self.parameters[ref.name]
            typ = f"list:{param.value_type}" if param.kind == "list" else param.kind
            return T.Param(node.pos, typ, scope, ref.name, money=param.unit in MONEY_UNITS, syntax=node)
        if ref.kind == "table":
            raise _err("table_needs_column",
                       f"'{ref.name}' is a table; name one of its columns, e.g. {ref.name}.{next(iter(self.tables[ref.name].columns), 'value')}",
                       f"“{ref.name}”是一张表；请指明列名", node)
        if ref.kind == "column":
            self.tables_used.add(ref.name)
            typ = self.tables[ref.name].column_type(ref.column)
            if self.table_scope is None:
                typ = "column:" + typ
            elif ref.name != self.table_scope:
                raise self._outside_table(node)
            return T.Column(node.pos, typ, scope, ref.name, ref.column, syntax=node)
        return T.Rows(node.pos, NUMERIC, scope, money=False, syntax=node)

    def resolve(self, node: ast.Name, parts: list[str], scope: str, path: list[str]) -> Ref:
        """Resolve dotted parts in the context of entity `scope` (reached through `path`)."""
        entity = self.model.entities[scope]
        head = parts[0]
        if len(parts) == 1:
            if head in entity.variables:
                return Ref("var", head, scope, path)
            if head == scope and not path:
                return Ref("rows", head, scope)
            if not path and head in self.parameters:
                return Ref("param", head)
            if not path and head in self.tables:
                return Ref("table", head)
            if head in self.model.entities and self.model.is_descendant(head, scope):
                raise self._child_error(node, head, scope)
            raise self._unknown(node, head, scope, path, len(node.parts) - len(parts))
        if head == scope and not path:
            return self.resolve(node, parts[1:], scope, path)
        if head in entity.links:
            return self.resolve(node, parts[1:], entity.links[head], [*path, head])
        if not path and head in self.tables:
            if len(parts) != 2 or parts[1] not in [*self.tables[head].key, *self.tables[head].columns]:
                cols = [*self.tables[head].key, *self.tables[head].columns]
                hint = _suggest(parts[1], cols)
                raise _err("unknown_column",
                           f"table '{head}' has no column '{'.'.join(parts[1:])}'"
                           + (f"; did you mean '{hint}'?" if hint else f"; its columns are {', '.join(cols)}"),
                           f"表“{head}”没有列“{'.'.join(parts[1:])}”" + (f"；是否应为“{hint}”？" if hint else ""),
                           node)
            return Ref("column", head, column=parts[1])
        if head in self.model.entities:
            if self.model.is_descendant(head, scope):
                raise self._child_error(node, head, scope)
            up = self.model.parent_path(scope, head)
            if up:
                return self.resolve(node, parts[1:], head, [*path, *up])
        raise self._unknown(node, head, scope, path, len(node.parts) - len(parts))

    def _link_error(self, node: ast.Name, ref: Ref) -> FormulaError:
        """A link names a row's parent; a formula reads the parent's values through it."""
        target = self.model.entities[self.model.entities[ref.entity].links[ref.name]]
        field = next((v for v in target.variables if v not in target.links), "<field>")
        example = f"{node.dotted}.{field}"
        return _err("link_as_value",
                    f"'{node.dotted}' is a link: it names the {target.name} this {ref.entity} belongs to, "
                    f"not a value; read a value of that {target.name} through it, e.g. {example}",
                    f"“{node.dotted}”是关联字段：它指明本{ref.entity}所属的{target.name}，不是一个值；"
                    f"请通过它读取该{target.name}的值，例如 {example}", node)

    def _outside_table(self, node: ast.Name) -> FormulaError:
        table = self.table_scope
        return _err("table_scope",
                    f"a total over table '{table}' reads only its own columns and fixed values; "
                    f"'{node.dotted}' is not a column of {table}",
                    f"对表“{table}”的汇总只能读取该表自身的列和固定值；“{node.dotted}”不是表 {table} 的列", node)

    def _child_error(self, node: ast.Name, child: str, scope: str) -> FormulaError:
        return _err("needs_aggregation",
                    f"'{node.dotted}' has one value per {child}, but this formula is on {scope}; "
                    f"aggregate it, e.g. sum({node.dotted})",
                    f"“{node.dotted}”是每条{child}上的值，而本公式在{scope}上；请先汇总，例如 sum({node.dotted})",
                    node)

    def _unknown(self, node: ast.Name, head: str, scope: str, path: list[str], index: int = 0) -> FormulaError:
        entity = self.model.entities[scope]
        options = set(entity.variables) | set(entity.links)
        if not path:
            options |= set(self.parameters) | set(self.tables) | set(self.model.entities)
        hint = _suggest(head, options)
        if not hint and not path:
            parent = next((link for link, target in entity.links.items()
                           if head in self.model.entities[target].variables), None)
            hint = f"{parent}.{head}" if parent else ""
        where = f"on {scope}" if not path else f"on {scope} (reached through {'.'.join(path)})"
        offset = node.pos + sum(len(p) + 1 for p in node.parts[:index])
        return FormulaError("unknown_name",
                    f"unknown name '{head}' {where}" + (f"; did you mean '{hint}'?" if hint else
                                                        "; declare it under variables or parameters"),
                    f"未知名称“{head}”" + (f"；是否应为“{hint}”？" if hint else "；请在 variables 或 parameters 中声明"),
                    offset)

    def _check_category(self, name_side: T.Expr, literal_side: T.Expr) -> None:
        """`setting == "inpatent"`: a text outside a field's declared values is a typo."""
        if not (isinstance(name_side, T.Var) and isinstance(literal_side, T.Literal)
                and literal_side.kind == "string"):
            return
        values = self.model.entities[name_side.owner].variables[name_side.name].values
        if values and literal_side.value not in values:
            hint = _suggest(literal_side.value, values)
            raise _err("unknown_category",
                       f"'{literal_side.value}' is not one of the values of {name_side.name} ({', '.join(values)})"
                       + (f"; did you mean '{hint}'?" if hint else ""),
                       f"“{literal_side.value}”不是 {name_side.name} 的取值之一" + (f"；是否应为“{hint}”？" if hint else ""),
                       literal_side)

    # ---- calls -------------------------------------------------------------------------
    def _call(self, node: ast.Call, scope: str, in_before: bool) -> T.Expr:
        name = node.function
        function = self.functions.get(name)
        if function is None:
            hint = _suggest(name, sorted(self.functions))
            raise _err("unknown_function", f"unknown function '{name}'" + (f"; did you mean '{hint}'?" if hint else ""),
                       f"未知函数“{name}”" + (f"；是否应为“{hint}”？" if hint else ""), node)
        if node.where is not None and not function.takes_where:
            raise _err("where_not_allowed", f"'where' filters only aggregations (sum, count, …), not {name}",
                       f"“where”只能用于汇总函数（sum、count 等），不能用于 {name}", node.where)
        return function.check(self, node, scope, in_before)

    def arity(self, node: ast.Call, low: int, high: int, keywords: tuple[str, ...] = ()) -> None:
        """The call has `low` to `high` positional arguments and only the given named ones."""
        n = len(node.args)
        if not low <= n <= high:
            want = str(low) if low == high else f"{low} to {high}"
            want_zh = str(low) if low == high else f"{low} 至 {high}"
            raise _err("arity", f"{node.function}() takes {want} arguments, not {n}",
                       f"{node.function}() 需要 {want_zh} 个参数，而不是 {n} 个", node)
        for key, value in node.keywords:
            if key not in keywords:
                raise _err("unknown_keyword", f"{node.function}() has no named argument '{key}'"
                           + (f" (it takes {', '.join(keywords)})" if keywords else ""),
                           f"{node.function}() 没有命名参数“{key}”", value)

    def typed_arg(self, node: ast.Node, scope: str, in_before: bool, want: str, where: str) -> T.Expr:
        """An argument checked to be of type `want` (`where` names the function in the message)."""
        out = self.expr(node, scope, in_before)
        self.want(out.type, want, node, where)
        return out

    def keywords(self, node: ast.Call, scope: str, in_before: bool) -> tuple[tuple[str, T.Expr], ...]:
        return tuple((key, self.expr(value, scope, in_before)) for key, value in node.keywords)

    def check_digits(self, node: ast.Call) -> None:
        """round(x, d): d is written in the formula as a whole number from 0 to MAX_DIGITS, once.
        Anything else could not be computed (10**400 overflows, digits from a column differ by row)."""
        given = [*node.args[1:], *(v for k, v in node.keywords if k == "digits")]
        if len(given) > 1:
            raise _err("round_digits", "round() takes the number of digits once: round(x, 2) or round(x, digits=2)",
                       "round() 的小数位数只能给一次：round(x, 2) 或 round(x, digits=2)", given[1])
        if not given:
            return
        digits = given[0]
        value = digits.value if isinstance(digits, ast.Literal) and digits.kind == "number" else None
        if isinstance(digits, ast.Unary) and digits.op == "-" and isinstance(digits.operand, ast.Literal):
            value = -1.0  # a negative count of digits
        if value is None or not float(value).is_integer() or not 0 <= float(value) <= MAX_DIGITS:
            raise _err("round_digits",
                       f"round() needs its digits as a whole number from 0 to {MAX_DIGITS} written in the formula, "
                       "e.g. round(x, 2); to round to hundreds write round(x / 100) * 100",
                       f"round() 的小数位数必须是公式中写明的 0 至 {MAX_DIGITS} 的整数，例如 round(x, 2)；"
                       "取整到百位请写 round(x / 100) * 100", digits)

    def child_heads(self, nodes: list[ast.Node], scope: str) -> set[str]:
        """The child entities of `scope` whose values these expressions name (claim.total_cost)."""
        found: set[str] = set()
        for root in nodes:
            for sub in ast.walk(root):
                if isinstance(sub, ast.Name) and sub.parts[0] in self.model.entities \
                        and self.model.is_descendant(sub.parts[0], scope):
                    found.add(sub.parts[0])
        return found

    def via_path(self, via: ast.Node, child: str, scope: str) -> list[str]:
        """`sum(claim.total_cost, via=signed_institution)`: the child rows reach `scope` through this
        link (written `link` or `child.link`) and, past it, the shortest link path."""
        parts = list(via.parts) if isinstance(via, ast.Name) else []
        if len(parts) == 2 and parts[0] == child:
            parts = parts[1:]
        links = self.model.entities[child].links
        if len(parts) == 1 and parts[0] in links:
            target = links[parts[0]]
            rest = [] if target == scope else self.model.parent_path(target, scope)
            if rest is not None:
                return [parts[0], *rest]
        choices = [link for link, target in links.items()
                   if target == scope or self.model.parent_path(target, scope) is not None]
        text = ast.to_text(via)
        raise _err("via_link",
                   f"via= names the link of {child} that leads to {scope}, not '{text}'; "
                   f"the links that do: {', '.join(choices) or 'none'}",
                   f"via= 应为 {child} 指向 {scope} 的关联字段，而不是“{text}”；可用：{'、'.join(choices) or '无'}",
                   via)

    def check_edges(self, edges: ast.ListExpr, rates: ast.ListExpr) -> None:
        """Band edges written as literals: one fewer than the rates, increasing."""
        if len(rates.items) != len(edges.items) + 1:
            raise _err("band_rates", f"{len(edges.items)} band edges make {len(edges.items) + 1} bands, "
                       f"but {len(rates.items)} rates are given",
                       f"{len(edges.items)} 个分段点构成 {len(edges.items) + 1} 段，但给出了 {len(rates.items)} 个比例", rates)
        values = [i.value for i in edges.items if isinstance(i, ast.Literal)]
        if len(values) == len(edges.items):
            for prev, item in zip(edges.items, edges.items[1:], strict=False):
                if not item.value > prev.value:
                    raise _err("band_edges", "band edges must increase from left to right",
                               "分段点必须从左到右递增", item)

    # ---- helpers -----------------------------------------------------------------------
    def want(self, got: str, want: str, node: ast.Node, where: str) -> None:
        """A type error at `node` unless `got` fits `want`."""
        if not _compatible(want, got):
            raise _err("type", f"'{where}' needs a {_type_name(want)} here, but this is a {_type_name(got)}",
                       f"“{where}”此处需要{_type_zh(want)}，但这里是{_type_zh(got)}", node)


def _same_money(items) -> bool | None:
    flags = {item.money for item in items}
    return flags.pop() if len(flags) == 1 else None


def _money_beside_pending(then: T.Expr, other: T.Expr) -> bool | None:
    """A branch that is pending() has no value, so the other branch says whether it is money."""
    pending = [isinstance(b, T.Call) and b.function == "pending" for b in (then, other)]
    return other.money if pending[0] else then.money if pending[1] else None


def _arithmetic_money(op: str, left: bool | None, right: bool | None) -> bool | None:
    """Money or not, where it can be told: yuan ± yuan, yuan × ratio, yuan ÷ count are money."""
    if op in ("+", "-"):
        return True if True in (left, right) else (False if left is right is False else None)
    if op == "*":
        return True if {left, right} == {True, False} else (False if left is right is False else None)
    if left is True and right is False:
        return True
    return False if right is True or left is right is False else None


def _compatible(want: str, got: str) -> bool:
    return want == got or {want, got} <= {"list:number"}


_NAMES = {"number": ("number", "数字"), "bool": ("yes/no value", "是/否值"), "string": ("text", "文本"),
          "date": ("date", "日期"), "map": ("parameter by category", "分类参数"),
          "bands": ("band table", "分段表"), "list:number": ("list of numbers", "数字列表"),
          "list:string": ("list of texts", "文本列表"), "column:number": ("table column of numbers", "数字表列"),
          "column:string": ("table column of texts", "文本表列"),
          "codes": ("list of codes", "编码列表")}


def _type_name(typ: str) -> str:
    return _NAMES.get(typ, (typ, typ))[0]


def _type_zh(typ: str) -> str:
    return _NAMES.get(typ, (typ, typ))[1]
