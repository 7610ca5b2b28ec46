"""DOT (Graphviz) export of a graph: one box per node, one ellipse per input/constant, edges for
values. ``render`` calls Graphviz's ``dot`` when it is installed.

>>> open("step.dot", "w").write(to_dot(graph))
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..errors import EmberError
from .graph import Graph


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(g: Graph, name: str = "ember") -> str:
    """The graph in Graphviz's DOT language."""
    lines = [f"digraph {_q(name)} {{", "  rankdir=TB; node [fontname=monospace, fontsize=10];"]
    made = {}
    for i, v in enumerate(g.inputs):
        made[v.id] = f"v{v.id}"
        lines.append(f"  v{v.id} [shape=ellipse, label={_q(f'in{i} %{v.id} {v.type_str}')}];")
    for k, n in enumerate(g.nodes):
        nid = f"n{k}"
        label = n.op.describe() if hasattr(n.op, "describe") else n.op.name
        style = ", style=filled, fillcolor=lightblue" if getattr(n.op, "results", None) is not None else ""
        lines.append(f"  {nid} [shape=box{style}, label={_q(label)}];")
        for a in n.vars:
            if a.id not in made:
                made[a.id] = f"v{a.id}"
                lines.append(f"  v{a.id} [shape=ellipse, style=dashed, label={_q(f'const %{a.id} {a.type_str}')}];")
            lines.append(f"  {made[a.id]} -> {nid} [label={_q(f'%{a.id}')}];")
        for v in getattr(n.op, "results", None) or [n.out]:
            made[v.id] = nid
    for j, v in enumerate(g.outputs):
        lines.append(f"  out{j} [shape=plaintext, label={_q(f'out{j} {v.type_str}')}];")
        lines.append(f"  {made.get(v.id, f'v{v.id}')} -> out{j} [label={_q(f'%{v.id}')}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(dot_source: str, path: str | Path) -> Path:
    """Write ``path``: the DOT text for ``.dot``, else Graphviz's rendering (format from the
    suffix: .svg, .png, .pdf). Raises EmberError when Graphviz is needed but not installed."""
    path = Path(path)
    if path.suffix == ".dot":
        path.write_text(dot_source)
        return path
    exe = shutil.which("dot")
    if exe is None:
        raise EmberError(f"rendering {path.name} needs Graphviz's `dot` (apt install graphviz); "
                         f"save to a .dot file instead to get the graph as text")
    subprocess.run([exe, f"-T{path.suffix.lstrip('.') or 'svg'}", "-o", str(path)],
                   input=dot_source, text=True, check=True, capture_output=True)
    return path
