"""Entry point of one process of the DDP tests in ``test_distributed.py`` (not a test module).

Run as ``python ddp_worker.py SCENARIOS OUT_DIR`` with torchrun's variables set (``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) for a distributed run, or
without them for the one-process reference. ``SCENARIOS`` is ``classification``,
``retrieval`` or both, comma-separated. Writes for each ``<scenario>-rank<R>.pt``: the final
state dict, the history and, for classification, the metrics of ``Trainer.evaluate`` and the
logits of ``Trainer.predict``.

The data and models are built here, so both runs see the same ones; the tests import
:func:`train_share` and :func:`classification_data` to check the data does what they rely on.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch_geometric.utils import scatter

from graphfuse import AudioModality, GraphBuilder, ImageModality, TextModality, Tokenizer
from graphfuse.models import create_model
from graphfuse.nn import MultimodalOutput
from graphfuse.train import CSVLogger, Trainer, featurize_dataset
from graphfuse.train.distributed import setup, shutdown

WORDS = "red blue green the a cat dog sat on mat big small".split()
SAMPLE_RATE = 4000
SEED = 0
TRAIN_SIZE = 32          # divisible by 16: no sampler padding while training
EVAL_SIZE = 21           # odd: the two processes' evaluation shares differ (or get padded)
GLOBAL_BATCH = 16
EPOCHS = 2


def builder(audio: bool = True) -> GraphBuilder:
    modalities = {"text": TextModality(Tokenizer(WORDS)), "image": ImageModality(patch_size=4, channels=1)}
    if audio:
        modalities["audio"] = AudioModality(sample_rate=SAMPLE_RATE, n_mels=8)
    return GraphBuilder(modalities, cross="full")


def train_share(size: int = TRAIN_SIZE, world_size: int = 2, rank: int = 1, epoch: int = 0) -> list[int]:
    """The samples one process trains on in ``epoch`` (the engine's DistributedSampler's share)."""
    sampler = torch.utils.data.DistributedSampler(range(size), num_replicas=world_size, rank=rank, shuffle=True,
                                                  seed=SEED)
    sampler.set_epoch(epoch)
    return list(sampler)


def make_data(size: int, seed: int, images: set[int] | None = None, all_audio: bool = False) -> list[tuple]:
    """Labelled samples (4 classes, from the colour word and the image's bar). Samples outside
    ``images`` (when given) have no image; every third sample has no audio unless ``all_audio``."""
    generator = torch.Generator().manual_seed(seed)
    data = []
    for index in range(size):
        label = int(torch.randint(4, (), generator=generator))
        words = [WORDS[int(i)] for i in torch.randint(3, len(WORDS), (3,), generator=generator)]
        words.insert(int(torch.randint(4, (), generator=generator)), WORDS[label & 1])
        image = 0.3 * torch.rand(8, 8, generator=generator)
        if label >> 1:
            image[:, int(torch.randint(8, (), generator=generator))] = 1.0
        else:
            image[int(torch.randint(8, (), generator=generator)), :] = 1.0
        audio = 0.1 * torch.randn(int(0.05 * SAMPLE_RATE), generator=generator)
        sample = {"text": " ".join(words)}
        if images is None or index in images:
            sample["image"] = image
        if all_audio or index % 3:
            sample["audio"] = (audio, SAMPLE_RATE)
        data.append((sample, label))
    return data


def classification_data(graphs: GraphBuilder) -> tuple[list, list]:
    # Only the samples of process 1's share in epoch 0 have an image: in that epoch process 0
    # never sees an image node, so the image encoder's parameters are unused there.
    train = make_data(TRAIN_SIZE, SEED, images=set(train_share()))
    test = make_data(EVAL_SIZE, SEED + 1)
    return featurize_dataset(graphs, train, progress=False), featurize_dataset(graphs, test, progress=False)


def retrieval_data(graphs: GraphBuilder) -> list:
    # Text queries, image gallery (bi-modal: a retrieval model only materialises the encoders of its sides).
    data = [{key: sample[key] for key in ("text", "image")} for sample, _ in make_data(TRAIN_SIZE, SEED + 2)]
    return featurize_dataset(graphs, data, progress=False)


class WithImageTerm(torch.nn.Module):
    """A graphfuse classifier plus a linear term of the mean raw image patch that runs only when
    the batch has image nodes. (graphfuse batches keep an absent modality as an empty node type,
    whose encoder gets zero gradients; this term's parameters get none at all, so on a process
    whose batch has no image DDP must treat them as unused.)"""

    def __init__(self, model: torch.nn.Module, patch_features: int, num_classes: int) -> None:
        super().__init__()
        self.model, self.task_name, self.head, self.unimodal = model, model.task_name, model.head, model.unimodal
        self.unimodal_weight = model.unimodal_weight
        # No bias: a sample without an image adds nothing, whatever else its batch holds.
        self.image_term = torch.nn.Linear(patch_features, num_classes, bias=False)

    def forward(self, batch) -> torch.Tensor | MultimodalOutput:
        output = self.model(batch)
        image = batch["image"]
        if image.num_nodes == 0:
            return output
        term = self.image_term(scatter(image.x, image.batch, dim=0, dim_size=batch.num_graphs, reduce="mean"))
        if isinstance(output, MultimodalOutput):  # while training with unimodal heads
            return output._replace(output=output.output + term)
        return output + term


def run(scenario: str, out_dir: Path) -> None:
    process = setup()
    graphs = builder(audio=scenario == "classification")
    torch.manual_seed(SEED)
    if scenario == "classification":
        model = WithImageTerm(create_model("graph-gcn", builder=graphs, task="classification", num_classes=4,
                                           hidden_channels=8, dropout=0.0), patch_features=16, num_classes=4)
    else:
        model = create_model("graph-gcn", builder=graphs, task="retrieval", query=("text",), gallery=("image",),
                             rerank=False, hidden_channels=8, dropout=0.0)
    log = out_dir / f"{scenario}-log-rank{process.rank}.csv"  # rank 0 alone writes its log
    trainer = Trainer(model, graphs, epochs=EPOCHS, batch_size=GLOBAL_BATCH // process.world_size, lr=1e-2, seed=SEED,
                      progress=False, callbacks=[CSVLogger(log)])
    result = {"world_size": process.world_size}
    if scenario == "classification":
        train, test = classification_data(graphs)
        result["history"] = trainer.fit(train)
        result["metrics"] = trainer.evaluate(test)
        result["logits"] = trainer.predict(test)["logits"]
    else:
        result["history"] = trainer.fit(retrieval_data(graphs))
    result["state"] = {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}
    result["log_lines"] = len(log.read_text().splitlines()) if log.exists() else None
    torch.save(result, out_dir / f"{scenario}-rank{process.rank}.pt")


if __name__ == "__main__":
    torch.set_num_threads(1)
    for name in sys.argv[1].split(","):  # one process group for all: process start-up is most of the cost
        run(name, Path(sys.argv[2]))
    shutdown()
