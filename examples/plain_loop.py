"""A plain PyTorch training loop over graphfuse's data, model and loss: for people who bring their
own trainer (Lightning, Accelerate, a loop of their own) instead of graphfuse.train.Trainer.

The three pieces: a ``collate_fn`` that turns ``(sample, label)`` pairs into one batched graph
(``builder.collate``) with the targets as ``batch.y``; the model; and the task, which holds the
loss (``task.loss(model(batch), batch)``), the outputs and the metrics of the model's head.
"""
import torch
from torch.utils.data import DataLoader

from graphfuse import GraphBuilder, ImageModality, TextModality, Tokenizer
from graphfuse.models import create_model
from graphfuse.train import create_task, featurize_dataset

tokenizer = Tokenizer(["red", "blue", "a", "square"])
builder = GraphBuilder({"text": TextModality(tokenizer), "image": ImageModality(patch_size=4, channels=1)},
                       cross="full")
data = [({"text": f"a {colour} square", "image": torch.full((8, 8), float(colour == "red"))}, int(colour == "red"))
        for colour in ["red", "blue"] * 16]
data = featurize_dataset(builder, data, progress=False)  # or keep raw samples: collate featurises them


def collate(items):
    """(sample, label) pairs -> one batched graph, with the labels as batch.y."""
    batch = builder.collate([sample for sample, _ in items])
    batch.y = torch.tensor([label for _, label in items])
    return batch


model = create_model("graph-gat", builder=builder, task="classification", num_classes=2, hidden_channels=16, seed=0)
task = create_task("classification", model)  # the loss, outputs and metrics of the model's head
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
model.to(device)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
loader = DataLoader(data[:24], batch_size=8, shuffle=True, collate_fn=collate)  # num_workers=N works too

for epoch in range(3):
    model.train()
    for batch in loader:
        batch = batch.to(device)
        loss = task.loss(model(batch), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"epoch {epoch}: loss {loss.item():.4f}")

model.eval()
with torch.no_grad():
    batch = collate(data[24:]).to(device)
    print(task.metrics(task.outputs(model(batch), batch)))  # {'accuracy': ..., 'macro_f1': ...}
