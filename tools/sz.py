"""Size budget: code lines per folder of the ember package (no blanks, comments or docstrings;
hand-written C files counted too, without blank and comment-only lines), the number of
registered primitives and of flags. Exits non-zero past the budget.

Run: python tools/sz.py
"""
from __future__ import annotations

import ast
import io
import sys
import tokenize
from collections import Counter
from pathlib import Path

BUDGET = 20_000  # code lines in ember/; raise it on purpose, in its own commit
FILE_SIGNAL = 500  # a file past this many code lines is a signal to split it


def code_lines(path: Path) -> int:
    src = path.read_text()
    doc_lines = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant) \
                    and isinstance(first.value.value, str):
                doc_lines.update(range(first.lineno, first.end_lineno + 1))
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                            tokenize.DEDENT, tokenize.ENDMARKER):
            lines.update(r for r in range(tok.start[0], tok.end[0] + 1) if r not in doc_lines)
    return len(lines)


def c_code_lines(path: Path) -> int:
    """Lines of a C file that are neither blank nor inside or made of a comment."""
    n, in_comment = 0, False
    for line in path.read_text().splitlines():
        s = line.strip()
        if in_comment:
            in_comment = "*/" not in s
            s = s.split("*/", 1)[1].strip() if "*/" in s else ""
        if s.startswith("/*"):
            in_comment = "*/" not in s
            continue
        if s and not s.startswith("//"):
            n += 1
    return n


def main() -> int:
    root = Path(__file__).resolve().parent.parent / "ember"
    per_dir, big = Counter(), []
    for f in sorted([*root.rglob("*.py"), *root.rglob("*.c")]):
        n = code_lines(f) if f.suffix == ".py" else c_code_lines(f)
        per_dir[str(f.parent.relative_to(root.parent))] += n
        if n > FILE_SIGNAL:
            big.append((n, f.relative_to(root.parent)))
    for d, n in sorted(per_dir.items()):
        print(f"{n:7d}  {d}")
    total = sum(per_dir.values())
    sys.path.insert(0, str(root.parent))
    from ember.config import FLAGS
    from ember.ops.registry import REGISTRY
    print(f"{total:7d}  total code lines (budget {BUDGET})")
    print(f"{len(REGISTRY):7d}  registered primitives")
    print(f"{len(FLAGS):7d}  flags: {', '.join(FLAGS)}")
    for n, f in sorted(big, reverse=True):
        print(f"  note: {f} has {n} code lines (> {FILE_SIGNAL}): consider splitting it")
    return 0 if total <= BUDGET else 1


if __name__ == "__main__":
    sys.exit(main())
