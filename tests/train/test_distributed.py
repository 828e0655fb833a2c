"""DDP on CPU (gloo): two processes started here step exactly like one process with their global
batch, agree with each other, and evaluate like one process; the torchrun set-up helpers.

The processes run ``ddp_worker.py`` with torchrun's variables set by hand; the one-process
reference runs the same function in this process.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import ddp_worker
import pytest
import torch

from graphfuse.train import Trainer, distributed

WORKER = Path(__file__).with_name("ddp_worker.py")
ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 180


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in distributed.TORCHRUN_VARIABLES}
    env.update(OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore::FutureWarning", **extra)
    return env


def tail(path: Path, chars: int = 4000) -> str:
    text = path.read_text(errors="replace") if path.exists() else "(no output)"
    return text[-chars:]


def launch(scenarios: list[str], out_dir: Path, world_size: int = 2) -> list[dict[str, dict]]:
    """Runs ``world_size`` processes of the worker as torchrun would; by rank, their result of
    each scenario."""
    port = str(free_port())
    processes, logs = [], []
    for rank in range(world_size):
        log = out_dir / f"rank{rank}.log"
        logs.append(log)
        env = child_env(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1",
                        MASTER_PORT=port)
        with open(log, "w") as stream:
            processes.append(subprocess.Popen([sys.executable, str(WORKER), ",".join(scenarios), str(out_dir)],
                                              env=env, stdout=stream, stderr=subprocess.STDOUT, cwd=ROOT))
    failures = []
    try:
        for rank, process in enumerate(processes):
            try:
                code = process.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                code = "timeout"
            if code != 0:
                failures.append(rank)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    if failures:
        report = "\n".join(f"--- rank {rank} (exit {processes[rank].returncode}) ---\n{tail(logs[rank])}"
                           for rank in range(world_size))
        pytest.fail(f"DDP workers failed on ranks {failures}:\n{report}")
    return [{scenario: torch.load(out_dir / f"{scenario}-rank{rank}.pt", weights_only=False)
             for scenario in scenarios} for rank in range(world_size)]


def reference(scenarios: list[str], out_dir: Path) -> dict[str, dict]:
    """The same runs in this one process (the global batch on one process)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in distributed.TORCHRUN_VARIABLES:
            patch.delenv(name, raising=False)
        for scenario in scenarios:
            ddp_worker.run(scenario, out_dir)
    return {scenario: torch.load(out_dir / f"{scenario}-rank0.pt", weights_only=False) for scenario in scenarios}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``(ranks, one)``: the results of the 2-process run (by rank) and of the one-process run,
    each by scenario."""
    scenarios = ["classification", "retrieval"]
    return launch(scenarios, tmp_path_factory.mktemp("ddp")), reference(scenarios, tmp_path_factory.mktemp("one"))


@pytest.fixture
def classification(runs):
    ranks, one = runs
    return [rank["classification"] for rank in ranks], one["classification"]


@pytest.fixture
def retrieval(runs):
    ranks, one = runs
    return [rank["retrieval"] for rank in ranks], one["retrieval"]


def train_losses(result: dict) -> list[float]:
    return [record["train_loss"] for record in result["history"]]


def assert_states_equal(state: dict, other: dict) -> None:
    assert state.keys() == other.keys()
    different = [key for key in state if not torch.equal(state[key], other[key])]
    assert not different, f"parameters differ between ranks: {different}"


def assert_states_close(state: dict, other: dict, atol: float = 1e-5) -> None:
    assert state.keys() == other.keys()
    worst = {key: float((state[key].double() - other[key].double()).abs().max()) for key in state
             if state[key].numel()}
    far = {key: gap for key, gap in worst.items() if gap > atol}
    assert not far, f"parameters differ from the one-process run: {far}"


def test_data_leaves_image_parameters_unused_on_one_rank():
    # Precondition of the classification test: in epoch 0 process 0 never sees an image node,
    # process 1 always does; and the evaluation set does not split evenly.
    train, test = ddp_worker.classification_data(ddp_worker.builder())
    assert len(train) % ddp_worker.GLOBAL_BATCH == 0 and len(test) % 2 == 1
    assert not any("image" in train[i][0] for i in ddp_worker.train_share(rank=0, epoch=0))
    assert all("image" in train[i][0] for i in ddp_worker.train_share(rank=1, epoch=0))
    assert any("audio" not in sample for sample, _ in train)


def test_classification_ranks_agree(classification):
    ranks, _ = classification
    assert [result["world_size"] for result in ranks] == [2, 2]
    assert_states_equal(ranks[0]["state"], ranks[1]["state"])
    assert train_losses(ranks[0]) == train_losses(ranks[1])
    assert len(ranks[0]["history"]) == ddp_worker.EPOCHS


def test_only_rank_zero_writes_the_log(classification):
    ranks, one = classification
    assert ranks[0]["log_lines"] == one["log_lines"] == 1 + ddp_worker.EPOCHS  # the header and a row per epoch
    assert ranks[1]["log_lines"] is None


def test_classification_matches_one_process(classification):
    ranks, one = classification
    assert one["world_size"] == 1
    torch.testing.assert_close(train_losses(ranks[0]), train_losses(one), rtol=1e-4, atol=1e-6)
    # Including image_term, which had no gradient on process 0 throughout epoch 0.
    assert_states_close(ranks[0]["state"], one["state"])


def test_classification_evaluate_matches_one_process(classification):
    ranks, one = classification
    for result in ranks:
        assert result["metrics"].keys() == one["metrics"].keys()
        for key, value in one["metrics"].items():
            assert result["metrics"][key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
        # Every sample once, in the data's order.
        assert result["logits"].shape == (ddp_worker.EVAL_SIZE, 4)
        torch.testing.assert_close(result["logits"], one["logits"], rtol=1e-4, atol=1e-5)


def test_retrieval_matches_one_process(retrieval):
    ranks, one = retrieval
    assert [result["world_size"] for result in ranks] == [2, 2] and one["world_size"] == 1
    assert_states_equal(ranks[0]["state"], ranks[1]["state"])
    torch.testing.assert_close(train_losses(ranks[0]), train_losses(one), rtol=1e-4, atol=1e-6)
    assert_states_close(ranks[0]["state"], one["state"])
    # The run learnt something: the loss fell.
    assert train_losses(one)[-1] < train_losses(one)[0]


def test_setup_without_torchrun(monkeypatch):
    for name in distributed.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="torchrun"):
        distributed.setup(distributed=True)
    info = distributed.setup(None)
    assert (info.world_size, info.rank, info.is_main, info.distributed) == (1, 0, True, False)
    assert distributed.setup(False).world_size == 1
    assert not torch.distributed.is_initialized()
    # Some variables but not all: the error names the missing ones.
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="MASTER_PORT"):
        distributed.setup(distributed=True)
    assert distributed.setup(None).world_size == 1
    # Single-process helpers are identities.
    value = torch.tensor([1.0, 3.0])
    assert distributed.all_reduce_mean(value) is value
    assert distributed.all_gather_objects({"a": 1}) == [{"a": 1}]
    assert distributed.all_gather_with_grad(value) is value


def test_a_device_that_does_not_parse_or_is_not_there_is_refused_when_the_trainer_is_made(
        make_model, colour_builder, small, monkeypatch):
    model = make_model()
    for device in ("gpu", "cuda:x", 3.5):
        with pytest.raises(ValueError, match=rf"Trainer 'device' must be None, a torch.device or a device name such "
                                             rf"as 'cpu', 'cuda' or 'cuda:0', got {re.escape(repr(device))}"):
            Trainer(model, colour_builder, device=device)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:0", torch.device("cuda")):
        with pytest.raises(ValueError, match=rf"Trainer 'device' is {re.escape(repr(device))}, but no CUDA device is "
                                             rf"available \(torch.cuda.is_available\(\) is False\); pass "
                                             rf"device='cpu', or leave device=None"):
            Trainer(model, colour_builder, device=device)
    for device in ("cpu", torch.device("cpu"), None):  # None: the CPU, as there is no CUDA device
        assert Trainer(model, colour_builder, device=device).device == torch.device("cpu")
    assert len(Trainer(model, colour_builder, device="cpu", epochs=1, batch_size=8, progress=False).fit(*small)) == 1

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert distributed.check_device("cuda:0", "Trainer 'device'") == torch.device("cuda", 0)
    Trainer(model, colour_builder, device="cuda")  # accepted; the device is only used by fit
    with pytest.raises(ValueError, match=r"Trainer 'device' is 'cuda:1', but this machine has 1 CUDA device "
                                         r"\(cuda:0\); pick one of them, or leave device=None"):
        Trainer(model, colour_builder, device="cuda:1")


def last_json_line(stdout: str) -> dict:
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    assert lines, "no output"
    return json.loads(lines[-1])


@pytest.mark.slow
def test_classification_example_ddp_matches_one_process():
    arguments = ["examples/classification.py", "--epochs", "3", "--train-size", "256", "--test-size", "64",
                 "--no-progress"]
    runs = {
        "torchrun": [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
                     f"--master_port={free_port()}", *arguments, "--ddp"],
        "one process": [sys.executable, *arguments],
    }
    results = {}
    for name, command in runs.items():
        done = subprocess.run(command, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{name} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        try:
            results[name] = last_json_line(done.stdout)
        except (AssertionError, json.JSONDecodeError) as error:
            pytest.fail(f"{name}: the last line is not JSON ({error}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    assert abs(results["torchrun"]["accuracy"] - results["one process"]["accuracy"]) <= 0.05, results
