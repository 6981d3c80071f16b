"""Matching of predicted localizations to ground truth, frame by frame (SMLM Challenge 2016).

In every frame, a minimum-cost assignment (the optimum the Hungarian algorithm finds, here by
exhaustive search or the sparse Jonker-Volgenant algorithm, see below) pairs ground-truth
emitters with predictions. A pair is allowed only
within ``max_lat_nm`` laterally and, in 3D, within ``max_ax_nm`` axially. Among all assignments
of allowed pairs, the one with the most pairs wins; among those, the one with the smallest summed
distance (lateral distance in 2D, 3D Euclidean distance in 3D).

How it stays fast on 10^5 frames and more:

* candidate pairs for all frames at once come from one k-d tree, in which each frame is moved
  far away from every other along an extra axis (so that frames are never mixed);
* candidate pairs form a bipartite graph; its connected components are independent problems;
* components with one truth or one prediction (almost all of them at usual densities) are solved
  together, vectorised: the cheapest allowed pair wins;
* small components with at least two of each (at most 120 possible full assignments, e.g. up to
  5 x 5) are solved by trying every assignment, batched over all components of the same shape:
  the same optimum as the Hungarian algorithm, without a Python call per component;
* the remaining components go through a sparse minimum-cost assignment
  (``scipy.sparse.csgraph.min_weight_full_bipartite_matching``, the Jonker-Volgenant algorithm on
  the allowed pairs only, the same optimum as the Hungarian algorithm on a dense matrix), in
  which every row may also take a private dummy partner costing more than any sum of allowed
  pairs; rows left with their dummy are unmatched. Memory grows with the allowed pairs, so one
  frame crowded into a single component of 10^4-10^5 emitters is still solved in about a second.

Ties (equal summed distance) are broken deterministically but arbitrarily.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components, min_weight_full_bipartite_matching
from scipy.spatial import cKDTree

from plexloc.errors import InputError
from plexloc.table import LocTable, as_table

__all__ = ["Matching", "match"]

_INT = np.int64
#: a pair this much beyond a threshold (nm) still matches: the thresholds are inclusive, and ``pred - truth`` rounds
_ROUNDING_NM = 1e-9


@dataclass(frozen=True, eq=False)
class Matching:
    """The result of :func:`match`: which rows of the truth and prediction tables pair up.

    Attributes:
        tp_truth: row indices into the truth table of the matched pairs (ascending).
        tp_pred: row indices into the prediction table, pairwise with ``tp_truth``.
        fp: prediction rows left unmatched (false positives), ascending.
        fn: truth rows left unmatched (false negatives), ascending.
        delta_nm: (TP, 3) array of ``pred - truth`` in x, y, z (nm), pairwise with ``tp_truth``.
        dim: 2 or 3, the dimensionality the matching used.
        max_lat_nm, max_ax_nm: the thresholds used (``max_ax_nm`` is ``None`` in 2D).
    """

    tp_truth: np.ndarray
    tp_pred: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    delta_nm: np.ndarray = field(repr=False)
    dim: int = 3
    max_lat_nm: float = 250.0
    max_ax_nm: float | None = 500.0

    @property
    def n_tp(self) -> int:
        return int(self.tp_truth.size)

    @property
    def n_fp(self) -> int:
        return int(self.fp.size)

    @property
    def n_fn(self) -> int:
        return int(self.fn.size)

    @property
    def dx(self) -> np.ndarray:
        """``x_pred - x_truth`` of the matched pairs (nm)."""
        return self.delta_nm[:, 0]

    @property
    def dy(self) -> np.ndarray:
        """``y_pred - y_truth`` of the matched pairs (nm)."""
        return self.delta_nm[:, 1]

    @property
    def dz(self) -> np.ndarray:
        """``z_pred - z_truth`` of the matched pairs (nm); reported in 2D too, though unused there."""
        return self.delta_nm[:, 2]

    def __repr__(self) -> str:
        return (
            f"Matching(dim={self.dim}, tp={self.n_tp}, fp={self.n_fp}, fn={self.n_fn}, "
            f"max_lat_nm={self.max_lat_nm}, max_ax_nm={self.max_ax_nm})"
        )


def _check_options(dim: int, max_lat_nm: float, max_ax_nm: float) -> None:
    if isinstance(dim, bool) or dim not in (2, 3):
        raise InputError(f"dim must be 2 or 3, got {dim!r}")
    if not (isinstance(max_lat_nm, (int, float, np.floating, np.integer)) and math.isfinite(max_lat_nm)):
        raise InputError(f"max_lat_nm must be a finite number of nm, got {max_lat_nm!r}")
    if max_lat_nm < 0:
        raise InputError(f"max_lat_nm must be >= 0 nm, got {max_lat_nm!r}")
    if dim == 3:
        if not isinstance(max_ax_nm, (int, float, np.floating, np.integer)) or math.isnan(max_ax_nm):
            raise InputError(f"max_ax_nm must be a number of nm (inf allowed), got {max_ax_nm!r}")
        if max_ax_nm < 0:
            raise InputError(f"max_ax_nm must be >= 0 nm, got {max_ax_nm!r}")


def _check_finite(table: LocTable, coords: tuple[str, ...], name: str, dim: int,
                  scored: np.ndarray | None = None) -> None:
    """``table.check_finite(coords)``, its message naming the table when it has no file behind it. ``scored``: the
    rows that are scored (a boolean mask; all where ``None``) of a table as read, so that the row and line named are
    the file's (``plexloc evaluate --frames`` scores some frames only)."""
    checked = table
    if scored is not None:  # the rows not scored are not checked: their values replaced by a finite one
        scored = np.asarray(scored, bool)
        checked = table.with_columns(**{c: np.where(scored, np.asarray(table[c], float), 0.0) for c in coords})
    try:
        checked.check_finite(coords)
    except InputError as err:
        n = len(table) if scored is None else int(np.count_nonzero(scored))
        of = f"{n} rows" if scored is None else f"{n} rows scored"
        hint = where = ""
        if dim == 3 and "'z_nm'" in err.reason:  # z unknown (NaN) in some rows, scored in 3D
            bad = np.flatnonzero(~np.isfinite(np.asarray(checked["z_nm"], float)))
            if bad.size == n:  # a 2D table (plexloc's own, or a ThunderSTORM, Picasso or SMAP file without z)
                raise InputError(f"{name} table: {err.reason} (dim=2 ignores z): z is unknown in every one of its "
                                 f"{of}, a 2D table (as plexloc's 2D tables and ThunderSTORM, Picasso and SMAP files "
                                 "without a z column are read), with nothing to score in 3D: score it in 2D (plexloc "
                                 "evaluate --dim 2)", source=err.source) from None
            hint = (f" (dim=2 ignores z); z is unknown in {bad.size} of {of}: score in 2D "
                    "(plexloc evaluate --dim 2) or leave those rows out")
        if str(err.source or "").lower().endswith(".csv"):  # 'row 2' counts from 0 after the header: line 4
            row = int(np.flatnonzero(~np.all(np.isfinite(np.column_stack([checked[c] for c in coords])), axis=1))[0])
            where = f" (line {row + 2} of the file where it has no blank lines: rows count from 0 after the header)"
        raise InputError(f"{name} table: {err.reason}{hint}{where}", source=err.source) from None


