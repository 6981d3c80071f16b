"""Emitter sampling and blinking.

Fluorophores appear at a continuous start time ``t0`` (uniform), stay on for an exponential time
(mean ``on_time_frames``) and emit a uniform flux (photons per frame while on). Each fluorophore's
photons are split over the frames its on-interval spans, in proportion to the overlap, which gives
one row per (fluorophore, frame): the per-frame emitters that a movie or a training sample shows.

Density is the expected number of *active* emitters per um^2 per frame, an emitter being active in
frame k when its on-interval overlaps ``[k, k + 1)``: with start rate r per frame, that is
``r * (on_time + 1)``.

With ``blinking: false`` every emitter is on for exactly one whole frame (start at the frame's beginning,
on-time 1), so each frame holds Poisson(density x area) emitters at their full flux, independent of the
other frames.

With per-colour on-times (``photon_model.on_time_frames``, ratiometric), each colour k is its own such
process with the active density ``density * fraction_k`` and mean on-time ``tau_k``, so its start rate is
``density * fraction_k / (tau_k + 1)``.

Re-blinking molecules (``blinks_per_molecule`` B > 1; whole movies only, :meth:`Simulator.iter_movie
<plexloc.simulation.simulator.Simulator.iter_movie>`): the on-events above stay as they are (times, on-times, photons,
colours: the density and its meaning do not change) and are grouped into molecules. Per sequence and colour the
events that reach frame 0 or later, in their (random) order of drawing, are cut into consecutive runs of geometric
length with mean B (each event is the molecule's last with probability 1 / B, as photobleaching gives); a run is a
molecule, with a uniform position of its own (same area and z range as before) and its colour. Event times stay
uniform over the movie, so the movie stays stationary. A molecule is never on twice at once: an event that starts
before an earlier event of its molecule has ended moves to another molecule of its sequence and colour (drawn
again, up to 20 times; then it is a molecule of its own). Where two events of a molecule fall in the same frame, that
frame has one row, with the photons of both. ``id`` is then the molecule (unique in the batch); with B = 1 it is the
fluorophore (one on-event), and the random numbers drawn and the result are those of B = 1 exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import Tensor

from plexloc.config.models import EmitterConfig, MovieDriftConfig, PhotonModelConfig


@dataclass
class Emitters:
    """Per-frame emitters, all tensors on one device. Positions in reference-channel nm.

    Attributes:
        xyz_nm: (N, 3) x, y, z.
        photons: (N, C) photons per channel in this frame (before QE).
        frame_ix: (N,) frame index (within the sequence, or ``sample * n_frames + frame`` in a batch).
        id: (N,) identity: the molecule (the same across the frames its on-events span, and over all of its on-events
            with ``blinks_per_molecule`` > 1); unique within the batch.
        color: (N,) colour index (0 unless the photon model is ratiometric).
    """

    xyz_nm: Tensor
    photons: Tensor
    frame_ix: Tensor
    id: Tensor
    color: Tensor

    def __len__(self) -> int:
        return int(self.frame_ix.shape[0])

    @property
    def total_photons(self) -> Tensor:
        return self.photons.sum(dim=1)

    def select(self, index: Tensor) -> Emitters:
        """The emitters ``index`` picks (indices, or a boolean mask: turned into indices once, not once per field)."""
        if isinstance(index, Tensor) and index.dtype == torch.bool:
            index = torch.nonzero(index).squeeze(1)
        return Emitters(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def to(self, device) -> Emitters:
        return Emitters(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def _color_weights(photon_model: PhotonModelConfig, device) -> Tensor:
    """(K,) float64 share of each colour (``color_fractions``, default equal), normalised."""
    k = photon_model.n_colors
    w = torch.tensor(photon_model.color_fractions or [1.0] * k, dtype=torch.float64, device=device)
    return w / w.sum()


def _photon_split(
    flux: Tensor, photon_model: PhotonModelConfig, throughputs: list[float], photons_range, generator, device,
    color: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-channel flux (F, C) and colour (F,) of each fluorophore (``color``: already drawn)."""
    n_f, n_ch = flux.shape[0], len(throughputs)
    if color is None:
        color = torch.zeros(n_f, dtype=torch.int64, device=device)
        if photon_model.kind == "ratiometric" and n_f:
            color = torch.multinomial(_color_weights(photon_model, device), n_f, replacement=True, generator=generator)
    if photon_model.kind == "linked":
        per_ch = flux[:, None] * torch.tensor(throughputs, dtype=flux.dtype, device=device)[None, :]
    elif photon_model.kind == "ratiometric":
        ratios = torch.tensor(photon_model.ratios, dtype=flux.dtype, device=device)  # (K, C)
        per_ch = flux[:, None] * ratios[color]
    else:  # independent: one flux per channel, each uniform in its channel's range (default the emitters')
        ranges = photon_model.channel_photons_range or [photons_range] * n_ch
        lo = torch.tensor([float(r[0]) for r in ranges], dtype=flux.dtype, device=device)
        hi = torch.tensor([float(r[1]) for r in ranges], dtype=flux.dtype, device=device)
        u = torch.rand(n_f, n_ch, generator=generator, device=device, dtype=flux.dtype)
        per_ch = lo + (hi - lo) * u
    return per_ch, color


