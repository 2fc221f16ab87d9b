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
# ONNX metadata: sha256 of earlier ensemble files whose members were merged in one by one
FLATTENED_KEY = "flattened_ensembles"


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


def _sha_list(onnx_path: Path, key: str) -> list[str]:
    props = {
        p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props
    }
    return [s for s in props.get(key, "").split(",") if s]


def members_of(onnx_path: Path) -> list[str]:
    """sha256 of the members of an ensemble ONNX ([] for a single model)."""
    return _sha_list(onnx_path, MEMBERS_KEY)


def flattened_from(onnx_path: Path) -> list[str]:
    """sha256 of the earlier ensemble files whose members this ensemble took over."""
    return _sha_list(onnx_path, FLATTENED_KEY)


def extract_member(ensemble: Path, k: int, out: Path) -> None:
    """Member k of an ensemble written by merge_members as a model of its own: the nodes that
    compute the member's outputs (m<k>_<output>) from the shared input, the m<k>_ prefix removed,
    so it gives the ensemble's output names."""
    from onnx import helper

    model = onnx.load(str(ensemble))
    prefix = f"m{k}_"
    graph = model.graph
    needed = {prefix + o.name for o in graph.output}
    nodes = []
    for node in reversed(graph.node):  # nodes are in topological order: walk back from outputs
        if any(o in needed for o in node.output):
            nodes.insert(0, node)
            needed.update(node.input)
    for node in nodes:
        node.input[:] = [n.removeprefix(prefix) for n in node.input]
        node.output[:] = [n.removeprefix(prefix) for n in node.output]
        node.name = node.name.removeprefix(prefix)
    inits = [t for t in graph.initializer if t.name in needed]
    for tensor in inits:
        tensor.name = tensor.name.removeprefix(prefix)
    sub = helper.make_graph(nodes, graph.name, list(graph.input), list(graph.output), inits)
    member = helper.make_model(sub, opset_imports=list(model.opset_import))
    member.ir_version = model.ir_version
    onnx.checker.check_model(member)
    onnx.save(member, str(out))


def flatten_members(members: list[Path], workdir: Path) -> tuple[list[Path], dict[str, str]]:
    """Members for merge_members with every ensemble file replaced by its own members, so that
    adding a model to an ensemble gives each model the same weight (an ensemble merged as one
    member would count for one), and the metadata naming the original member files by sha256
    and the ensembles that were taken apart."""
    files, shas, flattened = [], [], []
    for path in members:
        inner = members_of(path)
        if not inner:
            files.append(path)
            shas.append(hashlib.sha256(path.read_bytes()).hexdigest())
            continue
        flattened.append(hashlib.sha256(path.read_bytes()).hexdigest())
        for k, sha in enumerate(inner):
            files.append(workdir / f"{path.stem}.member{k}.onnx")
            extract_member(path, k, files[-1])
            shas.append(sha)
    metadata = {MEMBERS_KEY: ",".join(shas)}
    if flattened:
        metadata[FLATTENED_KEY] = ",".join(flattened)
    return files, metadata
