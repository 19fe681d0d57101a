"""Code shape: no package function longer than 80 lines (compiled kernels excepted)."""

import ast
from pathlib import Path

import mottscape

MAX_LINES = 80
PACKAGE = Path(mottscape.__file__).parent


def _is_kernel(node: ast.FunctionDef) -> bool:
    """Numba kernels are hand-fused for memory traffic: their length is a performance choice."""
    for dec in node.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in ("njit", "jit", "vectorize", "guvectorize"):
            return True
    return False


def test_no_function_longer_than_80_lines():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not _is_kernel(node):
                body = node.body
                # the docstring is documentation, not code
                start = body[1].lineno if len(body) > 1 and isinstance(body[0], ast.Expr) \
                    and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    else body[0].lineno
                n = node.end_lineno - start + 1
                if n > MAX_LINES:
                    long.append(f"{path.name}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "functions longer than 80 lines: " + ", ".join(long)
