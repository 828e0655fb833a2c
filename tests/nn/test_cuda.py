"""The fusion layers on a CUDA device equal them on CPU (skipped on CPU-only machines)."""
import pytest
import torch

from graphfuse.bench import throughput
from graphfuse.nn import FlatGraph, FusionEncoder
from graphfuse.testing import requires_cuda

CONVS = ["gcn", "gat", "hgt", "gated"]


def _encoder(metadata, conv, knn=None):
    torch.manual_seed(0)
    return FusionEncoder(16, metadata, num_layers=2, conv=conv, heads=2, dropout=0.0, knn=knn)


def _graph(batch, metadata, device):
    return FlatGraph.from_batch(batch.clone().to(device), metadata)  # the shared fixture stays on CPU


def _outputs_and_grads(encoder, batch, metadata, device):
    encoder = encoder.to(device)
    graph = _graph(batch, metadata, device)
    x = torch.randn(graph.num_nodes, 16, generator=torch.Generator().manual_seed(0)).to(device)
    out = encoder(x, graph)
    out.square().sum().backward()
    return out.detach().cpu(), {name: p.grad.cpu() for name, p in encoder.named_parameters()}


@requires_cuda
@pytest.mark.parametrize("knn", [None, 3])
@pytest.mark.parametrize("conv", CONVS)
def test_cuda_matches_cpu(conv, knn, batch, metadata):
    cpu_out, cpu_grads = _outputs_and_grads(_encoder(metadata, conv, knn), batch, metadata, "cpu")
    cuda_out, cuda_grads = _outputs_and_grads(_encoder(metadata, conv, knn), batch, metadata, "cuda")
    torch.testing.assert_close(cuda_out, cpu_out, rtol=1e-4, atol=1e-4)
    for name, grad in cpu_grads.items():
        torch.testing.assert_close(cuda_grads[name], grad, rtol=1e-3, atol=1e-4, msg=name)


@requires_cuda
@pytest.mark.parametrize("conv", CONVS)
def test_cuda_bf16_autocast(conv, batch, metadata):
    encoder = _encoder(metadata, conv).to("cuda")
    graph = _graph(batch, metadata, "cuda")
    x = torch.randn(graph.num_nodes, 16, device="cuda")
    with torch.no_grad():
        reference = encoder(x, graph)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = encoder(x, graph)
    assert torch.isfinite(out).all()
    assert (out.float() - reference).norm() / reference.norm() < 0.05


@requires_cuda
def test_throughput_step_runs_on_cuda():
    config = throughput.Config(tokens=4, grid=2, frames=4, hidden_channels=16, heads=4, batch_size=3, device="cuda")
    for method in ("graphfuse-gat", "dense-transformer"):
        step = throughput.setup(method, config)
        step()
        step()
