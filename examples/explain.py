"""A prediction explained end to end: train, explain, draw.

Each sample has a sentence with one colour word among filler words, a 16x16 image with a bar and
a short noise clip. The class is the colour (red / blue); the bar's orientation says it too
(horizontal for red, vertical for blue) and the audio says nothing. After training, the example
explains a few test predictions with :func:`graphfuse.explain.explain` and reports, per sample,
the predicted class, how much each modality contributes (the probability lost when it is left
out) and the word with the largest gradient x input, most often the colour word. It draws the
pictures of the first sample into ``--out``.

    python examples/explain.py --out explain-pictures

The last line printed is one JSON object: test accuracy, how often the colour word is the top
word, and each modality's mean contribution.
"""
from __future__ import annotations

import argparse
import json
import statistics

import torch
from classification import at_least  # examples/classification.py's argparse type

from graphfuse import AudioModality, GraphBuilder, ImageModality, Pipeline, TextModality, Tokenizer
from graphfuse.explain import explain
from graphfuse.io import ensure_writable_dir
from graphfuse.models import create_model
from graphfuse.train import Trainer

COLOURS = ("red", "blue")
FILLER = "the a shape here there is on with and of small big image sound picture".split()
SAMPLE_RATE = 8000
TEST_SIZE = 256


def make_sample(label: int, generator: torch.Generator) -> dict:
    words = [FILLER[int(i)] for i in torch.randint(len(FILLER), (5,), generator=generator)]
    words.insert(int(torch.randint(6, (), generator=generator)), COLOURS[label])
    image = 0.3 * torch.rand(16, 16, generator=generator)
    line, start = int(torch.randint(2, 14, (), generator=generator)), int(torch.randint(0, 6, (), generator=generator))
    if label:
        image[start:start + 10, line] = 1.0
    else:
        image[line, start:start + 10] = 1.0
    audio = 0.3 * torch.randn(int(0.15 * SAMPLE_RATE), generator=generator)
    return {"text": " ".join(words), "image": image, "audio": (audio, SAMPLE_RATE)}


def make_data(size: int, seed: int) -> list[tuple[dict, int]]:
    generator = torch.Generator().manual_seed(seed)
    return [(make_sample(label, generator), label) for label in torch.randint(2, (size,), generator=generator).tolist()]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="explain-pictures", help="folder for the pictures (default: explain-pictures)")
    parser.add_argument("--epochs", type=at_least(1), default=8)
    parser.add_argument("--train-size", type=at_least(1), default=512)
    parser.add_argument("--explain", type=at_least(1), default=16,
                        help=f"test samples to explain, at most {TEST_SIZE} (default: 16)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.explain > TEST_SIZE:
        parser.error(f"--explain {args.explain} is more than the {TEST_SIZE} test samples; choose at most {TEST_SIZE}")
    try:
        ensure_writable_dir(args.out, "--out")  # before training, not at the first picture
    except OSError as error:
        parser.error(str(error))

    builder = GraphBuilder({
        "text": TextModality(Tokenizer(list(COLOURS) + FILLER)),
        "image": ImageModality(patch_size=4, channels=1),
        "audio": AudioModality(sample_rate=SAMPLE_RATE, n_mels=16),
    }, cross="full")
    model = create_model("graph-gat", builder=builder, num_classes=2, hidden_channels=32, heads=4, seed=0)
    trainer = Trainer(model, builder, epochs=args.epochs, batch_size=32, lr=3e-3, seed=0,
                      progress=not args.no_progress)
    trainer.fit(make_data(args.train_size, 0), make_data(128, 1))
    test = make_data(TEST_SIZE, 2)
    accuracy = trainer.evaluate(test)["accuracy"]
    pipeline = Pipeline(builder, model, class_names=list(COLOURS))

    samples = test[:args.explain]
    explanation = explain(pipeline, samples)
    top_is_colour = []
    for i, (sample, label) in enumerate(samples):
        words = sample["text"].split()
        top_word = words[int(explanation.sample_attributions(i)["text"].argmax())]
        top_is_colour.append(top_word in COLOURS)
        contributions = ", ".join(f"{modality} {float(values[i]):+.3f}"
                                  for modality, values in explanation.contributions.items())
        print(f"sample {i}: {COLOURS[label]} predicted {COLOURS[int(explanation.target[i])]} "
              f"(p = {float(explanation.score[i]):.3f}); left out: {contributions}; top word {top_word!r}")

    from graphfuse.explain.plots import save_pictures

    for path in save_pictures(explanation, 0, args.out):
        print(f"wrote {path}")
    result = {"accuracy": round(accuracy, 4),
              "top_word_is_colour": round(sum(top_is_colour) / len(top_is_colour), 4),
              "contribution": {modality: round(statistics.fmean(values.tolist()), 4)
                               for modality, values in explanation.contributions.items()}}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
