"""Frozen-trunk activations, computed once and cached.

A frozen network gives the same output every epoch, so we run it once per photo (one centre crop for
evaluation, a few augmented views for training) and store the result on disk keyed by the photos'
identity, the network and the view. What we cache is the output of the backbone's *trunk* (all but
its last block, `src.transfer.split_trunk_and_tail`): the pooled features are one cheap tail pass
away, and the tail itself can be fine-tuned on the cache in seconds instead of hours.

On CPUs with native bfloat16 (AVX512-BF16, AMX) the frozen pass runs under bfloat16 autocast;
elsewhere it stays in float32, where emulated bfloat16 would be slower. The network is also traced
and frozen first (`inference_graph`): BatchNorm folds into the convolutions and the weights are cast
once, not every batch. The EfficientNet-Lite0 trunk on a 2-core AMD EPYC with native bfloat16,
batch 64: 38 img/s eager float32, 90 eager bfloat16, 124 traced and frozen in bfloat16
(`python -m scripts.trunk_speed`), with the same validation accuracy of a probe on its activations.

Small batches run the trunk faster: a batch of 4 keeps the early, large activation maps in the CPU's
cache (`python -m scripts.trunk_speed --batch 4 64`).

Where OpenVINO is installed the frozen pass runs on it instead (`OpenVinoGraph`): converted once per
input size, BatchNorm folded, one batch running per CPU stream, so the next batch is transformed
while the last one runs. `$LANDMARK_RUNTIME=torchscript` (the switch the
serving side reads too) keeps it on torch. Speeds of both: `python -m scripts.trunk_speed`; the
results and the machine they ran on are in docs/openvino.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from src.data.folders import default_cache_dir
from src.data.transforms import Preprocessing, eval_transform, view_transform
from src.machine import bf16_is_fast
from src.training import distributed


def fast_autocast(enabled: Optional[bool] = None) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CPU where it is native (enabled=None: decide from the CPU), else a no-op."""
    if enabled is None:
        enabled = bf16_is_fast()
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


@torch.no_grad()
def inference_graph(network: nn.Module, example: torch.Tensor, bf16: Optional[bool] = None) -> torch.jit.ScriptModule:
    """`network` (eval mode) traced on `example` and frozen: BatchNorm folded into the convolutions,
    weights cast to bfloat16 once (bf16 as in `fast_autocast`). For a fixed input size only: the
    trace keeps shape-dependent padding as constants. A ScriptModule (e.g. part of an exported model)
    is already a graph: it is frozen as it is. Speed: `python -m scripts.trunk_speed`."""
    with fast_autocast(bf16), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # timm's "same" padding reads the input size
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice: it is what we export to
        network = network.eval()
        scripted = network if isinstance(network, torch.jit.ScriptModule) else torch.jit.trace(network, example, check_trace=False)
        return torch.jit.freeze(scripted)


def openvino_is_chosen() -> bool:
    """Run frozen passes on OpenVINO: installed, and not switched off by $LANDMARK_RUNTIME=torchscript."""
    if os.environ.get("LANDMARK_RUNTIME") == "torchscript":
        return False
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


