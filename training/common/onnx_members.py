"""Merge separately exported ONNX models that share one input into one averaging graph.

onnx.compose.merge_models joins graphs in series (outputs into inputs); an ensemble needs them
side by side on one shared input, with combining nodes at the end, so this is written here.
Used by the rhythm and delineation ensembles (ECG) and the skin ensemble.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import onnx

MEMBERS_KEY = "ensemble_members"  # ONNX metadata: sha256 of each member file, comma separated


def merge_members(
    members: list[Path],
    out: Path,
    combine: Callable[[list[str]], list[onnx.NodeProto]],
    graph_name: str,
    metadata: dict[str, str] | None = None,
    input_name: str = "signal",
) -> None:
    """One ONNX graph from exported members that share the input `input_name` and output names.

    Every member's names get the prefix m<k>_ and its nodes read the shared input;
    `combine(prefixes)` returns the nodes that turn the members' outputs (prefix + output name)
    into the graph's outputs."""
    from onnx import helper

    models = [onnx.load(str(p)) for p in members]
    nodes, inits, prefixes = [], [], []
    for k, m in enumerate(models):
        prefixes.append(f"m{k}_")
        m = onnx.compose.add_prefix(m, prefixes[-1])
        for node in m.graph.node:
            node.input[:] = [input_name if i == f"m{k}_{input_name}" else i for i in node.input]
        nodes += list(m.graph.node)
        inits += list(m.graph.initializer)
    nodes += combine(prefixes)
    first = models[0].graph
    graph = helper.make_graph(nodes, graph_name, list(first.input), list(first.output), inits)
    model = helper.make_model(graph, opset_imports=list(models[0].opset_import))
    model.ir_version = models[0].ir_version
    if metadata:
        helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))


def mean_outputs(names: tuple[str, ...]) -> Callable[[list[str]], list[onnx.NodeProto]]:
    """A `combine` for merge_members: each output is the Mean of the members' same output."""
    from onnx import helper

    def means(prefixes: list[str]) -> list[onnx.NodeProto]:
        return [helper.make_node("Mean", [f"{p}{n}" for p in prefixes], [n]) for n in names]

    return means


def members_metadata(members: list[Path]) -> dict[str, str]:
    """The `metadata` for merge_members that records which files were merged."""
    return {MEMBERS_KEY: ",".join(hashlib.sha256(p.read_bytes()).hexdigest() for p in members)}


def members_of(onnx_path: Path) -> list[str]:
    """sha256 of the members of an ensemble ONNX ([] for a single model)."""
    props = {
        p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props
    }
    return [s for s in props.get(MEMBERS_KEY, "").split(",") if s]
