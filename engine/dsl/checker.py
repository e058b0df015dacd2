"""Static checks of a formula: names, entity levels, types; collects dependencies (公式检查).

The checker annotates the syntax tree (by node identity) with what each name refers to and
what each call does, so that the compiler never has to guess.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field

from engine.dsl import ast
from engine.dsl.signatures import AGGREGATES, CHAIN_BEFORE, CHAIN_FUNCTIONS, ELEMENTWISE, KNOWN_FUNCTIONS
from engine.errors import FormulaError
from engine.model.model import Model
from engine.model.spec import Variable
from engine.policy.spec import Parameter, Table

NUMERIC = "number"
MAX_DIGITS = 10  # round(x, d): float64 money keeps about 15 significant digits


@dataclass
class Ref:
    """What a Name refers to."""

    kind: str  # var | param | table | column | rows
    name: str
    entity: str | None = None
    path: list[str] = field(default_factory=list)  # links from the scope entity up to `entity`
    column: str | None = None


@dataclass
class CallInfo:
    """How a Call is evaluated: aggregation child and path, allocation group path."""

    kind: str  # elementwise | aggregate | chain | lookup | bands | step | allocate
    child: str | None = None
    path: list[str] = field(default_factory=list)


@dataclass
class Checked:
    """A checked formula: its type, annotations and what it depends on."""

    node: ast.Node
    type: str
    notes: dict[int, Ref | CallInfo]
    deps: set[tuple[str, str]]
    params: set[str]
    tables: set[str]
    recurrent: bool


def _suggest(name: str, options) -> str:
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return close[0] if close else ""


def _err(code: str, en: str, zh: str, node: ast.Node) -> FormulaError:
    return FormulaError(code, en, zh, node.pos)


class Checker:
    """Checks formulas of one policy against its model, parameters and tables."""

    def __init__(self, model: Model, parameters: dict[str, Parameter], tables: dict[str, Table]):
        self.model, self.parameters, self.tables = model, parameters, tables

    # ---- entry point -------------------------------------------------------------------
    def check(self, variable: Variable) -> Checked:
        self.variable = variable
        self.notes: dict[int, Ref | CallInfo] = {}
        self.deps: set[tuple[str, str]] = set()
        self.params: set[str] = set()
        self.tables_used: set[str] = set()
        self.recurrent = False
        typ = self.expr(variable.node, variable.entity, in_before=False)
        want = variable.type
        if not _compatible(want, typ):
            raise FormulaError("wrong_result_type",
                               f"the formula gives a {_type_name(typ)} but '{variable.name}' is declared as a "
                               f"{_type_name(want)} (type: {want})",
                               f"公式结果是{_type_zh(typ)}，但“{variable.name}”声明为{_type_zh(want)}（type: {want}）", 0)
        return Checked(variable.node, typ, self.notes, self.deps, self.params, self.tables_used,
                       self.recurrent)

    # ---- expressions -------------------------------------------------------------------
    def expr(self, node: ast.Node, scope: str, in_before: bool) -> str:
        method = getattr(self, "_" + type(node).__name__.lower())
        return method(node, scope, in_before)

    def _literal(self, node: ast.Literal, scope: str, in_before: bool) -> str:
        # a number written beyond float range (1e400) would silently become infinity
        if node.kind == "number" and not math.isfinite(float(node.value)):
            raise _err("number_too_large", "this number is too large to compute with (the largest is about 1.8e308)",
                       "该数字过大，无法计算（上限约为 1.8e308）", node)
        return node.kind

    def _listexpr(self, node: ast.ListExpr, scope: str, in_before: bool) -> str:
        types = {self.expr(item, scope, in_before) for item in node.items}
        if len(types) > 1:
            raise _err("mixed_list", "a list mixes different kinds of values",
                       "列表中混有不同类型的值", node)
        return "list:" + (types.pop() if types else NUMERIC)

    def _unary(self, node: ast.Unary, scope: str, in_before: bool) -> str:
        typ = self.expr(node.operand, scope, in_before)
        if node.op == "not":
            self._want(typ, "bool", node.operand, "not")
            return "bool"
        self._want(typ, NUMERIC, node.operand, "-")
        return NUMERIC

    def _binary(self, node: ast.Binary, scope: str, in_before: bool) -> str:
        left = self.expr(node.left, scope, in_before)
        right = self.expr(node.right, scope, in_before)
        op = node.op
        if op in ("and", "or"):
            self._want(left, "bool", node.left, op)
            self._want(right, "bool", node.right, op)
            return "bool"
        if op in ("+", "-", "*", "/"):
            if op == "-" and left == right == "date":
                return NUMERIC
            for side, typ in ((node.left, left), (node.right, right)):
                if typ == "bool":
                    raise _err("bool_arithmetic",
                               f"a yes/no value cannot be used with '{op}'; write (if CONDITION then 1 else 0)",
                               f"是/否值不能参与“{op}”运算；请写 (if 条件 then 1 else 0)", side)
                self._want(typ, NUMERIC, side, op)
            return NUMERIC
        if left != right and not (_compatible(left, right)):
            raise _err("compare_types",
                       f"'{op}' compares a {_type_name(left)} with a {_type_name(right)}",
                       f"“{op}”把{_type_zh(left)}与{_type_zh(right)}相比较", node)
        if op not in ("==", "!=") and left not in (NUMERIC, "date"):
            raise _err("order_types", f"'{op}' needs numbers or dates, not a {_type_name(left)}",
                       f"“{op}”只能比较数字或日期，不能比较{_type_zh(left)}", node)
        self._check_category(node.left, node.right, scope)
        self._check_category(node.right, node.left, scope)
        return "bool"

    def _inlist(self, node: ast.InList, scope: str, in_before: bool) -> str:
        value = self.expr(node.value, scope, in_before)
        items = self.expr(node.options, scope, in_before)
        if items.split(":", 1)[1] != value and node.options.items:
            raise _err("compare_types", f"'in' looks for a {_type_name(value)} in a list of another kind",
                       f"“in”在另一类型的列表中查找{_type_zh(value)}", node)
        for item in node.options.items:
            self._check_category(node.value, item, scope)
        return "bool"

    def _ifelse(self, node: ast.IfElse, scope: str, in_before: bool) -> str:
        self._want(self.expr(node.condition, scope, in_before), "bool", node.condition, "if")
        then = self.expr(node.then, scope, in_before)
        other = self.expr(node.otherwise, scope, in_before)
        if not _compatible(then, other):
            raise _err("branch_types",
                       f"'then' gives a {_type_name(then)} but 'else' gives a {_type_name(other)}",
                       f"“then”分支是{_type_zh(then)}，而“else”分支是{_type_zh(other)}", node.otherwise)
        return then

    def _index(self, node: ast.Index, scope: str, in_before: bool) -> str:
        if not isinstance(node.target, ast.Name):
            raise _err("bad_index", "only a parameter by category can be indexed, as in rate[level]",
                       "只能对分类参数取值，例如 rate[level]", node)
        self.expr(node.target, scope, in_before)
        ref = self.notes[id(node.target)]
        if not (isinstance(ref, Ref) and ref.kind == "param" and self.parameters[ref.name].kind == "map"):
            raise _err("bad_index", f"'{node.target.dotted}' is not a parameter by category; it cannot take [ ]",
                       f"“{node.target.dotted}”不是分类参数，不能用 [ ] 取值", node)
        key = self.expr(node.key, scope, in_before)
        if key not in (NUMERIC, "string", "bool"):
            raise _err("bad_index", "a category key must be a number, text or yes/no value",
                       "分类键必须是数字、文本或是/否值", node.key)
        return self.parameters[ref.name].value_type

    # ---- names -------------------------------------------------------------------------
    def _name(self, node: ast.Name, scope: str, in_before: bool) -> str:
        ref = self.resolve(node, list(node.parts), scope, [])
        self.notes[id(node)] = ref
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
            return var.type
        if ref.kind == "param":
            self.params.add(ref.name)
            param = self.parameters[ref.name]
            return param.kind if param.kind in ("map", "bands") else param.kind
        if ref.kind == "table":
            raise _err("table_needs_column",
                       f"'{ref.name}' is a table; name one of its columns, e.g. {ref.name}.{next(iter(self.tables[ref.name].columns), 'value')}",
                       f"“{ref.name}”是一张表；请指明列名", node)
        if ref.kind == "column":
            self.tables_used.add(ref.name)
            return "column:" + self.tables[ref.name].column_type(ref.column)
        return NUMERIC  # rows

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
            if len(parts) != 2 or parts[1] not in self.tables[head].columns:
                cols = list(self.tables[head].columns)
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

    def _check_category(self, name_side: ast.Node, literal_side: ast.Node, scope: str) -> None:
        """`setting == "inpatent"`: a text outside a field's declared values is a typo."""
        if not (isinstance(name_side, ast.Name) and isinstance(literal_side, ast.Literal)
                and literal_side.kind == "string"):
            return
        ref = self.notes.get(id(name_side))
        if not (isinstance(ref, Ref) and ref.kind == "var"):
            return
        values = self.model.entities[ref.entity].variables[ref.name].values
        if values and literal_side.value not in values:
            hint = _suggest(literal_side.value, values)
            raise _err("unknown_category",
                       f"'{literal_side.value}' is not one of the values of {ref.name} ({', '.join(values)})"
                       + (f"; did you mean '{hint}'?" if hint else ""),
                       f"“{literal_side.value}”不是 {ref.name} 的取值之一" + (f"；是否应为“{hint}”？" if hint else ""),
                       literal_side)

    # ---- calls -------------------------------------------------------------------------
    def _call(self, node: ast.Call, scope: str, in_before: bool) -> str:
        name = node.function
        if name not in KNOWN_FUNCTIONS:
            hint = _suggest(name, KNOWN_FUNCTIONS)
            raise _err("unknown_function", f"unknown function '{name}'" + (f"; did you mean '{hint}'?" if hint else ""),
                       f"未知函数“{name}”" + (f"；是否应为“{hint}”？" if hint else ""), node)
        if node.where is not None and name not in AGGREGATES:
            raise _err("where_not_allowed", f"'where' filters only aggregations (sum, count, …), not {name}",
                       f"“where”只能用于汇总函数（sum、count 等），不能用于 {name}", node.where)
        if name in ("min", "max") and len(node.args) >= 2:
            if node.where is not None:  # the smaller of several values: there is nothing to filter
                raise _err("where_not_allowed",
                           f"'where' filters the rows of an aggregation such as {name}(claim.total_cost where …); "
                           f"{name}() of two or more values cannot take it",
                           f"“where”只能用于汇总，例如 {name}(claim.total_cost where …)；多个值的 {name}() 不能使用",
                           node.where)
            return self._elementwise(node, scope, in_before)
        if name in AGGREGATES:
            return self._aggregate(node, scope, in_before)
        if name in CHAIN_FUNCTIONS:
            return self._chain(node, scope, in_before)
        handler = getattr(self, "_fn_" + name, None)
        if handler:
            return handler(node, scope, in_before)
        return self._elementwise(node, scope, in_before)

    def _arity(self, node: ast.Call, low: int, high: int, keywords: tuple[str, ...] = ()) -> None:
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

    def _elementwise(self, node: ast.Call, scope: str, in_before: bool) -> str:
        low, high, arg_type, result = ELEMENTWISE[node.function]
        self._arity(node, low, high, ("digits",) if node.function == "round" else ())
        if node.function == "round":
            self._check_digits(node)
        for arg in [*node.args, *(v for _, v in node.keywords)]:
            self._want(self.expr(arg, scope, in_before), arg_type, arg, node.function)
        self.notes[id(node)] = CallInfo("elementwise")
        return result

    def _check_digits(self, node: ast.Call) -> None:
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

    def _aggregate(self, node: ast.Call, scope: str, in_before: bool) -> str:
        name = node.function
        self._arity(node, 1, 1)
        children = self._child_heads([node.args[0]] + ([node.where] if node.where is not None else []), scope)
        if len(children) != 1:
            en = (f"{name}() needs the values of one child entity of {scope}, e.g. {name}(claim.total_cost)"
                  if not children else f"{name}() mixes entities {', '.join(sorted(children))}; use one")
            raise _err("aggregate_needs_child", en,
                       f"{name}() 需要汇总{scope}下属的一个实体的值，例如 {name}(claim.total_cost)", node)
        child = children.pop()
        typ = self.expr(node.args[0], child, in_before=False)
        if node.where is not None:
            self._want(self.expr(node.where, child, in_before=False), "bool", node.where, "where")
        if name in ("any", "all"):
            self._want(typ, "bool", node.args[0], name)
        elif name != "count":
            self._want(typ, NUMERIC, node.args[0], name)
        self.notes[id(node)] = CallInfo("aggregate", child, self.model.parent_path(child, scope))
        return "bool" if name in ("any", "all") else NUMERIC

    def _child_heads(self, nodes: list[ast.Node], scope: str) -> set[str]:
        found: set[str] = set()
        for root in nodes:
            for sub in ast.walk(root):
                if isinstance(sub, ast.Name) and sub.parts[0] in self.model.entities \
                        and self.model.is_descendant(sub.parts[0], scope):
                    found.add(sub.parts[0])
        return found

    def _chain(self, node: ast.Call, scope: str, in_before: bool) -> str:
        entity = self.model.entities[scope]
        if entity.chain is None:
            chained = [e.name for e in self.model.entities.values() if e.chain]
            raise _err("no_chain", f"{node.function}() works on entities that form chains ({', '.join(chained)}), not {scope}",
                       f"{node.function}() 只能用于成链的实体（{', '.join(chained)}），不能用于 {scope}", node)
        if node.function == "chain_position":
            self._arity(node, 0, 0)
        else:
            self._arity(node, 1, 1)
            before = in_before or node.function in CHAIN_BEFORE
            self._want(self.expr(node.args[0], scope, before), NUMERIC, node.args[0], node.function)
        self.notes[id(node)] = CallInfo("chain")
        return NUMERIC

    def _fn_lookup(self, node: ast.Call, scope: str, in_before: bool) -> str:
        if len(node.args) < 2:
            raise _err("arity", "lookup() takes a table column and one key per key column, e.g. lookup(drg.weight, drg_group)",
                       "lookup() 需要表列和每个键列的值，例如 lookup(drg.weight, drg_group)", node)
        self._arity(node, 2, 9, ("default",))
        target = node.args[0]
        if not isinstance(target, ast.Name):
            raise _err("lookup_target", "the first argument of lookup() must be table.column",
                       "lookup() 的第一个参数必须是 表名.列名", target)
        typ = self.expr(target, scope, in_before)
        if not typ.startswith("column:"):
            raise _err("lookup_target", f"'{target.dotted}' is not a table column (write table.column)",
                       f"“{target.dotted}”不是表的列（应写作 表名.列名）", target)
        table = self.tables[self.notes[id(target)].name]
        if len(node.args) - 1 != len(table.key):
            raise _err("lookup_keys", f"table '{table.name}' is keyed by {', '.join(table.key)}: give {len(table.key)} key(s)",
                       f"表“{table.name}”的键为 {', '.join(table.key)}：需要 {len(table.key)} 个键", node)
        for arg in node.args[1:]:
            self.expr(arg, scope, in_before)
        result = typ.split(":", 1)[1]
        default = node.keyword("default")
        if default is not None:
            self._want(self.expr(default, scope, in_before), result, default, "default")
        self.notes[id(node)] = CallInfo("lookup")
        return result

    def _fn_bands(self, node: ast.Call, scope: str, in_before: bool) -> str:
        self._arity(node, 2, 3, ("base",))
        self._want(self.expr(node.args[0], scope, in_before), NUMERIC, node.args[0], "bands")
        table = node.args[1]
        typ = self.expr(table, scope, in_before)
        if len(node.args) == 2:
            if typ != "bands":
                raise _err("bands_table", "bands(amount, TABLE) needs a band-table parameter, or give edges and rates: "
                           "bands(amount, [edges], [rates])",
                           "bands(金额, 分段表) 需要分段表参数，或写作 bands(金额, [分段点], [比例])", table)
        else:
            self._want(typ, "list:number", table, "bands edges")
            rates = node.args[2]
            self._want(self.expr(rates, scope, in_before), "list:number", rates, "bands rates")
            if isinstance(table, ast.ListExpr) and isinstance(rates, ast.ListExpr):
                self._check_edges(table, rates)
        base = node.keyword("base")
        if base is not None:
            self._want(self.expr(base, scope, in_before), NUMERIC, base, "base")
        self.notes[id(node)] = CallInfo("bands")
        return NUMERIC

    def _check_edges(self, edges: ast.ListExpr, rates: ast.ListExpr) -> None:
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

    def _fn_step(self, node: ast.Call, scope: str, in_before: bool) -> str:
        self._arity(node, 3, 3, ("closed",))
        self._want(self.expr(node.args[0], scope, in_before), NUMERIC, node.args[0], "step")
        self._want(self.expr(node.args[1], scope, in_before), "list:number", node.args[1], "step edges")
        values = self.expr(node.args[2], scope, in_before)
        if not values.startswith("list:"):
            raise _err("step_values", "step() needs a list of values, one more than the edges",
                       "step() 需要一个取值列表，比分段点多一个", node.args[2])
        edges, vals = node.args[1], node.args[2]
        if isinstance(edges, ast.ListExpr) and isinstance(vals, ast.ListExpr):
            self._check_edges(edges, vals)
        closed = node.keyword("closed")
        if closed is not None and not (isinstance(closed, ast.Literal) and closed.value in ("left", "right")):
            raise _err("step_closed", 'closed= must be "left" (edge belongs to the upper band) or "right"',
                       'closed= 只能是 "left"（分段点属于上一段）或 "right"', closed)
        self.notes[id(node)] = CallInfo("step")
        return values.split(":", 1)[1]

    def _fn_allocate(self, node: ast.Call, scope: str, in_before: bool) -> str:
        self._arity(node, 2, 2)
        total, weight = node.args
        self._want(self.expr(total, scope, in_before), NUMERIC, total, "allocate")
        self._want(self.expr(weight, scope, in_before), NUMERIC, weight, "allocate")
        paths = {tuple(self.notes[id(n)].path) for n in ast.walk(total)
                 if isinstance(n, ast.Name) and isinstance(self.notes.get(id(n)), Ref)
                 and self.notes[id(n)].kind == "var"}
        if any(not p for p in paths):
            raise _err("allocate_total",
                       "allocate(total, weight): the total must be a value of a parent entity "
                       "(e.g. fund.points_budget) or a parameter, not a value of each row",
                       "allocate(总额, 权重)：总额必须是上级实体的值（如 fund.points_budget）或参数，不能是本级每行的值",
                       total)
        group = min(paths, key=len) if paths else ()
        self.notes[id(node)] = CallInfo("allocate", path=list(group))
        return NUMERIC

    # ---- helpers -----------------------------------------------------------------------
    def _want(self, got: str, want: str, node: ast.Node, where: str) -> None:
        if not _compatible(want, got):
            raise _err("type", f"'{where}' needs a {_type_name(want)} here, but this is a {_type_name(got)}",
                       f"“{where}”此处需要{_type_zh(want)}，但这里是{_type_zh(got)}", node)


def _compatible(want: str, got: str) -> bool:
    return want == got or {want, got} <= {"list:number"}


_NAMES = {"number": ("number", "数字"), "bool": ("yes/no value", "是/否值"), "string": ("text", "文本"),
          "date": ("date", "日期"), "map": ("parameter by category", "分类参数"),
          "bands": ("band table", "分段表"), "list:number": ("list of numbers", "数字列表"),
          "list:string": ("list of texts", "文本列表")}


def _type_name(typ: str) -> str:
    return _NAMES.get(typ, (typ, typ))[0]


def _type_zh(typ: str) -> str:
    return _NAMES.get(typ, (typ, typ))[1]