class OpenVinoGraph:
    """`network` (eval mode) converted by OpenVINO for the CPU, any batch size, float32 (bfloat16 as in
    `fast_autocast`). `run` keeps one batch running per stream and returns the outputs in order."""

    def __init__(self, network: nn.Module, example: torch.Tensor, bf16: Optional[bool] = None):
        import openvino as ov

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # timm's "same" padding reads the input size
            warnings.simplefilter("ignore", FutureWarning)  # the converter traces with torch.jit, which torch deprecates
            model = ov.convert_model(network.eval(), example_input=example.contiguous())
        model.reshape([-1, *example.shape[1:]])
        bf16 = bf16_is_fast() if bf16 is None else bf16
        config = {"INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32", "PERFORMANCE_HINT": "THROUGHPUT",
                  "INFERENCE_NUM_THREADS": torch.get_num_threads()}
        self.compiled = ov.Core().compile_model(model, "CPU", config)
        self.streams = max(1, int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self.precision = "bf16" if bf16 else "fp32"

    def run(self, batches: Iterable[torch.Tensor]) -> list[torch.Tensor]:
        # One infer request per stream, used in turn: batch i waits for batch i - streams to finish.
        # No Python callbacks: OpenVINO's threads never need the GIL (a callback could deadlock
        # against the compiled model's destructor, which joins those threads holding the GIL).
        requests = [self.compiled.create_infer_request() for _ in range(self.streams)]
        pending: list[Optional[int]] = [None] * len(requests)
        outputs: list[torch.Tensor] = []

        def collect(slot: int) -> None:
            if pending[slot] is not None:
                requests[slot].wait()
                outputs.append(torch.from_numpy(requests[slot].get_output_tensor(0).data.copy()))
                pending[slot] = None

        threads = torch.get_num_threads()
        # The batches are transformed by torch in this thread while OpenVINO's threads run the last ones:
        # torch's own thread pool would fight them for the cores (a third slower on 2 cores).
        torch.set_num_threads(1)
        try:
            for index, batch in enumerate(batches):
                slot = index % len(requests)
                collect(slot)  # in order: the oldest batch still running is in this slot
                requests[slot].start_async({0: np.ascontiguousarray(batch.float().numpy())}, share_inputs=False)
                pending[slot] = index
            for slot in sorted((s for s in range(len(requests)) if pending[s] is not None), key=lambda s: pending[s]):
                collect(slot)
        finally:
            torch.set_num_threads(threads)
        return outputs


FrozenGraph = Union[torch.jit.ScriptModule, OpenVinoGraph]


def frozen_graph(network: nn.Module, example: torch.Tensor, bf16: Optional[bool] = None) -> FrozenGraph:
    """The fastest frozen form of `network` here: `OpenVinoGraph` where chosen (`openvino_is_chosen`), else
    the traced, frozen torch graph (`inference_graph`). For a fixed input size (any batch)."""
    return OpenVinoGraph(network, example, bf16) if openvino_is_chosen() else inference_graph(network, example, bf16)


def graph_label(graph: nn.Module | OpenVinoGraph, bf16: Optional[bool] = None) -> str:
    """What computed an activation (part of cache keys: the engines round differently)."""
    if isinstance(graph, OpenVinoGraph):
        return f"{graph.precision}-openvino"
    return ("bf16" if (bf16_is_fast() if bf16 is None else bf16) else "fp32") + "-frozen"


@torch.no_grad()  # not inference_mode: the outputs are later used where autograd is on
def extract_features(
    network: nn.Module | OpenVinoGraph,
    images: Sequence[torch.Tensor],
    transform: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 4,  # faster than large batches on CPU (module docstring)
    desc: str = "features",
    bf16: Optional[bool] = None,
    out_dtype: torch.dtype = torch.float32,
    trace: bool = True,
) -> torch.Tensor:
    """Run `network` (eval mode, or a `frozen_graph`) over uint8 images, each transformed first; returns the
    stacked outputs.

    bf16: bfloat16 where the CPU has it natively (None) or as given. out_dtype: how to store the result
    (float16 halves the size of cached activation maps). trace: run a module through `frozen_graph`
    (OpenVINO or traced torch); the transform must then give every image the same size.
    """
    if not isinstance(network, OpenVinoGraph):
        network = network.eval().to(memory_format=torch.channels_last)
    batches = _batches(images, transform, batch_size, desc)
    first = next(batches, None)
    if first is None:
        raise ValueError("extract_features needs at least one image")
    graph = network
    if trace and isinstance(network, torch.jit.ScriptModule):
        graph = inference_graph(network, first, bf16)  # already a graph: frozen as it is
    elif trace and not isinstance(network, OpenVinoGraph):
        graph = frozen_graph(network, first, bf16)
    if isinstance(graph, OpenVinoGraph):
        outputs = graph.run(_chain(first, batches))
    else:
        outputs = []
        for batch in _chain(first, batches):
            with fast_autocast(bf16):
                outputs.append(graph(batch))
    return torch.cat([output.to(out_dtype) for output in outputs])


def _batches(images: Sequence[torch.Tensor], transform: Callable, batch_size: int, desc: str) -> Iterator[torch.Tensor]:
    for start in tqdm(range(0, len(images), batch_size), desc=desc, ncols=90):
        batch = torch.stack([transform(image) for image in images[start : start + batch_size]])
        yield batch.contiguous(memory_format=torch.channels_last)


def _chain(first: torch.Tensor, rest: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
    yield first
    yield from rest


def cached_activations(
    network_name: str,
    trunk: nn.Module | OpenVinoGraph,
    images: Sequence[torch.Tensor],
    identity: str,
    view: str,
    prep: Preprocessing,
    seed: int = 0,
    cache_dir: Optional[Path] = None,
) -> torch.Tensor:
    """Trunk activations (float16 [N, C, H, W]) of `images` for one view ("eval" or "aug<k>"), cached on disk.

    identity: names the exact list of photos (e.g. a FolderScan identity plus the split's indices).
    network_name must change whenever the trunk does (it is part of the cache key).
    Under torchrun (`src.training.distributed`) each rank computes every world_size-th photo and the
    shards are gathered on every rank; rank 0 writes the cache. Augmented views then draw their random
    crops per rank, so the key names the number of shards (a single process's cache is unchanged).
    """
    precision = graph_label(trunk)  # folded BatchNorm and each engine round differently
    shards = distributed.world_size() if len(images) >= distributed.world_size() else 1
    sharding = f"|shards{shards}" if shards > 1 and view != "eval" else ""
    key = hashlib.sha1(f"{network_name}|{identity}|{view}|{prep}|{seed}|{len(images)}|{precision}{sharding}".encode()).hexdigest()[:16]
    path = (cache_dir or default_cache_dir()) / f"activations-{network_name}-{view}-{key}.pt"
    # Every rank must agree: one rank loading while another computes would leave the latter waiting.
    if not distributed.any_rank(not path.exists()):
        return torch.load(path, weights_only=True)
    if view == "eval":
        transform = eval_transform(prep)
    else:
        torch.manual_seed(seed if shards == 1 else seed * 1_000_003 + distributed.rank())
        transform = view_transform(prep)
    mine = distributed.shard_indices(len(images)) if shards > 1 else range(len(images))
    part = extract_features(trunk, [images[i] for i in mine], transform, desc=f"{network_name} {view}", out_dtype=torch.float16)
    activations = distributed.gather_shards(part, len(images)) if shards > 1 else part
    if not distributed.is_main():
        return activations
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(activations, tmp)
    os.replace(tmp, path)
    return activations


@torch.no_grad()
def run_in_batches(network: nn.Module, inputs: torch.Tensor, batch_size: int = 256, fast: bool = False) -> torch.Tensor:
    """`network` (eval mode) over cached inputs in batches: e.g. the frozen tail over trunk activations.

    fast=False computes in float32, as the exported model does. fast=True runs the traced, frozen
    graph in bfloat16 where native (`inference_graph`): 2x faster for the Lite2 tail, 1 % relative
    difference; for features a probe trains on, not for numbers that must match the export.
    """
    network.eval()
    runner = inference_graph(network, inputs[:batch_size].float()) if fast else network
    with fast_autocast(None if fast else False):
        return torch.cat([runner(inputs[i : i + batch_size].float()).float() for i in range(0, len(inputs), batch_size)])