def sample_emitters(
    config: EmitterConfig,
    *,
    n_sequences: int,
    n_frames: int,
    fov_nm: tuple[float, float],
    photon_model: PhotonModelConfig | None = None,
    throughputs: list[float] | None = None,
    density_per_um2: float | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    margin_nm: float = 0.0,
    sequence_density: Tensor | None = None,
    blinks_per_molecule: float = 1.0,
) -> Emitters:
    """Sample blinking emitters for ``n_sequences`` independent sequences of ``n_frames`` frames.

    Positions are uniform over the field of view ``fov_nm = (width, height)`` and ``config.z_range_nm``.
    ``frame_ix`` of the result is ``sequence * n_frames + frame``; rows are sorted by it.
    ``density_per_um2`` overrides ``config.density_per_um2``. ``margin_nm`` widens the area on every side
    (same density), so that emitters just outside the field of view light its edges (and, for several
    channels, enter a shifted channel's image). ``sequence_density`` (n_sequences,), emitters/µm², gives each
    sequence a density of its own instead (a Poisson count per sequence, as for one density).
    ``blinks_per_molecule`` (>= 1; not read from ``config``: the caller passes ``config.blinks_per_molecule`` for a
    whole movie) groups the on-events of every sequence into molecules that blink that many times on average (module
    docstring); 1: every on-event is a molecule of its own, exactly as without it.
    """
    photon_model = photon_model or PhotonModelConfig()
    throughputs = throughputs or [1.0]
    blinks = float(blinks_per_molecule)
    if not (math.isfinite(blinks) and blinks >= 1.0):
        raise ValueError(f"blinks_per_molecule must be a finite number >= 1, got {blinks_per_molecule!r}")
    if blinks != 1.0 and not config.blinking:
        raise ValueError(f"blinks_per_molecule ({blinks:g}) needs emitters.blinking: true")
    density = config.density_per_um2 if density_per_um2 is None else float(density_per_um2)
    per_color = photon_model.kind == "ratiometric" and photon_model.on_time_frames is not None
    whole_frames = not (config.blinking or per_color)  # a configuration refuses per-colour on-times without blinking
    if per_color:  # one blinking process per colour, each with its own on-time
        taus = torch.tensor(photon_model.on_time_frames, dtype=torch.float64, device=device)
        color_rates = _color_weights(photon_model, device) / (taus + 1.0)  # starts per frame per unit density
        tau_max = float(taus.max())
        rate_per_density = float(color_rates.sum())
    elif whole_frames:  # each emitter starts at a frame's beginning and is on for that whole frame
        tau_max, rate_per_density = 0.0, 1.0
    else:
        tau_max = config.on_time_frames
        rate_per_density = 1.0 / (tau_max + 1.0)
    lead_in = 5.0 * tau_max  # fluorophores switched on before frame 0 are still on at frame 0
    m = float(margin_nm)
    area_um2 = (fov_nm[0] + 2 * m) * (fov_nm[1] + 2 * m) * 1e-6
    span = n_frames + lead_in
    weights = None
    if sequence_density is not None:
        weights = torch.as_tensor(sequence_density, dtype=torch.float64, device=device).reshape(-1)
        if weights.numel() != n_sequences or bool((~torch.isfinite(weights) | (weights < 0)).any()):
            raise ValueError(f"sequence_density needs {n_sequences} finite densities >= 0, got {weights.tolist()}")
        density = float(weights.sum()) / max(n_sequences, 1)  # the mean: the total count is Poisson over all sequences
    rate = density * area_um2 * rate_per_density  # starts per frame and sequence
    expected = torch.tensor(rate * span * n_sequences, dtype=torch.float64, device=device)
    n_f = int(torch.poisson(expected.reshape(1), generator=generator).item()) if density > 0 else 0

    def uniform(lo: float, hi: float, n: int = n_f) -> Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=generator, device=device, dtype=dtype)

    color = None
    if per_color:
        color = torch.zeros(n_f, dtype=torch.int64, device=device)
        if n_f:
            color = torch.multinomial(color_rates / color_rates.sum(), n_f, replacement=True, generator=generator)
        tau: Tensor | float = taus.to(dtype)[color]
    else:
        tau = config.on_time_frames
    if weights is None or n_f == 0:
        seq = torch.randint(0, max(n_sequences, 1), (n_f,), generator=generator, device=device)
    else:  # a Poisson total spread over the sequences in proportion to their densities: Poisson per sequence
        seq = torch.multinomial(weights, n_f, replacement=True, generator=generator)
    if whole_frames:
        t0 = torch.randint(0, n_frames, (n_f,), generator=generator, device=device).to(dtype)
        on = torch.ones(n_f, device=device, dtype=dtype)
    else:
        t0 = uniform(-lead_in, float(n_frames))
        on = -tau * torch.log1p(-torch.rand(n_f, generator=generator, device=device, dtype=dtype).clamp_max(1 - 1e-7))
    t1 = t0 + on
    xyz = torch.stack(
        [uniform(-m, fov_nm[0] + m), uniform(-m, fov_nm[1] + m), uniform(*config.z_range_nm)], dim=1
    )
    flux = uniform(*config.photons_range)
    flux_ch, color = _photon_split(flux, photon_model, throughputs, config.photons_range, generator, device, color)
    if blinks != 1.0:  # after every draw of B = 1, so that B = 1 draws exactly what it always did
        return _molecule_rows(t0, t1, seq, color, flux_ch, blinks, n_sequences=n_sequences, n_frames=n_frames,
                              area_nm=((-m, fov_nm[0] + m), (-m, fov_nm[1] + m), tuple(config.z_range_nm)),
                              generator=generator, device=device, dtype=dtype)

    fid, frame_ix, overlap = _frame_rows(t0, t1, seq, n_frames, device=device, dtype=dtype)
    order = torch.argsort(frame_ix, stable=True)
    fid, frame_ix, overlap = fid[order], frame_ix[order], overlap[order]
    return Emitters(
        xyz_nm=xyz[fid],
        photons=flux_ch[fid] * overlap[:, None],
        frame_ix=frame_ix,
        id=fid,
        color=color[fid],
    )


