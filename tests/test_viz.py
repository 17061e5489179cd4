"""draw_graph: the structure of the DOT text (nodes, labels, edges), not a picture's pixels."""

from __future__ import annotations

import re
import shutil

import pytest

import minigrad as mg
import minigrad.nn as nn
from minigrad.viz import draw_graph


def parse(dot: str):
    """({node id: label}, [(from, to)]) of draw_graph's DOT text."""
    assert dot.startswith("digraph minigrad {") and dot.rstrip().endswith("}")
    nodes = dict(re.findall(r'^\s+(\w+) \[.*label="(.*?)"\];$', dot, flags=re.MULTILINE))
    edges = re.findall(r"^\s+(\w+) -> (\w+);$", dot, flags=re.MULTILINE)
    assert all(a in nodes and b in nodes for a, b in edges)
    return nodes, edges


def test_a_two_layer_network_graph_names_ops_shapes_and_parameters():
    mg.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    x = mg.randn(4, 2)
    loss = ((model(x) - mg.randn(4, 1)) ** 2).mean()
    nodes, edges = parse(draw_graph(loss, params=model))
    labels = sorted(nodes.values())
    assert labels == sorted([
        r"Mean\n() float32", r"Pow\n(4, 1) float32", r"Sub\n(4, 1) float32",
        r"Linear\n(4, 1) float32", r"Tanh\n(4, 3) float32", r"Linear\n(4, 3) float32",
        r"0.weight\n(3, 2) float32", r"0.bias\n(3,) float32", r"2.weight\n(1, 3) float32",
        r"2.bias\n(1,) float32", "output ()"])
    by_label = {label: node for node, label in nodes.items()}
    first, second = by_label[r"Linear\n(4, 3) float32"], by_label[r"Linear\n(4, 1) float32"]
    assert (by_label[r"0.weight\n(3, 2) float32"], first) in edges
    assert (by_label[r"2.bias\n(1,) float32"], second) in edges
    assert (first, by_label[r"Tanh\n(4, 3) float32"]) in edges
    assert (by_label[r"Mean\n() float32"], by_label["output ()"]) in edges
    assert len(edges) == 10  # a tree here: one edge into each node but the first leaves


def test_a_tensor_used_twice_is_one_node_with_two_edges_and_inputs_are_named_input():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = x * x + x.exp()
    nodes, edges = parse(draw_graph(y))
    leaf = [n for n, label in nodes.items() if label.startswith("input")]
    assert len(leaf) == 1 and nodes[leaf[0]] == r"input\n(2,) float32"
    assert sum(1 for a, _ in edges if a == leaf[0]) == 3  # into Mul twice, into Exp once


def test_errors_and_files(tmp_path, monkeypatch):
    w = mg.randn(3, requires_grad=True)
    loss = (w * 2).sum()
    text = draw_graph(loss, path=tmp_path / "graph.dot")
    assert (tmp_path / "graph.dot").read_text() == text
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="needs Graphviz's dot program"):
        draw_graph(loss, path=tmp_path / "graph.svg")
    monkeypatch.undo()
    loss.backward()
    with pytest.raises(RuntimeError, match="freed by backward"):
        draw_graph(loss)
    with pytest.raises(ValueError, match="no graph behind it"):
        draw_graph(mg.randn(2))


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_svg_rendering_with_graphviz(tmp_path):
    w = mg.randn(3, requires_grad=True)
    draw_graph((w * 2).sum(), path=tmp_path / "graph.svg")
    assert "<svg" in (tmp_path / "graph.svg").read_text()


def test_the_readme_shows_what_draw_graph_prints():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    shown = re.search(r"The first prints:\n\n```\n(.*?)```", readme, flags=re.DOTALL).group(1)
    w = mg.tensor([0.5, -1.0], requires_grad=True)
    b = mg.tensor(0.1, requires_grad=True)
    x = mg.tensor([1.0, 2.0])
    assert draw_graph(((x * w).sum() + b).sigmoid(), params={"w": w, "b": b}) == shown
