"""A new modality without touching the library: video frames as graph nodes.

The video modality below turns a clip ``[T, C, H, W]`` into one node per frame (its
average-pooled pixels as features), gives each frame its time span, and joins frames that
are close in time. Registered under a name, it is then used like the built-in modalities:
in the builder, in time-aligned cross-modal edges with speech, in batches.

Run: python examples/custom_modality.py
"""
import torch
import torch.nn.functional as F

from graphfuse import AudioModality, CrossEdges, GraphBuilder, Modality, NodeSet, TextModality, Tokenizer
from graphfuse.data import TemporalAlignment, chain_edges, register_modality


@register_modality("video")
class VideoModality(Modality):
    """Frame nodes: ``x`` the frame pooled to ``pool`` x ``pool`` pixels per channel, ``pos`` the
    frame index, ``time`` its span at ``fps``; frames at most ``window`` apart are joined."""

    relation = "next"

    def __init__(self, fps: float = 25.0, channels: int = 3, pool: int = 4, window: int = 2) -> None:
        self.fps, self.channels, self.pool, self.window = fps, channels, pool, window

    def featurize(self, raw) -> NodeSet:
        frames = torch.as_tensor(raw)
        if frames.dim() != 4 or frames.size(1) != self.channels or frames.size(0) == 0:
            raise ValueError(f"Modality '{self.name}' received a clip of shape {tuple(frames.shape)}; expected "
                             f"[T >= 1, {self.channels}, H, W]")
        pooled = F.adaptive_avg_pool2d(frames.float(), self.pool).flatten(1)
        start = torch.arange(frames.size(0)) / self.fps
        return NodeSet(
            x=pooled,
            edge_index=chain_edges(frames.size(0), self.window),
            pos=torch.arange(frames.size(0)),
            time=torch.stack([start, start + 1 / self.fps], dim=1),
            structure=("chain", frames.size(0), self.window),
        )

    def empty(self) -> NodeSet:
        return NodeSet.empty(feature_shape=(self.channels * self.pool ** 2,), pos_shape=(), timed=True)


def main() -> None:
    generator = torch.Generator().manual_seed(0)
    tokenizer = Tokenizer.from_corpus(["the dog jumps over the fence", "a ball rolls away"])
    builder = GraphBuilder(
        {"text": TextModality(tokenizer, spans=True), "audio": AudioModality(n_mels=32), "video": "video"},
        cross=[
            CrossEdges("video", "audio", TemporalAlignment(), relation="during"),
            CrossEdges("text", "video", TemporalAlignment(window=0.04), relation="during"),
            CrossEdges("text", "audio", "full"),
        ],
    )
    samples = [
        {"text": {"text": "the dog jumps", "spans": [[0.0, 0.2], [0.2, 0.5], [0.5, 1.0]]},
         "audio": 0.1 * torch.randn(16000, generator=generator),
         "video": torch.rand(25, 3, 32, 32, generator=generator)},
        {"text": "a ball rolls away", "video": torch.rand(12, 3, 32, 32, generator=generator)},  # no audio
    ]
    graph = builder.build(samples[0])
    batch = builder.collate(samples)
    audio_frames_per_video_frame = graph["video", "during", "audio"].edge_index[0].bincount().float().mean()
    print(graph)
    print(f"batch of {batch.num_graphs}: {batch['video'].num_nodes} frame nodes, "
          f"{batch['video', 'next', 'video'].num_edges} frame-to-frame edges, "
          f"{batch['video', 'during', 'audio'].num_edges} frame-to-audio edges "
          f"(a 40 ms frame overlaps {audio_frames_per_video_frame:.1f} audio frames on average)")


if __name__ == "__main__":
    main()