def _candidate_pairs(
    truth: LocTable, pred: LocTable, dim: int, max_lat_nm: float, max_ax_nm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All allowed (truth row, pred row, cost) triples, frames never mixed."""
    nt = len(truth)
    # Dense frame ranks over both tables; frames found in one table only simply get no pairs.
    _, rank = np.unique(np.concatenate([truth["frame"], pred["frame"]]), return_inverse=True)
    rank = rank.reshape(-1)
    # Query slightly beyond the threshold, then apply the exact test on recomputed distances.
    radius = max_lat_nm * (1.0 + 1e-9) + 1e-6
    spacing = 2.0 * radius + 1.0  # frames lie this far apart on the extra axis: > radius
    frame_axis = rank.astype(np.float64) * spacing
    pts_t = np.column_stack([truth["x_nm"], truth["y_nm"], frame_axis[:nt]])
    pts_p = np.column_stack([pred["x_nm"], pred["y_nm"], frame_axis[nt:]])
    pairs = cKDTree(pts_t).sparse_distance_matrix(cKDTree(pts_p), radius, output_type="ndarray")
    ti = pairs["i"].astype(_INT)
    pj = pairs["j"].astype(_INT)
    dx = pred["x_nm"][pj] - truth["x_nm"][ti]
    dy = pred["y_nm"][pj] - truth["y_nm"][ti]
    lat = np.hypot(dx, dy)
    # inclusive, up to the rounding of the differences: 250.3 - 0.3 is 250.00000000000003, and 15 % of the pairs
    # exactly 250 nm apart on a 0.1 nm grid were refused; 1e-9 nm is far below any position's precision
    ok = lat <= max_lat_nm + _ROUNDING_NM
    if dim == 3:
        dz = pred["z_nm"][pj] - truth["z_nm"][ti]
        ok &= np.abs(dz) <= max_ax_nm + _ROUNDING_NM
        cost = np.sqrt(lat * lat + dz * dz)
    else:
        cost = lat
    return ti[ok], pj[ok], cost[ok]


def _solve_sparse(m: int, n: int, r: np.ndarray, c: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Optimal assignment of one (m, n) component from its allowed pairs only (sparse LAPJVsp).

    The smaller side is the rows; every row also gets a private dummy column whose cost is larger
    than any sum of allowed pairs, so that a full matching always exists and one with one more
    allowed pair beats any with fewer. All costs are shifted by +1 (the solver needs non-zero
    weights; every full matching has exactly one edge per row, so the shift changes no choice).
    Memory and time grow with the number of allowed pairs, not with m x n: a 12,000-emitter frame
    at 30 per um^2 (one connected component) takes 0.1 s, where the dense Hungarian took 6 s and
    45,000 emitters (a 16 GB matrix) did not fit in memory.
    """
    transposed = m > n
    if transposed:
        m, n, r, c = n, m, c, r
    w1 = w + 1.0
    dummy = (min(m, n) + 1) * (float(w1.max()) + 1.0)
    rows = np.concatenate([r, np.arange(m)])
    cols = np.concatenate([c, n + np.arange(m)])
    vals = np.concatenate([w1, np.full(m, dummy)])
    ri, ci = min_weight_full_bipartite_matching(csr_matrix((vals, (rows, cols)), shape=(m, n + m)))
    keep = ci < n
    ri, ci = ri[keep].astype(_INT), ci[keep].astype(_INT)
    return (ci, ri) if transposed else (ri, ci)


#: Components with at most this many possible full assignments are solved by trying them all,
#: batched over all components of the same shape (same optimum as the Hungarian algorithm).
_MAX_ARRANGEMENTS = 120
_CHUNK_CELLS = 1 << 21


def _solve_exhaustive(
    m: int, q: int, b: np.ndarray, r: np.ndarray, c: np.ndarray, w: np.ndarray, forbidden: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optimal assignment for a batch of (m, q) problems by exhaustive search.

    ``b, r, c, w``: problem, row, column and cost of each allowed pair. Returns (problem, row,
    column) of the chosen allowed pairs.
    """
    n_b = int(b.max()) + 1
    mat = np.full((n_b, m, q), forbidden)
    allowed = np.zeros((n_b, m, q), dtype=bool)
    mat[b, r, c] = w
    allowed[b, r, c] = True
    transposed = m > q
    if transposed:
        mat, allowed = mat.transpose(0, 2, 1), allowed.transpose(0, 2, 1)
    rows, cols = mat.shape[1:]
    perms = np.array(list(itertools.permutations(range(cols), rows)))  # (P, rows)
    choice = np.empty(n_b, dtype=_INT)
    step = max(1, _CHUNK_CELLS // (perms.size or 1))
    for lo in range(0, n_b, step):  # in chunks, to bound the (problems, P, rows) temporary
        total = mat[lo : lo + step, np.arange(rows), perms].sum(axis=2)  # (chunk, P)
        choice[lo : lo + step] = np.argmin(total, axis=1)
    best = perms[choice]  # (n_b, rows)
    bb = np.repeat(np.arange(n_b), rows)
    rr = np.tile(np.arange(rows), n_b)
    cc = best.reshape(-1)
    keep = allowed[bb, rr, cc]
    bb, rr, cc = bb[keep], rr[keep], cc[keep]
    return (bb, cc, rr) if transposed else (bb, rr, cc)


def _local_numbers(labels: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Number the masked nodes 0, 1, ... within their component.

    Returns the masked nodes sorted by component, every node's local number (valid where masked),
    and where each component's run starts in the sorted nodes (components in ascending order).
    """
    nodes = np.flatnonzero(mask)
    nodes = nodes[np.argsort(labels[nodes], kind="stable")]
    lab = labels[nodes]
    new_run = np.ones(lab.size, dtype=bool)
    new_run[1:] = lab[1:] != lab[:-1]
    start = np.flatnonzero(new_run)
    local = np.zeros(labels.size, dtype=_INT)
    local[nodes] = np.arange(nodes.size) - np.repeat(start, np.diff(np.append(start, nodes.size)))
    return nodes, local, start


def _assign(nt: int, npred: int, ti: np.ndarray, pj: np.ndarray, cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-cardinality, then minimum-cost, assignment over the candidate edges."""
    if ti.size == 0:
        return np.zeros(0, _INT), np.zeros(0, _INT)
    n = nt + npred
    graph = coo_matrix((np.ones(ti.size, dtype=np.int8), (ti, nt + pj)), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    lab = labels[ti]
    n_lab = int(labels.max()) + 1
    # Nodes per component that have at least one edge.
    has_edge = np.zeros(n, dtype=bool)
    has_edge[ti] = True
    has_edge[nt + pj] = True
    n_t = np.bincount(labels[:nt][has_edge[:nt]], minlength=n_lab)
    n_p = np.bincount(labels[nt:][has_edge[nt:]], minlength=n_lab)
    simple = (n_t == 1) | (n_p == 1)

    out_t: list[np.ndarray] = []
    out_p: list[np.ndarray] = []

    # Components with a single truth or a single prediction: one pair, the cheapest one.
    e_simple = np.flatnonzero(simple[lab])
    if e_simple.size:
        order = e_simple[np.lexsort((pj[e_simple], ti[e_simple], cost[e_simple], lab[e_simple]))]
        _, first = np.unique(lab[order], return_index=True)
        best = order[first]
        out_t.append(ti[best])
        out_p.append(pj[best])

    # The rest: components with at least two truths and two predictions. Local row/column numbers
    # within each component are computed for all components at once.
    hard = (n_t >= 2) & (n_p >= 2)
    comps = np.flatnonzero(hard)
    if comps.size:
        e_hard = np.flatnonzero(hard[lab])
        e_hard = e_hard[np.argsort(lab[e_hard], kind="stable")]
        t_nodes, t_local, t_start = _local_numbers(labels[:nt], has_edge[:nt] & hard[labels[:nt]])
        p_nodes, p_local, p_start = _local_numbers(labels[nt:], has_edge[nt:] & hard[labels[nt:]])
        e_start = np.searchsorted(lab[e_hard], comps)
        e_count = np.diff(np.append(e_start, e_hard.size))
        edge_k = np.repeat(np.arange(comps.size), e_count)  # component (position in comps) of each edge
        r_all = t_local[ti[e_hard]]
        c_all = p_local[pj[e_hard]]
        w_all = cost[e_hard]
        m_all, q_all = n_t[comps], n_p[comps]
        forbidden = (float(w_all.max()) + 1.0) * (int(np.minimum(m_all, q_all).max()) + 1)
        shapes, shape_of = np.unique(np.stack([m_all, q_all], axis=1), axis=0, return_inverse=True)
        shape_of = shape_of.reshape(-1)
        for s_id, (m, q) in enumerate(shapes.tolist()):
            ks = np.flatnonzero(shape_of == s_id)
            if math.perm(max(m, q), min(m, q)) <= _MAX_ARRANGEMENTS:
                # Small components of one shape, all at once: every arrangement is tried.
                pos = np.full(comps.size, -1)
                pos[ks] = np.arange(ks.size)
                sel = np.flatnonzero(pos[edge_k] >= 0)
                b, ri, ci = _solve_exhaustive(m, q, pos[edge_k[sel]], r_all[sel], c_all[sel], w_all[sel], forbidden)
                out_t.append(t_nodes[t_start[ks[b]] + ri])
                out_p.append(p_nodes[p_start[ks[b]] + ci])
            else:
                for k in ks.tolist():
                    sl = slice(e_start[k], e_start[k] + e_count[k])
                    ri, ci = _solve_sparse(m, q, r_all[sl], c_all[sl], w_all[sl])
                    out_t.append(t_nodes[t_start[k] + ri])
                    out_p.append(p_nodes[p_start[k] + ci])

    tp_t = np.concatenate(out_t).astype(_INT)
    tp_p = np.concatenate(out_p).astype(_INT)
    order = np.argsort(tp_t, kind="stable")
    return tp_t[order], tp_p[order]


def match(
    truth: LocTable,
    pred: LocTable,
    *,
    dim: int = 3,
    max_lat_nm: float = 250.0,
    max_ax_nm: float | None = 500.0,
) -> Matching:
    """Match predictions to ground truth, frame by frame, by a minimum-cost assignment.

    Args:
        truth: ground-truth emitters (``frame, x_nm, y_nm, z_nm`` are used; nm, frames from 0); a
            :class:`LocTable`, or a dict or pandas DataFrame of its columns.
        pred: predicted localizations, same columns.
        dim: 3 matches with lateral and axial thresholds and 3D distances as cost; 2 ignores ``z_nm``.
        max_lat_nm: largest lateral distance of an allowed pair (inclusive).
        max_ax_nm: largest ``|dz|`` of an allowed pair (inclusive; 3D only, ``inf`` to ignore).

    Returns:
        A :class:`Matching`: the most pairs possible, and among those the smallest summed distance.

    Raises:
        InputError: ``dim`` not 2 or 3, a bad threshold, or a non-finite coordinate.

    Example:
        >>> t = LocTable({"frame": [0, 0, 1], "x_nm": [0.0, 11.0, 0.0], "y_nm": [0.0, 0.0, 0.0],
        ...               "z_nm": [0.0, 0.0, 0.0], "photons": [1e3, 1e3, 1e3]})
        >>> p = LocTable({"frame": [0, 0, 2], "x_nm": [10.0, 21.0, 0.0], "y_nm": [0.0, 0.0, 0.0],
        ...               "z_nm": [0.0, 0.0, 0.0], "photons": [1e3, 1e3, 1e3]})
        >>> m = match(t, p)
        >>> m.tp_truth.tolist(), m.tp_pred.tolist(), m.fp.tolist(), m.fn.tolist()
        ([0, 1], [0, 1], [2], [2])
        >>> m.dx.tolist()
        [10.0, 10.0]
    """
    _check_options(dim, max_lat_nm, max_ax_nm)
    truth, pred = as_table(truth, name="truth"), as_table(pred, name="pred")
    coords = ("x_nm", "y_nm", "z_nm") if dim == 3 else ("x_nm", "y_nm")
    for name, table in (("ground-truth", truth), ("predicted", pred)):
        _check_finite(table, coords, name, dim)
    nt, npred = len(truth), len(pred)

    if nt and npred:
        ti, pj, cost = _candidate_pairs(truth, pred, dim, float(max_lat_nm),
                                         float(max_ax_nm) if dim == 3 else math.inf)  # 2D: no axial limit (None too)
        tp_t, tp_p = _assign(nt, npred, ti, pj, cost)
    else:
        tp_t, tp_p = np.zeros(0, _INT), np.zeros(0, _INT)

    matched_t = np.zeros(nt, dtype=bool)
    matched_t[tp_t] = True
    matched_p = np.zeros(npred, dtype=bool)
    matched_p[tp_p] = True
    delta = np.column_stack(
        [pred[c][tp_p] - truth[c][tp_t] for c in ("x_nm", "y_nm", "z_nm")]
    ).reshape(-1, 3)
    return Matching(
        tp_truth=tp_t,
        tp_pred=tp_p,
        fp=np.flatnonzero(~matched_p).astype(_INT),
        fn=np.flatnonzero(~matched_t).astype(_INT),
        delta_nm=delta,
        dim=int(dim),
        max_lat_nm=float(max_lat_nm),
        max_ax_nm=float(max_ax_nm) if dim == 3 else None,
    )