def _frame_rows(t0: Tensor, t1: Tensor, seq: Tensor, n_frames: int, *, device, dtype) -> tuple[Tensor, Tensor, Tensor]:
    """Every on-event ``[t0, t1)`` over the frames of ``[0, n_frames)`` it overlaps: for each such (event, frame), the
    event's index, ``seq * n_frames + frame`` and the overlap (fraction of the frame), in event order."""
    first = torch.floor(t0).clamp_min(0)
    last = torch.floor(t1).clamp_max(n_frames - 1)
    n_span = (last - first + 1).clamp_min(0).to(torch.int64)
    # the sizes given (one host-device synchronisation for the total, none per repeat_interleave), and the rows kept by
    # index (a boolean mask synchronises once per tensor it selects from)
    total = int(n_span.sum())
    fid = torch.repeat_interleave(torch.arange(int(t0.shape[0]), device=device), n_span, output_size=total)
    offset = torch.arange(total, device=device) - torch.repeat_interleave(torch.cumsum(n_span, 0) - n_span, n_span,
                                                                           output_size=total)
    frame = first[fid] + offset.to(dtype)
    overlap = torch.minimum(t1[fid], frame + 1) - torch.maximum(t0[fid], frame)
    keep = torch.nonzero(overlap > 0).squeeze(1)
    fid, frame, overlap = fid[keep], frame[keep], overlap[keep]
    return fid, seq[fid] * n_frames + frame.to(torch.int64), overlap


