"""The computational graph behind a tensor, drawn: `draw_graph(loss)` gives Graphviz DOT text.

Each op that autograd recorded is a box (its Function, the shape and dtype of what it made);
each leaf that wants a gradient is an ellipse, named from a module's parameters when given
(`params=model`), else "input" with its shape; arrows follow the data forward, from inputs to
the op that used them. The graph is the one backward() will walk, so draw it before calling
backward() (which frees it). With `path`, the DOT text is also written, or rendered to SVG or
PNG by Graphviz's `dot` program when the name ends in .svg or .png.

    loss = (model(x) - y).pow(2).mean()
    print(draw_graph(loss, params=model))     # paste into any Graphviz viewer
    draw_graph(loss, params=model, path="graph.svg")   # needs: apt-get install graphviz
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from minigrad.autograd import Context
from minigrad.serialization import atomic_write_text
from minigrad.tensor import Tensor


def _shape(shape) -> str:
    return str(tuple(int(n) for n in shape))


def _quote(text: str) -> str:
    """A DOT string: quotes and backslashes escaped, newlines as DOT's \\n."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n") + '"'


def draw_graph(tensor: Tensor, params=None, path=None) -> str:
    """DOT text of the graph that produced `tensor` (see the module's docstring). `params`: a
    Module (its named_parameters) or a dict of name -> Tensor, to name the leaves."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"draw_graph: expected a Tensor, got {type(tensor).__name__}")
    if params is not None and hasattr(params, "named_parameters"):
        params = dict(params.named_parameters())
    names = {id(t): name for name, t in (params or {}).items()}
    lines = ["digraph minigrad {", "  rankdir=LR;",
             '  node [fontname="Helvetica", fontsize=11];']
    ids: dict[int, str] = {}

    def node(vertex) -> str:
        key = id(vertex)
        if key in ids:
            return ids[key]
        ids[key] = name = f"n{len(ids)}"
        if isinstance(vertex, Context):
            if vertex._released:
                raise RuntimeError("draw_graph: the graph was freed by backward(); draw it "
                                   "before calling backward (or use retain_graph=True)")
            label = (f"{vertex.function.__name__}\n{_shape(vertex.output_shape)} "
                     f"{vertex.output_dtype}")
            lines.append(f"  {name} [shape=box, style=filled, fillcolor=lightblue, "
                         f"label={_quote(label)}];")
            for parent in vertex.parents:
                if parent is not None:
                    lines.append(f"  {node(parent)} -> {name};")
        else:  # a leaf that wants a gradient
            title = names.get(key, "input")
            label = f"{title}\n{_shape(vertex.shape)} {vertex.dtype}"
            fill = "palegreen" if key in names else "lightyellow"
            lines.append(f"  {name} [shape=ellipse, style=filled, fillcolor={fill}, "
                         f"label={_quote(label)}];")
        return name

    output = f"n{len(ids)}_output"
    if tensor.grad_fn is not None:
        source = node(tensor.grad_fn)
    elif tensor.requires_grad:
        source = node(tensor)
    else:
        raise ValueError("draw_graph: the tensor has no graph behind it (it does not require a "
                         "gradient); was it computed under no_grad, or from inputs that do "
                         "not require one?")
    lines.append(f"  {output} [shape=plain, label={_quote('output ' + _shape(tensor.shape))}];")
    lines.append(f"  {source} -> {output};")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    if path is not None:
        _write(text, Path(path))
    return text


def _write(text: str, path: Path) -> None:
    kind = path.suffix.lower().lstrip(".")
    if kind not in ("svg", "png"):
        atomic_write_text(path, text, "draw_graph")  # (an OS error names the path)
        return
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(f"draw_graph: rendering {path} needs Graphviz's dot program (apt-get "
                           "install graphviz, or brew install graphviz); the DOT text itself "
                           "needs nothing: give a path ending in .dot")
    result = subprocess.run([dot, f"-T{kind}", "-o", str(path)], input=text.encode(),
                            capture_output=True)
    if result.returncode:
        raise RuntimeError(f"draw_graph: dot failed on {path}: {result.stderr.decode()}")
