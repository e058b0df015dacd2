"""Hand-written messages for syntax errors, one per kind of mistake (语法错误提示).

Each message is matched to the parser state by example: Lark replays the bad examples
below and remembers in which state each fails, so a user's error in the same state gets
the same human message. Keep the examples minimal and add one when a new state shows up.
"""

from __future__ import annotations

# code: (English message, Chinese message, bad examples)
SYNTAX_MESSAGES: dict[str, tuple[str, str, list[str]]] = {
    "missing_operand": (
        "a value is missing after the last operator or keyword",
        "运算符或关键字后面缺少数值或名称",
        ["1 +", "a *", "a -", "a /", "a ==", "a and", "a or", "not", "a <", "-",
         "if a then b else", "sum(x where)", "if a then", "if", "a + * b", "a * / b", "(a + )"],
    ),
    "missing_operator": (
        "two values stand next to each other; put an operator (+ - * / and or ...) between them",
        "两个值之间缺少运算符（如 + - * / and or）",
        ["a b", "1 2", "f(x) y", "1 a", '"x" y', "a 5%", "(a) b", "a.b c", "x in [1] a"],
    ),
    "unclosed_paren": (
        "a '(' is not closed; add the matching ')'",
        "括号“(”没有闭合，请补上“)”",
        ["(a + b", "min(a, b", "((a)", "f(a", "f(", "if a then (b else c"],
    ),
    "missing_comma": (
        "arguments of a function are separated by ','",
        "函数的参数之间要用逗号“,”分隔",
        ["min(a b)", "f(1 2)", "max(a, b c)", "min(a.b c)"],
    ),
    "in_needs_list": (
        "'in' must be followed by a list in square brackets, as in x in [\"a\", \"b\"], or by the name of "
        "a list parameter or a table column (x in codes, x in drg.drg_group)",
        "“in”后面必须是方括号列表，例如 x in [\"a\", \"b\"]，或列表参数、表列的名称（x in codes、x in drg.drg_group）",
        ["x in 1", "x not in 1", "x in (y)"],
    ),
    "unclosed_bracket": (
        "a '[' is not closed; add the matching ']'",
        "方括号“[”没有闭合，请补上“]”",
        ["[1, 2", "a[1", "[a", "x in [1"],
    ),
    "unexpected_close": (
        "there is a ')' or ']' without a matching opening bracket",
        "多了一个“)”或“]”，没有对应的左括号",
        ["a)", "a + b)", "a]"],
    ),
    "missing_then": (
        "'if' needs 'then': write if CONDITION then VALUE else VALUE",
        "“if”后面需要“then”：写作 if 条件 then 值 else 值",
        ["if a b", "if a else b"],
    ),
    "missing_else": (
        "'if … then …' needs an 'else' branch: every formula must give a value in all cases",
        "“if … then …”必须有“else”分支：公式在任何情况下都要有值",
        ["if a then b", "if a then b c", "(if a then b)", "min(if a then b, 1)"],
    ),
    "chained_comparison": (
        "comparisons do not chain; write 'a < b and b < c'",
        "比较不能连写；请写成 “a < b and b < c”",
        ["a < b < c", "a == b == c", "a <= b < c"],
    ),
    "single_equals": (
        "'=' is only for named arguments such as base=...; to compare, write '=='",
        "“=”只用于命名参数（如 base=...）；比较相等请写“==”",
        ["a = b", "(a = 1)"],
    ),
    "empty_argument": (
        "an argument is empty: remove the extra ',' or fill in a value",
        "参数为空：请删去多余的逗号或补上参数",
        ["min(,a)", "min(a,,b)", "f(a, ,)"],
    ),
    "bad_name_after_dot": (
        "a '.' must be followed by a name, as in institution.level",
        "“.”后面必须是名称，例如 institution.level",
        ["institution.", "a.1", "a.(b)", "a..b", "(a.)"],
    ),
    "empty_formula": (
        "the formula is empty",
        "公式为空",
        ["", "# only a note"],
    ),
    "bad_start": (
        "a formula cannot start with this; it starts with a value, a name, '(', '-', 'not' or 'if'",
        "公式不能以此开头；公式应以数值、名称、“(”、“-”、“not”或“if”开头",
        ["* a", "/ a", "+ a", "< a", "== a", ", a", ") a", "] a", ".5"],
    ),
}

