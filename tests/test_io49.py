"""Session 49 (helper io): movies on their way into a network fit.

A Zstandard-compressed TIFF opened on a Python without a Zstandard decoder (no imagecodecs, Python < 3.14) is
refused when it is opened, naming the file, the compression and the fix (it opened, and the fit failed at its first
read on 'ModuleNotFoundError: No module named 'compression''). A multi-channel model's CPU pass counts its channels.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
import tifffile
import torch

from plexloc.errors import InputError
from plexloc.infer.predict import Predictor
from plexloc.io.tiff import open_movie


def _zstd_raw_blocks(data, level=None, *, out=None) -> bytes:
    """A valid Zstandard frame of raw (stored) blocks: the 4-byte magic, a frame header with a 128 KiB window and no
    content size, and blocks of at most 128 KiB whose 3-byte headers say 'raw' (RFC 8878). Any Zstandard decoder reads
    it; it lets tifffile write a Zstandard TIFF where no Zstandard encoder is installed."""
    del level, out
    data = bytes(data)
    parts = [b"\x28\xb5\x2f\xfd", b"\x00\x38"]
    size = 1 << 17
    chunks = [data[i:i + size] for i in range(0, len(data), size)] or [b""]
    for k, chunk in enumerate(chunks):
        parts += [struct.pack("<I", (len(chunk) << 3) | int(k == len(chunks) - 1))[:3], chunk]
    return b"".join(parts)


def write_zstd_tiff(path, frames) -> None:
    """``frames`` as a Zstandard-compressed TIFF (tifffile with the raw-block encoder above, put in its codec table
    for the call)."""
    table = tifffile.TIFF.COMPRESSORS
    saved = table._codecs.get(50000)
    table._codecs[50000] = _zstd_raw_blocks
    try:
        tifffile.imwrite(path, frames, compression="zstd", photometric="minisblack")
    finally:
        if saved is None:
            table._codecs.pop(50000, None)
        else:
            table._codecs[50000] = saved


def _zstd_decodable() -> bool:
    try:
        tifffile.TIFF.DECOMPRESSORS[50000](_zstd_raw_blocks(b"abc"))
    except (ImportError, KeyError):
        return False
    return True


FRAMES = (np.arange(3 * 16 * 16).reshape(3, 16, 16) % 1000).astype(np.uint16)


@pytest.mark.skipif(_zstd_decodable(), reason="a Zstandard decoder is installed: the movie is read")
def test_a_zstd_movie_without_a_decoder_is_refused_when_opened_naming_file_compression_and_fix(tmp_path):
    path = tmp_path / "zstd.tif"
    write_zstd_tiff(path, FRAMES)
    with pytest.raises(InputError) as err:  # at opening, not at the fit's first read
        open_movie(path).close()
    text = str(err.value)
    assert str(path) in text and "ZSTD (50000)" in text and "pip install imagecodecs" in text
    # a folder whose second file is one: refused when the folder is opened, naming that file
    folder = tmp_path / "folder"
    folder.mkdir()
    tifffile.imwrite(folder / "img_0.tif", FRAMES, photometric="minisblack")
    write_zstd_tiff(folder / "img_1.tif", FRAMES)
    with pytest.raises(InputError, match=r"img_1\.tif: its pixels are compressed ZSTD"):
        open_movie(folder).close()


def test_info_on_a_zstd_movie_without_a_decoder_fails_with_one_line(tmp_path, capsys):
    from plexloc.cli.main import main

    path = tmp_path / "zstd.tif"
    write_zstd_tiff(path, FRAMES)
    if _zstd_decodable():  # the frames read as written (the raw-block encoder is a valid Zstandard frame)
        with open_movie(path) as movie:
            np.testing.assert_array_equal(movie[:], FRAMES)
        return
    assert main(["info", str(path)]) != 0
    err = capsys.readouterr().err
    assert "ZSTD" in err and "pip install imagecodecs" in err and "Traceback" not in err


def test_deflate_lzma_and_packbits_read_without_imagecodecs(tmp_path):
    for comp in ("zlib", "lzma"):
        tifffile.imwrite(tmp_path / f"{comp}.tif", FRAMES, compression=comp, photometric="minisblack")
        with open_movie(tmp_path / f"{comp}.tif") as movie:
            np.testing.assert_array_equal(movie[:], FRAMES)
    pil = pytest.importorskip("PIL.Image")
    images = [pil.fromarray(f) for f in FRAMES]
    images[0].save(tmp_path / "pb.tif", save_all=True, append_images=images[1:], compression="packbits")
    with open_movie(tmp_path / "pb.tif") as movie:
        np.testing.assert_array_equal(movie[:], FRAMES)


def _two_channel_model():
    from plexloc.nets.localizer import Localizer, LocalizerSpec

    torch.manual_seed(5)
    spec = LocalizerSpec(n_channels=2, features=4, depth=1, union_features=4, union_depth=1, input_offset=[50.0] * 2,
                         input_scale=[20.0] * 2)
    net = Localizer(spec)
    with torch.no_grad():
        net.head_prob[-1].bias.fill_(0.0)  # plenty of detections to compare
    return net.eval()


def test_a_cpu_pass_counts_every_channel_and_gives_the_same_localizations():
    """A 2-channel model's pass of ``pass_pixels`` holds half the frames of a 1-channel model's: its activations (the
    features each channel's frame U-Net keeps for the union U-Net) grow with the channels."""
    net = _two_channel_model()
    block = torch.rand(8, 2, 32, 32) * 100 + 20  # 6 frames and their neighbours
    p = Predictor(net, precision="float32", pass_pixels=2 * 2 * 32 * 32)
    assert p._pass_frames(block) == 2  # 2 frames x 2 channels x 32 x 32 (4 before: the channels not counted)
    seen = []
    features = p._frame_features
    p._frame_features = lambda x, aux=None: (seen.append(int(x[:, :1].numel())), features(x, aux))[1]
    got = p.localize_frames(block)
    assert max(seen) <= 4 * 32 * 32  # a pass's new frames: 2 + the window's 2, each channel's pixels counted once
    whole = Predictor(net, precision="float32", pass_pixels=0).localize_frames(block)
    assert len(got) == len(whole) > 10
    assert torch.equal(got.sample, whole.sample) and torch.equal(got.pixel_row, whole.pixel_row)
    assert torch.allclose(got.x_nm, whole.x_nm, atol=1e-3) and torch.allclose(got.photons, whole.photons, rtol=1e-4)


def test_checking_a_training_configurations_camera_maps_reads_no_map_pixels(tmp_path, monkeypatch):
    """``plexloc train`` checked the maps' shapes against frame_size by building the cameras (every map file read),
    then built the simulator, which read them again. The check reads the files' headers now; the simulator reads each
    map once; the check's refusal of maps smaller than the frame is unchanged."""
    import copy

    import yaml
    from conftest import TINY_TRAIN, full_chip_camera

    from plexloc.config import TrainConfig
    from plexloc.simulation import Simulator
    from plexloc.simulation.simulator import check_camera_maps

    cam = full_chip_camera(tmp_path, shape=(20, 24))
    cfg = copy.deepcopy(TINY_TRAIN)
    cfg["camera"] = yaml.safe_load(cam.read_text())
    config = TrainConfig.model_validate(cfg)
    reads: list[str] = []
    load = np.load

    def counted(path, *args, **kw):
        if kw.get("mmap_mode") is None:
            reads.append(str(path))
        return load(path, *args, **kw)

    monkeypatch.setattr(np, "load", counted)
    assert check_camera_maps(config.simulation()) == {0: (20, 24)}
    assert reads == []
    Simulator(config.simulation())
    assert sorted(reads) == sorted(str(tmp_path / f) for f in ("gain.npy", "off.npy", "var.npy"))
    small = copy.deepcopy(cfg)
    small["frame_size"] = [24, 24]
    with pytest.raises(InputError, match=r"camera: the sCMOS maps \(e_per_adu: .*gain\.npy, baseline: .*off\.npy, "
                                         r"read_variance: .*var\.npy\) are 20x24 px .* frame_size, the simulated frame"):
        check_camera_maps(TrainConfig.model_validate(small).simulation())
    broken = copy.deepcopy(cfg)
    broken["camera"]["baseline"] = str(tmp_path / "missing.npy")
    with pytest.raises(InputError, match=r"missing\.npy: sCMOS map for 'baseline' not found"):
        check_camera_maps(TrainConfig.model_validate(broken).simulation())


@pytest.fixture(scope="module")
def run_and_raw(tmp_path_factory):
    """A run folder (random weights, TINY_TRAIN's EMCCD: baseline 100, gain 300, 45 e-/ADU) and a simulated raw movie
    of 16 frames of 32 x 32 ADU (max about 3600) that the EMCCD took."""
    import copy

    from conftest import TINY_TRAIN
    from test_infer import _random_model

    from plexloc.config import TrainConfig
    from plexloc.nets.io import save_model
    from plexloc.simulation import Simulator

    root = tmp_path_factory.mktemp("io49")
    (root / "run").mkdir()
    save_model(root / "run" / "model.pt", _random_model(2),
               TrainConfig.model_validate(TINY_TRAIN).model_dump(mode="json"), meta={})
    cfg = copy.deepcopy(TINY_TRAIN)
    cfg["frame_size"] = [32, 32]
    mov = Simulator(TrainConfig.model_validate(cfg).simulation()).simulate_movie(
        16, generator=torch.Generator().manual_seed(0))
    return root / "run", mov.frames[0].numpy().astype(np.uint16)


@pytest.mark.filterwarnings("always::plexloc.camera.check.CameraWarning")  # the CLI prints it (session 50)
def test_a_movie_clipped_below_any_full_scale_flags_its_rows(tmp_path, run_and_raw, capsys):
    """A 16-bit movie clipped at 1000 ADU (a full well, not a 2^k - 1 full scale; no saturation_adu set): 5 % of its
    pixels sit there, and the fit flagged no row (saturated_px 0 everywhere) and said nothing. The pile-up is the
    clipping level now: the rows whose spot reaches it are flagged and counted in the fit's summary."""
    from plexloc.cli.main import main
    from plexloc.io.tiff import write_movie

    run, raw = run_and_raw
    clipped = np.minimum(raw, 1000)
    assert (clipped == 1000).mean() > 0.02
    write_movie(tmp_path / "clip.tif", clipped)
    assert main(["fit", str(tmp_path / "clip.tif"), "--model", str(run), "--out", str(tmp_path / "c.csv"),
                 "--device", "cpu", "--precision", "float32"]) == 0
    err = capsys.readouterr().err
    import pandas as pd

    table = pd.read_csv(tmp_path / "c.csv")
    flagged = int((table["saturated_px"] > 0).sum())
    assert flagged > 0.1 * len(table)
    assert f"{flagged} rows touch pixels clipped at 1000 ADU (where the movie's pixels pile up)" in err
    assert "the pixel type's maximum" not in err and "2^" not in err  # the camera check's words are for other levels
    assert "sit at exactly 1000 ADU, piled up there" in err  # the camera check says it (session 50)
    # the unclipped movie: no level of its own, no row flagged
    write_movie(tmp_path / "raw.tif", raw)
    assert main(["fit", str(tmp_path / "raw.tif"), "--model", str(run), "--out", str(tmp_path / "r.csv"),
                 "--device", "cpu", "--precision", "float32"]) == 0
    assert "clipped" not in capsys.readouterr().err
    assert int((pd.read_csv(tmp_path / "r.csv")["saturated_px"] > 0).sum()) == 0


def test_piled_up_level_needs_a_pile_up_at_several_pixels():
    from plexloc.infer.fit import piled_up_level

    rng = np.random.default_rng(1)
    dim = rng.poisson(5.0, size=(20, 32, 32)).astype(np.uint16)  # a dim movie: its largest values are rare
    assert piled_up_level(dim) is None
    hot = dim.copy()
    hot[:, 4, 7] = 900  # a hot pixel stuck at the movie's maximum: one place
    assert piled_up_level(hot) is None
    clipped = np.minimum(rng.poisson(300.0, size=(20, 32, 32)), 320).astype(np.uint16)
    assert piled_up_level(clipped) == 320.0
    assert piled_up_level(clipped.astype(np.float32)) is None  # a float movie's level is its camera's setting


def test_a_jpeg_movie_read_with_imagecodecs_is_warned_lossy(tmp_path):
    """JPEG-compressed frames are not the camera's counts; with imagecodecs installed they were read without a word
    (8-bit frames of values 0..255 came back changed by up to several counts)."""
    pytest.importorskip("imagecodecs")
    pil = pytest.importorskip("PIL.Image")
    from plexloc.io.tiff import MovieWarning

    frames = (FRAMES % 256).astype(np.uint8)
    images = [pil.fromarray(f) for f in frames]
    images[0].save(tmp_path / "j.tif", save_all=True, append_images=images[1:], compression="jpeg")
    with pytest.warns(MovieWarning, match=r"j\.tif: its pixels are compressed JPEG \(7\), which is lossy"):
        open_movie(tmp_path / "j.tif").close()


def test_a_micro_manager_data_set_fits_through_its_first_file_or_its_folder_as_one_movie(tmp_path, run_and_raw):
    """A multi-file OME-TIFF as Micro-Manager saves one acquisition in its own folder (the first file's OME-XML lists
    every plane, the others point to it): fitted through its first file or through the folder, every frame is read
    once and in order, and the table is the single-file movie's (frames 0..15). The folder was refused ('open the
    data set's first file instead of the folder')."""
    import pandas as pd
    from test_bigmovie47 import _ome_data_set

    from plexloc.cli.main import main
    from plexloc.io.tiff import write_movie

    run, raw = run_and_raw
    folder = tmp_path / "run_1"
    folder.mkdir()
    paths, _ = _ome_data_set(folder, n_files=2, per_file=8, shape=raw.shape[1:])
    for k, path in enumerate(paths):  # the simulated frames, with each file's own OME description
        with tifffile.TiffFile(path) as tf:
            desc = tf.pages[0].description
        with tifffile.TiffWriter(path) as tw:
            tw.write(raw[k * 8:(k + 1) * 8], description=desc, photometric="minisblack", metadata=None,
                     contiguous=True)
    write_movie(tmp_path / "one.tif", raw)
    tables = {}
    for name, movie in (("one", tmp_path / "one.tif"), ("first", paths[0]), ("folder", folder)):
        out = tmp_path / f"{name}.csv"
        assert main(["fit", str(movie), "--model", str(run), "--out", str(out), "--device", "cpu",
                     "--precision", "float32"]) == 0
        tables[name] = pd.read_csv(out)
    assert sorted(set(tables["one"]["frame"])) == list(range(16))
    pd.testing.assert_frame_equal(tables["first"], tables["one"])
    pd.testing.assert_frame_equal(tables["folder"], tables["one"])


@pytest.mark.parametrize("writer", ["zlib", "pages"])
def test_a_folders_last_file_cut_short_in_its_last_pixels_is_refused_when_the_folder_is_opened(tmp_path, writer):
    """A file whose page headers are whole but whose last frame's pixels (compressed, or written page by page) run past
    its end opened, and the fit failed on 'cannot read frames 0..7 (ValueError: failed to read 2048 bytes, got
    1498)' when it reached that file: after fitting every file of the folder before it."""
    frames = np.random.default_rng(0).integers(100, 4000, size=(8, 32, 32)).astype(np.uint16)
    for k in range(3):
        path = tmp_path / f"img_{k}.tif"
        if writer == "zlib":
            tifffile.imwrite(path, frames, compression="zlib", photometric="minisblack")
        else:
            for f in frames:
                tifffile.imwrite(path, f, append=True, photometric="minisblack")
    last = tmp_path / "img_2.tif"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) - 500])
    with pytest.raises(InputError, match=r"img_2\.tif: is truncated: the pixels of its last frame \(7\) end at byte "
                                         rf"\d+, but the file has {len(data) - 500} bytes"):
        open_movie(tmp_path).close()
    with open_movie(tmp_path / "img_0.tif") as movie:  # whole files open as before
        np.testing.assert_array_equal(movie[:], frames)
