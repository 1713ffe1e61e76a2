"""Exact top-k inner-product search: chunked matrix products over a float32 or float16 matrix.

Memory stays bounded whatever the corpus size: queries go in blocks of ``QUERY_BLOCK`` and the corpus in
chunks of ``CHUNK_ROWS`` rows, so one score block is at most ``QUERY_BLOCK x CHUNK_ROWS`` floats (64 MiB);
each chunk's top-k is merged into a running top-k (what sentence-transformers' ``semantic_search`` does).
"""
from __future__ import annotations

import torch

CHUNK_ROWS = 65536
QUERY_BLOCK = 256
# below this many queries a float16 matrix is multiplied in float16 (half the memory traffic); above it,
# each chunk is widened to float32, where CPU matrix products are faster per flop
HALF_MATMUL_MAX_QUERIES = 16
# a filter that keeps under this share of the rows gathers them instead of masking every score
GATHER_BELOW = 0.25


def topk(queries: torch.Tensor, matrix: torch.Tensor, k: int, allowed: torch.Tensor | None = None,
         chunk_rows: int = CHUNK_ROWS) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores ``[q, k']`` (float32, descending) and row numbers ``[q, k']`` of the best rows per query.

    ``queries``: ``[q, d]`` float32; ``matrix``: ``[n, d]`` float32 or float16; ``allowed``: optional bool
    mask ``[n]`` of the rows that may be returned. ``k' = min(k, number of allowed rows)``.
    """
    n = matrix.shape[0]
    count = n if allowed is None else int(allowed.sum())
    k = min(k, count)
    if k <= 0 or len(queries) == 0:
        return torch.empty(len(queries), 0), torch.empty(len(queries), 0, dtype=torch.long)
    rows = None
    if allowed is not None and count < GATHER_BELOW * n:
        rows, allowed = allowed.nonzero().squeeze(1), None
    scores, slots = [], []
    for start in range(0, len(queries), QUERY_BLOCK):
        block = queries[start : start + QUERY_BLOCK]
        s, i = _block_topk(block, matrix, k, allowed, rows, chunk_rows)
        scores.append(s)
        slots.append(i)
    return torch.cat(scores), torch.cat(slots)


def _block_topk(queries: torch.Tensor, matrix: torch.Tensor, k: int, allowed: torch.Tensor | None,
                rows: torch.Tensor | None, chunk_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    half = matrix.dtype == torch.float16 and len(queries) <= HALF_MATMUL_MAX_QUERIES
    q = queries.to(torch.float16) if half else queries.float()
    total = matrix.shape[0] if rows is None else len(rows)
    best_scores = best_rows = None
    for start in range(0, total, chunk_rows):
        stop = min(start + chunk_rows, total)
        chunk = matrix[start:stop] if rows is None else matrix[rows[start:stop]]
        if not half and chunk.dtype != torch.float32:
            chunk = chunk.float()
        scores = (q @ chunk.T).float()
        if allowed is not None:
            scores.masked_fill_(~allowed[start:stop], float("-inf"))
        values, index = scores.topk(min(k, stop - start), dim=1)
        index = index + start if rows is None else rows[start:stop][index]
        if best_scores is None:
            best_scores, best_rows = values, index
        else:
            values = torch.cat([best_scores, values], dim=1)
            index = torch.cat([best_rows, index], dim=1)
            best_scores, order = values.topk(min(k, values.shape[1]), dim=1)
            best_rows = index.gather(1, order)
    assert best_scores is not None and best_rows is not None
    return best_scores, best_rows