UNKNOWN_CHARACTER = (
    "this character is not part of the formula language",
    "公式语言中不能使用这个字符",
)
GENERIC = ("the formula cannot be read here", "公式在此处无法解析")

TOKEN_NAMES = {
    "$END": "end of formula", "LPAR": "(", "RPAR": ")", "LSQB": "[", "RSQB": "]", "COMMA": ",", "DOT": ".", "EQUAL": "=",
    "NAME": "a name", "NUMBER": "a number", "PERCENT": "a percentage", "STRING": "a text",
    "DATE": "a date", "IF": "if", "THEN": "then", "ELSE": "else", "AND": "and", "OR": "or",
    "NOT": "not", "IN": "in", "WHERE": "where", "TRUE": "true", "FALSE": "false",
    "MINUS": "-", "PLUS": "+", "STAR": "*", "SLASH": "/", "COMP_OP": "a comparison",
}

# Words that other languages use for "no value"; formulas have none (there are defaults instead).
NULL_WORDS = ("null", "None", "NULL", "nil", "none", "Null")
NO_NULL = (
    "there is no null or None in formulas: an input a situation leaves out takes its field's default "
    "(0, false or \"\" unless the field declares `default:`); to test for a missing value compare with "
    "that default (x == 0, x == \"\"), and to use another value when it is missing declare `default:`",
    "公式中没有 null 或 None：情形中未提供的输入取其字段的默认值（未声明 `default:` 时为 0、false 或 \"\"）；"
    "判断缺失请与该默认值比较（如 x == 0、x == \"\"），缺失时需用其他值请在字段上声明 `default:`",
)

# Functions whose arguments may be lists written in place: edges, rates, values.
LIST_ARGUMENTS = ("bands", "step", "starts_with")
LIST_NOT_ALLOWED = (
    "lists are not supported here: a list [...] may only follow 'in' (x in [1, 2]) or give the edges, "
    "rates or values of bands() and step(), or the prefixes of starts_with(); elsewhere a formula works "
    "on one value per row (for a value by category, use a parameter by category: rate[level])",
    "此处不支持列表：列表 [...] 只能用在“in”之后（x in [1, 2]），或作为 bands()、step() 的分段点、比率或取值、starts_with() 的前缀；"
    "其他位置公式按行计算单个值（按类别取值请用分类参数：rate[level]）",
)

# Full-width characters typed with a Chinese input method → the half-width character to type.
FULL_WIDTH: dict[str, str] = {
    "（": "(", "）": ")", "，": ",", "：": ":", "＞": ">", "＜": "<", "＝": "=", "。": ".", "．": ".",
    "［": "[", "］": "]", "【": "[", "】": "]", "＋": "+", "－": "-", "＊": "*", "／": "/", "％": "%",
    "！": "!", "“": '"', "”": '"', "‘": "'", "’": "'", "×": "*", "÷": "/", "≥": ">=", "≤": "<=",
    "≠": "!=", "、": ",",
}
# Extra advice where the half-width character alone is not yet right.
FULL_WIDTH_NOTES: dict[str, tuple[str, str]] = {
    ":": ("; formulas have no ':' — a named argument is written name=value, as in round(x, digits=2)",
          "；公式中没有冒号，命名参数写作 name=value，例如 round(x, digits=2)"),
    "=": ("; to compare, write '=='", "；比较相等请写“==”"),
    ".": (" (a decimal point, or a dot between names as in institution.level)",
          "（小数点，或名称之间的点，如 institution.level）"),
}


def full_width_message(ch: str) -> tuple[str, str]:
    """English and Chinese advice for one full-width character."""
    half = FULL_WIDTH[ch]
    note_en, note_zh = FULL_WIDTH_NOTES.get(half, ("", ""))
    return (f"'{ch}' is a full-width character (Chinese input mode): type the half-width '{half}' "
            f"instead{note_en}",
            f"“{ch}”是全角字符（中文输入法）：请改用半角“{half}”{note_zh}")