#: rounds of moving an event that overlaps an earlier event of its molecule to another molecule; the rest (rare in a
#: movie much longer than B on-times) become molecules of their own
_OVERLAP_ROUNDS = 20


def _group_molecules(t0: Tensor, t1: Tensor, group: Tensor, n_groups: int, blinks: float, generator, device) -> Tensor:
    """(F,) molecule of every event (``-1`` for events with ``group < 0``), molecules numbered 0.. and each inside one
    group: the events of each group in drawing order cut into runs of geometric length with mean ``blinks``, then
    events that overlap in time an earlier event of their molecule moved (see the module docstring)."""
    n_f = int(t0.shape[0])
    mol = torch.full((n_f,), -1, dtype=torch.int64, device=device)
    ev = torch.nonzero(group >= 0).squeeze(1)
    if ev.numel() == 0:
        return mol
    ev = ev[torch.argsort(group[ev], stable=True)]  # by group, drawing order within a group (events are i.i.d.)
    n_ev = int(ev.numel())
    g_count = torch.bincount(group[ev], minlength=n_groups)
    # run lengths: geometric (k >= 1) with mean `blinks`, by inversion, until they cover every event
    log_q = math.log1p(-1.0 / blinks)
    sizes = []
    covered = 0
    while covered < n_ev:
        n_draw = int((n_ev - covered) / blinks + 4.0 * math.sqrt(n_ev - covered) + 16)
        u = torch.rand(n_draw, generator=generator, device=device, dtype=torch.float64)
        k = 1 + torch.floor(torch.log1p(-u.clamp_max(1 - 1e-12)) / log_q).to(torch.int64)
        sizes.append(k)
        covered += int(k.sum())
    ends = torch.cumsum(torch.cat(sizes), 0)
    ends = ends[ends < n_ev]
    # a group's end ends its last run too: molecules never span two sequences or two colours
    cuts = torch.unique(torch.cat([ends, torch.cumsum(g_count, 0)[g_count > 0]]))  # sorted, the last is n_ev
    starts = torch.cat([torch.zeros(1, dtype=torch.int64, device=device), cuts[:-1]])
    n_mol = int(cuts.numel())
    run = torch.repeat_interleave(torch.arange(n_mol, device=device), cuts - starts, output_size=n_ev)
    # the molecules of each group: a contiguous block of ids
    mol_group = group[ev[starts]]
    m_count = torch.bincount(mol_group, minlength=n_groups)
    m_first = torch.cumsum(m_count, 0) - m_count
    ev_group = group[ev]
    t0e, t1e = t0[ev].double(), t1[ev].double()
    big = float((t1e.max() - t0e.min()).item()) + 2.0  # one molecule's times never reach the next one's offset
    for round_ in range(_OVERLAP_ROUNDS + 1):
        key = run.double() * big
        order = torch.argsort(t0e + key)  # by molecule, then start time
        end = (t1e + key)[order]
        before = torch.cat([torch.full((1,), -math.inf, dtype=torch.float64, device=device),
                            torch.cummax(end, 0).values[:-1]])  # the latest end among the earlier events
        bad = order[(t0e + key)[order] < before]  # starts before an earlier event of its molecule has ended
        if bad.numel() == 0:
            break
        if round_ == _OVERLAP_ROUNDS:  # molecules of their own
            run[bad] = n_mol + torch.arange(int(bad.numel()), device=device)
            n_mol += int(bad.numel())
            break
        gb = ev_group[bad]
        u = torch.rand(int(bad.numel()), generator=generator, device=device, dtype=torch.float64)
        run[bad] = m_first[gb] + torch.floor(u * m_count[gb]).to(torch.int64).clamp_max(m_count[gb] - 1)
    # number the molecules that kept an event 0.. (a moved event can leave a molecule without any)
    used, run = torch.unique(run, return_inverse=True)
    mol[ev] = run
    return mol


