"""Which fused kernel runs each relation: rules with documented, overridable thresholds."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KernelRules:
    """How the fused path of a conv runs each relation (pass it as a conv's ``rules``).

    A sparse relation always runs as edge gathers and CSR products. A complete bipartite
    relation (see :class:`~graphfuse.nn.FlatGraph`) runs as padded per-sample blocks when
    ``dense_blocks``, each as long as the longest sample of its own two node types; GAT blocks
    then pick between a dense block kernel and a sorted one by their source side's length.

    Args:
        dense_blocks (bool, optional): run complete bipartite relations as per-sample blocks
            (pooled sums for GCN and gated convs, batched matrix products for attention); else as
            sparse edges. (default: :obj:`True`)
        sorted_min_block (int, optional): GAT blocks with at least this many source slots use the
            :math:`O((n_s + n_d) \\log n_s)` sorted kernel instead of the :math:`O(n_s n_d)` dense
            one. The default is where the two crossed on a 2-core CPU (throughput benchmark, hidden
            64, 4 heads); on another machine, time both and set it. (default: :obj:`400`)
        chunk_bytes (int, optional): the block kernels process blocks this many bytes (of scores,
            or of the sorted kernel's running sums) at a time, so that their chains of elementwise
            passes run in cache; about a core's share of last-level cache. (default: :obj:`4 MiB`)
    """

    dense_blocks: bool = True
    sorted_min_block: int = 400
    chunk_bytes: int = 4 << 20

    def __post_init__(self) -> None:
        for name in ("sorted_min_block", "chunk_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"KernelRules '{name}' must be a positive integer, got {value!r}")


DEFAULT_RULES = KernelRules()
