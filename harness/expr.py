"""Safe boolean expressions over case parameters (`--where`, suite constraints).

Only comparisons, and/or/not, arithmetic and literals are allowed; the text is
parsed with `ast` and walked, never passed to eval. A bare name that is not a
parameter stands for itself as a string, so `precision == fp16` reads naturally.
Arithmetic takes numbers only (no string or list repetition), powers are
bounded, and so are the text's length and the depth of its tree, so no
expression can take long, much memory or the whole stack to parse or evaluate.
"""
from __future__ import annotations

import ast
import numbers
import operator
from typing import Any, Iterable

from harness.errors import UserError

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
           ast.Pow: operator.pow}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge,
            ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}


# The largest integer power evaluated, in bits of the result: far past any size or
# count, and small enough that `9**9**9` is refused at once instead of computed for hours.
MAX_POWER_BITS = 4096
# Far past any real filter ("seq_len <= 4096 and precision == fp16" is 41 characters, depth 3);
# 1,200 chained additions or 5,000 `not`s ran out of stack.
MAX_LENGTH = 1000
MAX_DEPTH = 32


class ExprError(UserError, ValueError):
    pass


class Expression:
    """A parsed expression; `names` are the parameters it reads."""

    def __init__(self, text: str, known_names: Iterable[str], words: Iterable[str] = ()):
        self.text = text
        if len(text) > MAX_LENGTH:
            raise ExprError(f"'{_start(text)}': {len(text):,} characters; an expression is at most {MAX_LENGTH:,}")
        try:
            self.tree = ast.parse(text, mode="eval").body
        except SyntaxError as err:
            raise ExprError(f"cannot parse '{text}': {err.msg}") from None
        except (RecursionError, MemoryError, ValueError):  # nested past the parser's stack; a NUL byte
            raise ExprError(f"cannot parse '{text}': nested too deeply, or not text") from None
        if _depth(self.tree) > MAX_DEPTH:
            raise ExprError(f"'{_start(text)}': nested more than {MAX_DEPTH} deep; write a flatter expression")
        self.known = set(known_names)
        self.words = set(words)  # bare words allowed as strings (e.g. fp16, naive)
        self._check(self.tree)
        self.names = {n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name) and n.id in self.known}

    def _check(self, node: ast.AST) -> None:
        allowed = (ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd, ast.BinOp,
                   ast.Compare, ast.Name, ast.Load, ast.Constant, ast.Tuple, ast.List, *_BINARY, *_COMPARE)
        for child in ast.walk(node):
            if not isinstance(child, allowed):
                raise ExprError(f"'{self.text}': {type(child).__name__} is not allowed "
                                "(use comparisons, and/or/not, arithmetic, numbers and names)")
            if isinstance(child, ast.Name) and child.id not in self.known | self.words | {"true", "false", "none"}:
                raise ExprError(f"'{self.text}': unknown name '{child.id}'; valid: {', '.join(sorted(self.known))}")

    def __call__(self, values: dict[str, Any]) -> bool:
        try:
            return bool(self._eval(self.tree, values))
        except (TypeError, ValueError, ZeroDivisionError, OverflowError) as err:
            at = ", ".join(f"{n}={values.get(n)!r}" for n in sorted(self.names))
            why = "the result is too large" if isinstance(err, OverflowError) else err
            raise ExprError(f"'{self.text}' cannot be evaluated{f' at {at}' if at else ''}: {why}") from None

    def _eval(self, node: ast.AST, values: dict[str, Any]) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in self.known:
                return values.get(node.id)
            return {"true": True, "false": False, "none": None}.get(node.id, node.id)
        if isinstance(node, (ast.Tuple, ast.List)):
            return [self._eval(e, values) for e in node.elts]
        if isinstance(node, ast.BoolOp):
            results = (self._eval(v, values) for v in node.values)
            return all(results) if isinstance(node.op, ast.And) else any(results)
        if isinstance(node, ast.UnaryOp):
            operand = self._eval(node.operand, values)
            return {ast.Not: operator.not_, ast.USub: operator.neg, ast.UAdd: operator.pos}[type(node.op)](operand)
        if isinstance(node, ast.BinOp):
            return _arithmetic(node.op, self._eval(node.left, values), self._eval(node.right, values))
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, values)
            for op, right_node in zip(node.ops, node.comparators):
                right = self._eval(right_node, values)
                try:
                    if not _COMPARE[type(op)](left, right):
                        return False
                except TypeError:
                    return False  # e.g. None < 4: the parameter does not apply to this case
                left = right
            return True
        raise ExprError(f"'{self.text}': cannot evaluate {type(node).__name__}")


def _start(text: str) -> str:
    return text if len(text) <= 40 else text[:40] + "..."


def _depth(tree: ast.AST) -> int:
    """Depth of the tree, walked without recursion."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _arithmetic(op: ast.operator, left: Any, right: Any) -> Any:
    """`left op right` on numbers; None (a parameter this case lacks) gives None."""
    if left is None or right is None:
        return None
    for operand in (left, right):
        if not isinstance(operand, numbers.Number):
            raise TypeError(f"arithmetic needs numbers, not {operand!r}")
    if isinstance(op, ast.Pow) and isinstance(left, int) and isinstance(right, int) and abs(left) > 1 \
            and abs(left).bit_length() * right > MAX_POWER_BITS:
        raise ValueError(f"{left} ** {right} is too large (over {MAX_POWER_BITS} bits)")
    return _BINARY[type(op)](left, right)