def _molecule_rows(
    t0: Tensor, t1: Tensor, seq: Tensor, color: Tensor, flux_ch: Tensor, blinks: float, *, n_sequences: int,
    n_frames: int, area_nm, generator, device, dtype,
) -> Emitters:
    """The per-frame rows of on-events ``[t0, t1)`` grouped into re-blinking molecules (module docstring)."""
    n_colors = int(color.max()) + 1 if color.numel() else 1
    visible = t1 > 0  # events that end before frame 0 show nowhere and join no molecule
    group = torch.where(visible, seq * n_colors + color, torch.full_like(seq, -1))
    mol = _group_molecules(t0, t1, group, max(n_sequences, 1) * n_colors, blinks, generator, device)
    n_mol = int(mol.max()) + 1 if mol.numel() else 0
    (xa, xb), (ya, yb), (za, zb) = area_nm
    u = torch.rand(n_mol, 3, generator=generator, device=device, dtype=dtype)
    lo = torch.tensor([xa, ya, za], device=device, dtype=dtype)
    hi = torch.tensor([xb, yb, zb], device=device, dtype=dtype)
    xyz_mol = lo + (hi - lo) * u

    # every event over the frames its on-interval touches, as for B = 1 (events that end before frame 0: none)
    fid, frame_ix, overlap = _frame_rows(t0, t1, seq, n_frames, device=device, dtype=dtype)
    photons = flux_ch[fid] * overlap[:, None]
    # one row per molecule and frame: two events of a molecule in one frame add their photons
    n_ix = max(n_sequences, 1) * n_frames
    row_key, inv = torch.unique(mol[fid] * n_ix + frame_ix, return_inverse=True)
    merged = torch.zeros(int(row_key.numel()), photons.shape[1], device=device, dtype=photons.dtype)
    merged.index_add_(0, inv, photons)
    rep = torch.zeros(int(row_key.numel()), dtype=torch.int64, device=device)
    rep.scatter_(0, inv, fid)  # an event of each row: colour (the molecule's)
    frame_ix = row_key % n_ix
    mol_row = row_key // n_ix
    order = torch.argsort(frame_ix, stable=True)
    mol_row, frame_ix = mol_row[order], frame_ix[order]
    return Emitters(
        xyz_nm=xyz_mol[mol_row],
        photons=merged[order],
        frame_ix=frame_ix,
        id=mol_row,
        color=color[rep[order]],
    )


def movie_drift_nm(config: MovieDriftConfig, n_frames: int) -> np.ndarray | None:
    """``(n_frames, 3)`` stage drift of every frame of a simulated movie (nm, x y z; frame 0 at 0), or None where
    ``config`` has none (:class:`~plexloc.config.models.MovieDriftConfig`: linear, plus a smooth sine wobble per
    axis drawn from its own ``seed``)."""
    if not config.active or n_frames < 1:
        return None
    t = np.arange(n_frames, dtype=np.float64) / max(n_frames - 1, 1)
    drift = t[:, None] * np.asarray(config.linear_nm, dtype=np.float64)[None, :]
    rng = np.random.default_rng(config.seed)
    freq = config.wobble_cycles * rng.uniform(0.5, 1.5, 3)
    phase = rng.uniform(0.0, 2.0 * np.pi, 3)
    wobble = np.sin(2.0 * np.pi * freq[None, :] * t[:, None] + phase[None, :]) - np.sin(phase)[None, :]
    return drift + np.asarray(config.wobble_nm, dtype=np.float64)[None, :] * wobble


def drifted(emitters: Emitters, drift_nm: np.ndarray | None, n_frames: int) -> Emitters:
    """The emitters displaced by the drift of their frame (``drift_nm`` ``(n_frames, 3)``, :func:`movie_drift_nm`;
    ``frame_ix`` is ``sequence * n_frames + frame``); the same object where ``drift_nm`` is None."""
    if drift_nm is None or not len(emitters):
        return emitters
    d = torch.as_tensor(drift_nm, dtype=emitters.xyz_nm.dtype, device=emitters.xyz_nm.device)
    return Emitters(emitters.xyz_nm + d[emitters.frame_ix % n_frames], emitters.photons, emitters.frame_ix,
                    emitters.id, emitters.color)
