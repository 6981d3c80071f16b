"""Camera movies as TIFF: read whole, stream frame ranges, write atomically.

Every movie is handled as an array of shape ``(T, H, W)``: ``T`` frames of ``H`` rows (y) and ``W``
columns (x). Raw camera frames are ADU (see ``docs/conventions.md``); this module converts nothing.

Supported inputs: a single-page or multi-page TIFF, BigTIFF, OME-TIFF (the first image series: an OME-TIFF
holding several images, e.g. stage positions, is read as its first, with a warning; another TIFF of several image
series of one frame shape, e.g. a movie written in chunks with ``append=True``, is read as one movie, with a warning
naming the series), and a folder of TIFF files taken in natural sort order (``file2.tif`` before ``file10.tif``), each of which
may hold several frames (``.tif``, ``.tiff`` and BigTIFF's ``.btf``, ``.tf8``); a folder whose numbered files miss a
number (``img_0``, ``img_1``, ``img_3``), or one of whose files holds no frame, is refused (every later frame number
would shift), and so is a folder whose files follow several name patterns (``dark.tif`` beside ``img_0.tif``, ...;
one file whose stem begins every other name, ``movie.tif`` beside ``movie_X2.tif``, is a split acquisition's first
part) or that holds Micro-Manager image files of several channels, positions or z planes (read in name order they
would follow each other as one movie). Singleton axes other than the last two are dropped (a ``(T, 1, H, W)``
series is read as ``(T, H, W)``); any other rank, or RGB/multi-sample images, are refused. Pixel
types: unsigned and signed integers, float32 and float64. Compressed pixels are read where tifffile decodes them
(deflate/zlib, PackBits, LZMA; Zstandard with the ``imagecodecs`` package or on Python 3.14 and later; LZW, JPEG and
LERC only with ``imagecodecs``, else the file is refused when it is opened, with the command that installs it). A multi-file OME-TIFF one of whose files cannot be read
is refused (tifffile would give its frames as zeros); a later file of one opened alone is read with a warning.

Streaming (:func:`open_movie`) memory-maps a file whose image data are stored uncompressed in one
contiguous block (the mapped pages of the frames read are dropped from the process's memory once copied out, so its
resident memory stays flat however long the movie; of a folder's files at most :data:`MAX_OPEN_FILES` besides the
first are held open at once, so that a folder of thousands of files stays within the open-file limit), and otherwise reads only the TIFF pages that a request touches (a file whose pages
are not one frame each, e.g. tiled volumes, is read whole once). A multi-file data set (OME-TIFF, or a
Micro-Manager stack split into ``..._MMStack_Pos0.ome.tif``, ``..._MMStack_Pos0_1.ome.tif``, ...) is opened
through its first file, whose series spans the others; a folder whose TIFF files are those of one such data set (as
Micro-Manager saves an acquisition) is read so too, and a folder holding more (another position's, other TIFFs) is
refused (its files would each give the whole series).

A memory-mapped file that is truncated while it is read gives an :class:`InputError` naming the frames (touching
the mapped pages beyond its new end would kill the process with SIGBUS).

:attr:`MovieReader.roi_offset` is the camera ROI's position on the chip where the metadata record it
(Micro-Manager; see :mod:`plexloc.io.roi`), read from the first file on first access.

Writers (:func:`write_movie`, :class:`MovieWriter`) write to a temporary file next to the target and
rename it into place only when everything was written, so a failed or interrupted write never
leaves a partial movie. For an integer target dtype, values are rounded to the nearest integer and
must fit the dtype's range (they are never wrapped or clipped).

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> frames = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    >>> write_movie(d / "m.tif", frames)
    >>> with open_movie(d / "m.tif") as movie:
    ...     len(movie), movie.frame_shape, movie[1:3].shape
    (3, (4, 5), (2, 4, 5))
    >>> bool((read_movie(d / "m.tif") == frames).all())
    True
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import re
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import tifffile

from plexloc.errors import InputError
from plexloc.io._atomic import atomic_path
from plexloc.io._metadata import first_element, local_name, ome_root
from plexloc.io.pixel_size import PixelSize, read_pixel_size
from plexloc.io.roi import RoiOffset, read_roi_offset

__all__ = ["CHUNK_PIXELS", "ArrayMovie", "MovieReader", "MovieWarning", "MovieWriter", "channel_movies",
           "frames_per_chunk", "open_movie", "read_movie", "write_movie"]

class MovieWarning(UserWarning):
    """A TIFF movie is read, but not all of it or not as one acquisition may be (a later file of a multi-file data set
    opened alone, several OME images or image series, fewer frames than its metadata declare); the message names the
    file and the fix. plexloc's commands show it as one line (``plexloc fit: warning: ...``), not as Python's
    warning with this module's file and line."""


#: File suffixes taken from a folder of TIFF files (compared case-insensitively).
TIFF_SUFFIXES: tuple[str, ...] = (".tif", ".tiff", ".btf", ".tf8")  # .btf, .tf8: BigTIFF's own suffixes
#: A folder's files held open at once while its frames are read (its first file stays open: its metadata): the others
#: are opened when read and closed again, so that a folder of thousands of files stays within the open-file limit
MAX_OPEN_FILES: int = 8
#: Movies larger than this are written as BigTIFF (classic TIFF offsets stop at 4 GiB).
BIGTIFF_THRESHOLD_BYTES: int = 2 * 1024**3
#: the most pixels (all channels) a chunk of frames read at once holds, for the network fit and the MLE fit alike
#: (:func:`frames_per_chunk`): 256 frames of 256 x 256, fewer of larger frames (16 of 1000 x 1000, 4 of 2048 x 2048). A
#: fixed 256 frames of an sCMOS chip's 2048 x 2048 were 4 GiB of float32 photons, with two more chunks read ahead: the
#: network fit's data path alone peaked at 3.0 GB of RSS for 1000 x 1000 frames (0.9 GB in chunks of 16 frames), and a
#: full chip's would not fit a workstation
CHUNK_PIXELS: int = 2**24


def frames_per_chunk(frame_px: int, frames: int, *, budget: int | None = None) -> int:
    """Frames read at once: ``frames`` (the caller's chunk), at most ``budget`` (default :data:`CHUNK_PIXELS`)
    pixels of ``frame_px`` pixels a frame (all channels), and at least one."""
    budget = CHUNK_PIXELS if budget is None else int(budget)
    return max(1, min(int(frames), budget // max(int(frame_px), 1)))


_ALLOWED_DTYPES_TEXT = "unsigned/signed integers, float32 or float64"


def _check_dtype(dtype: np.dtype, *, source: str | os.PathLike) -> np.dtype:
    """Return ``dtype`` in native byte order if it is a supported pixel type, else raise."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu" or (dtype.kind == "f" and dtype.itemsize in (4, 8)):
        return dtype.newbyteorder("=")
    raise InputError(f"pixel type {dtype} is not supported; allowed are {_ALLOWED_DTYPES_TEXT}", source=source)


def _natural_key(name: str) -> list[Any]:
    """Sort key for natural order: 'file2' < 'file10'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _frame_geometry(shape: tuple[int, ...], *, source: str | os.PathLike) -> tuple[int, tuple[int, int]]:
    """``(n_frames, (H, W))`` of an image series shape, dropping singleton leading axes."""
    if len(shape) < 2:
        raise InputError(f"image has shape {tuple(shape)}; a movie must be 2-D (H, W) or 3-D (T, H, W)", source=source)
    lead = [n for n in shape[:-2] if n != 1]
    if len(lead) > 1:
        raise InputError(
            f"image has shape {tuple(shape)}; a movie must be 2-D (H, W) or 3-D (T, H, W) "
            "(one axis of frames besides rows and columns)",
            source=source,
        )
    n_frames = lead[0] if lead else 1
    return n_frames, (int(shape[-2]), int(shape[-1]))


class _TifffileReports(logging.Handler):
    """tifffile's log messages (warnings and errors) while a file is inspected."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    @contextlib.contextmanager
    def listening(self) -> Iterator[None]:
        """Hear tifffile's log within the block (whatever the application's logging set-up says: a silenced tifffile
        must not switch the checks off), and keep it off stderr, where Python's last-resort handler wrote it."""
        log = logging.getLogger("tifffile")
        disabled, level = log.disabled, log.level
        log.disabled = False
        log.setLevel(logging.WARNING)
        log.addHandler(self)
        try:
            yield
        finally:
            log.removeHandler(self)
            log.disabled = disabled
            log.setLevel(level)


def _heard(reports: _TifffileReports, said: str) -> str:
    """What tifffile logged while the file was opened and inspected (the first 3 messages) and ``said`` (an error's
    text) does not hold already, as the end of that error; "" where nothing more. A page whose tags were damaged was
    refused as 'pixel type bool is not supported', tifffile's 'invalid data type 99' and 'missing data offset tag'
    heard and dropped (before they were heard, they were printed to stderr ahead of the error)."""
    more = list(dict.fromkeys(m for m in reports.messages if m not in said))
    if not more:
        return ""
    return f" (tifffile reported: {'; '.join(more[:3])}{' ...' if len(more) > 3 else ''})"


def _declared_frames(tf: tifffile.TiffFile) -> int | None:
    """The number of frames a file's own metadata declares (tifffile's shaped or ImageJ metadata), if any."""
    with contextlib.suppress(Exception):
        if tf.is_shaped and tf.shaped_metadata:
            shape = tf.shaped_metadata[0].get("shape")
            if shape and len(shape) >= 2:
                return int(np.prod(shape[:-2], dtype=np.int64)) if len(shape) > 2 else 1
        if tf.is_imagej and tf.imagej_metadata and "images" in tf.imagej_metadata:
            return int(tf.imagej_metadata["images"])
    return None


def _is_mmstack(tf: tifffile.TiffFile) -> bool:
    """Whether tifffile reads ``tf`` as a Micro-Manager stack (``TiffFile.is_mmstack``); False where the installed
    tifffile has no such reader (before 2023.7: pyproject allows 2023.1, whose ``TiffFile`` raises AttributeError on
    ``is_mmstack``, and every movie failed to open on it)."""
    try:
        return bool(tf.is_mmstack)
    except AttributeError:
        return False


def _series_siblings(tf: tifffile.TiffFile, series) -> list[tifffile.TiffFile]:
    """The other files (their ``TiffFile``, as tifffile opened them) that hold pages of ``series`` of ``tf``, a
    multi-file OME-TIFF or Micro-Manager stack, in the order of their first page; [] for any other file."""
    if not (tf.is_ome or _is_mmstack(tf)):  # only these series span files; walking the pages of any
        return []  # other file parsed every page header (a 100,000-frame ImageJ file opened in 5 s, not 0)
    out, seen = [], {id(tf)}
    for page in series.pages:
        parent = getattr(page, "parent", None)
        if parent is None or id(parent) in seen:
            continue
        seen.add(id(parent))
        out.append(parent)
    return out


def _memmap_series(tf: tifffile.TiffFile, series, path: Path) -> np.memmap | None:
    """A read-only memory map of ``series``' pixels where they are stored uncompressed in one contiguous block of
    ``tf``'s file, else None: :func:`tifffile.memmap` on the series already parsed (``tifffile.memmap(path)`` opens
    the file again and parses its series a second time: 1.7 s more for a 50,000-page OME-TIFF)."""
    level = series.levels[0]
    offset = level.dataoffset
    if offset is None or level.dtype is None:
        return None
    return np.memmap(path, np.dtype(tf.byteorder + level.dtype.char), "r", offset, level.shape, "C")


#: the words for an image series' axes (tifffile's letters) in the errors
_AXIS_NAMES = {"T": "time points", "Z": "z slices", "C": "channels", "Q": "images", "I": "images", "R": "tiles",
               "P": "positions", "A": "angles", "L": "lambdas", "V": "views", "H": "phases", "E": "lambdas"}


def _odd_page(series: list) -> str:
    """What an error says of a file of image series of one frame per page (pages written one by one, or in chunks)
    whose pages are not all of one size and pixel type: the first page that differs from the most common kind, its
    size and the others' (the error said only 'holds 50 image series of different shapes or types ([(120, 128),
    (128, 128)], ...)': which page, of how many, was left to find)."""
    kinds = [(tuple(int(n) for n in s.shape[-2:]), str(np.dtype(s.dtype))) for s in series]
    sizes = [len(s.pages) for s in series]
    firsts = np.cumsum([0] + sizes).tolist()
    count: dict = {}
    for kind, n in zip(kinds, sizes):
        count[kind] = count.get(kind, 0) + n
    common = max(count, key=count.get)
    odd = [k for k, kind in enumerate(kinds) if kind != common]
    odd_pages = [p for k in odd for p in range(firsts[k], firsts[k] + sizes[k])]
    (h, w), dtype = kinds[odd[0]]
    total = firsts[-1]
    shown = ", ".join(map(str, odd_pages[:5])) + (", ..." if len(odd_pages) > 5 else "")
    return (f"page {odd_pages[0]} (frame {odd_pages[0]}) is {h}x{w} {dtype}, but {count[common]} of the file's "
            f"{total} pages are {common[0][0]}x{common[0][1]} {common[1]}"
            + (f" ({len(odd_pages)} pages differ: {shown})" if len(odd_pages) > 1 else "")
            + "; the frames of a movie must share one size and pixel type: crop or remove the odd page(s)")


def _check_stored_size(tf: tifffile.TiffFile, series, path: Path, n_frames: int, frame_shape: tuple[int, int],
                       dtype: np.dtype) -> None:
    """Refuse, when it is opened, a file whose uncompressed pixels are stored in one block that runs past the file's
    end (a copy or an acquisition cut short, whose page headers come before the pixels): its frames were read up to
    the cut and the fit then stopped on 'cannot read frames 0..0 (ValueError: failed to read 32768 bytes, got 16256)'
    (a folder's 16th file: after 15 files' frames were fitted, and with no word of a truncated file)."""
    offset = getattr(series.levels[0], "dataoffset", None)
    if offset is None or not n_frames:  # a file of no frames is refused as such
        return
    try:
        size = int(tf.filehandle.size)
    except (AttributeError, TypeError, ValueError):
        return
    frame_bytes = frame_shape[0] * frame_shape[1] * np.dtype(dtype).itemsize
    need = int(offset) + n_frames * frame_bytes
    if need > size:
        held = max(0, (size - int(offset)) // frame_bytes) if frame_bytes else 0
        whole = f"frames 0..{held - 1} are whole" if held else "not one frame is whole"
        raise InputError(f"is truncated: its {n_frames} frame(s) of {frame_shape[0]}x{frame_shape[1]} {dtype} end at byte "
                         f"{need}, but the file has {size} bytes ({whole}); copy or save the file again", source=path)


def _check_last_page(tf: tifffile.TiffFile, series, path: Path, n_frames: int) -> None:
    """Refuse, when it is opened, a file whose last frame's pixels (strips or tiles, compressed or not, stored page by
    page) run past the file's end, while its page headers are whole (a copy or an acquisition cut short, written by
    Pillow, tifffile page by page, or compressed): it opened, and the read of its frames failed on 'cannot read frames
    0..7 (ValueError: failed to read 2048 bytes, got 1498)': in a folder, when the fit reached that file, after it had
    fitted every file before it."""
    if len(series.pages) > 1 and getattr(series.levels[0], "dataoffset", None) is not None:
        return  # one contiguous block: _check_stored_size's (its last page, reached here, parsed every page header)
    try:
        page = series.pages[-1]
        if page is None or getattr(page, "parent", tf) is not tf:  # another file of a data set's: its own check
            return
        offsets, counts = [int(o) for o in page.dataoffsets], [int(c) for c in page.databytecounts]
        if counts and int(page.compression) == 1 and getattr(page, "tile", None) is None:
            # uncompressed strips: the frame's own bytes must be there, no more (a writer may state the last strip's
            # count as a whole strip's rows: tifffile reads such a file whole, and it was refused as truncated)
            counts[-1] = min(counts[-1], max(int(page.nbytes) - sum(counts[:-1]), 0))
        segments = [(o, c) for o, c in zip(offsets, counts) if c]
        size = int(tf.filehandle.size)
    except (AttributeError, IndexError, TypeError, ValueError):
        return
    end = max((o + c for o, c in segments), default=0)
    if end > size:
        raise InputError(f"is truncated: the pixels of its last frame ({n_frames - 1}) end at byte {end}, but the file "
                         f"has {size} bytes; copy or save the file again", source=path)


def _check_codec(series, path: Path) -> None:
    """Refuse, when the file is opened, a movie whose pixels are compressed (or predicted) in a way tifffile can
    decode only with the ``imagecodecs`` package, and it is not installed (LZW, the most common compression of
    ImageJ, MATLAB's and Pillow's TIFFs, JPEG, LERC, a floating-point predictor): the fit failed at its first read,
    after the model was loaded and the checks ran, on 'cannot read frames 0..0 (ValueError: <COMPRESSION.LZW: 5>
    requires the 'imagecodecs' package)', which said neither what the file holds nor what to do."""
    page = series.keyframe if getattr(series, "keyframe", None) is not None else series.pages[0]
    if page is None:
        return
    for table, value, what in ((tifffile.TIFF.DECOMPRESSORS, page.compression, "compressed"),
                               (tifffile.TIFF.UNPREDICTORS, page.predictor, "stored with the predictor")):
        if int(value) <= 1 or int(value) == 8 and what == "compressed":
            continue
        try:
            missing = _codec_module_missing(table[value])
        except KeyError:
            missing = True
        if missing:
            name = getattr(value, "name", str(value))
            raise InputError(f"its pixels are {what} {name} ({int(value)}), which tifffile reads only with the "
                             "imagecodecs package, and it is not installed: pip install imagecodecs (or save the movie "
                             "uncompressed)", source=path) from None
    if int(page.compression) in LOSSY_COMPRESSIONS and not (int(page.compression) == 7 and _jpeg_is_lossless(page)):
        name = getattr(page.compression, "name", str(page.compression))
        warnings.warn(f"{path}: its pixels are compressed {name} ({int(page.compression)}), which is lossy: they are "
                      "not the camera's counts (the compression changed the noise the fit models and the spots' "
                      "photons), so the localizations' photons and uncertainties are off; fit the movie as the camera "
                      "saved it, uncompressed or losslessly compressed", MovieWarning, stacklevel=6)


#: TIFF compressions that lose information (JPEG, old-style JPEG, and the lossy JPEG and JPEG 2000 codes): a movie
#: so stored is read where imagecodecs is installed, with a warning (its values are no longer the camera's counts)
LOSSY_COMPRESSIONS: frozenset[int] = frozenset({6, 7, 33004, 34892})


def _jpeg_is_lossless(page) -> bool:
    """Whether a JPEG-compressed page's (TIFF compression 7) first strip or tile is a lossless JPEG: its frame header
    is SOF3, SOF7, SOF11 or SOF15 (ITU T.81's lossless processes; a 16-bit JPEG TIFF is one, its values the camera's
    counts, and it was warned of as lossy). Read from the first 64 KiB of the strip's marker segments; False where
    they cannot be read or the frame header is another."""
    try:
        fh = page.parent.filehandle
        fh.seek(int(page.dataoffsets[0]))
        data = fh.read(min(int(page.databytecounts[0]), 1 << 16))
    except (AttributeError, IndexError, OSError, TypeError, ValueError):
        return False
    if data[:2] != b"\xff\xd8":  # no start of image
        return False
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # a fill byte
            i += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a frame header (not DHT, JPG, DAC)
            return marker in (0xC3, 0xC7, 0xCB, 0xCF)
        if marker in (0xD9, 0xDA):  # end of image, or the scan, before any frame header
            return False
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return False


def _codec_module_missing(codec) -> bool:
    """Whether the decoder that tifffile handed out fails for want of a module when called: its Zstandard fallback
    without imagecodecs imports Python 3.14's ``compression.zstd`` only then, so on Python 3.10-3.13 a Zstandard movie
    opened, and the fit failed at its first read on 'cannot read frames 0..15 (ModuleNotFoundError: No module named
    'compression')'. Called on no data: a decoder that has its module fails on it otherwise, or returns nothing."""
    try:
        codec(b"")
    except ImportError:
        return True
    except Exception:  # noqa: BLE001 - no data to decode: any other failure says the module is there
        return False
    return False


def _check_data_set_files(tf: tifffile.TiffFile, series, path: Path, reports: _TifffileReports) -> int | None:
    """A multi-file OME-TIFF (Micro-Manager's ``..._MMStack_Pos0.ome.tif``, ``..._1.ome.tif``, ...) opened through its
    first file whose other files cannot all be read (one moved, deleted, renamed or not yet copied): refused, naming
    the files and the frames they hold. tifffile logs the file it could not read and gives those frames as zeros, so
    the fit went on through them and wrote a table with no localization in them, without a word. A file of such a
    data set opened on its own (OME-XML ``BinaryOnly``: its metadata are in the first file) holds only its own
    frames, numbered from 0 where the data set's numbering goes on from the file before it: said.

    Returns the frames the file holds where it is one OME-TIFF whose metadata declare planes after its last page (an
    acquisition stopped early; no other file named, none reported unreadable): those are read, and the caller says
    that fewer frames than declared can be read. Such a file was refused as a data set with files missing ('frames
    8-11 are in files that cannot be read ... put the data set's files together'), and before that its missing
    planes were fitted as frames of zeros. Else None."""
    if not (tf.is_ome or _is_mmstack(tf)):
        return None
    pages = getattr(series, "_pages", None)
    pages = series.pages if pages is None else pages
    missing = [k for k, page in enumerate(pages) if page is None]
    if missing:
        from plexloc.camera.frames import frame_ranges

        names = [m for text in reports.messages for m in re.findall(r"failed to read '([^']+)'", text)]
        alone = not names and not _ome_names_other_files(tf, path)
        if alone and missing[0] > 0 and missing == list(range(missing[0], len(pages))):
            return missing[0]
        if alone:  # planes missing between the file's own pages: its metadata and pages disagree
            raise InputError(f"frames {frame_ranges(missing)} ({len(missing)} of the {len(pages)} its OME metadata "
                             "declare) are not stored in the file, which names no other file of a data set; tifffile "
                             "would give them as frames of zeros: the file is damaged or its metadata are wrong "
                             "(save the movie again, e.g. from Fiji)", source=path)
        where = (f"in {', '.join(dict.fromkeys(names))}, which cannot be read" if names
                 else "in files that cannot be read")
        raise InputError(f"frames {frame_ranges(missing)} ({len(missing)} of the data set's {len(pages)}) are {where}; "
                         "tifffile would give them as frames of zeros: put the data set's files together in one "
                         "folder, as written, and open its first file", source=path)
    root = ome_root(tf)
    binary = None if root is None else first_element(root, "BinaryOnly")
    if binary is not None:
        first = binary.get("MetadataFile") or "the data set's first file"
        warnings.warn(f"{path}: is one file of a multi-file OME-TIFF data set whose metadata are in {first}; only its "
                      f"own {len(pages)} frames are read, numbered from 0 (the data set numbers them on from the files "
                      f"before it): open {first} to fit the whole data set", MovieWarning, stacklevel=6)
    return None


def _ome_names_other_files(tf: tifffile.TiffFile, path: Path) -> bool:
    """Whether ``tf``'s OME-XML places planes in files other than ``path`` (``TiffData/UUID/@FileName``)."""
    root = ome_root(tf)
    if root is None:
        return False
    for element in root.iter():
        if local_name(element.tag) == "UUID":
            name = element.get("FileName")
            if name and Path(name).name != path.name:
                return True
    return False


class _TiffSource:
    """One TIFF file seen as a stack of frames (internal)."""

    def __init__(self, path: Path, *, memmap: bool = True, in_folder: bool = False):
        self.path = path
        self._in_folder = in_folder
        if not path.exists():
            raise InputError("file not found", source=path)
        if path.is_dir():
            raise InputError("is a folder, expected a TIFF file", source=path)
        reports = _TifffileReports()
        try:
            with reports.listening():  # a damaged header is logged while the file opens
                self._tf = tifffile.TiffFile(path)
        except Exception as err:  # tifffile raises TiffFileError, ValueError, OSError, struct.error, ...
            raise InputError(f"not a readable TIFF file ({type(err).__name__}: {err}){_heard(reports, str(err))}",
                             source=path) from None
        try:
            self._inspect(memmap=memmap, reports=reports)
        except InputError as err:
            self.close()  # this file and any sibling of a multi-file series opened already
            also = _heard(reports, err.reason) if err.source == str(path) else ""
            if also:  # what tifffile logged is heard, off stderr: said in the error, not lost
                raise InputError(err.reason + also, source=path) from None
            raise
        except BaseException:
            self.close()
            raise

    def _inspect(self, *, memmap: bool, reports: _TifffileReports) -> None:
        path, tf = self.path, self._tf
        try:
            with reports.listening():
                series = list(tf.series)
        except Exception as err:
            raise InputError(f"corrupt TIFF file ({type(err).__name__}: {err})", source=path) from None
        if not series:
            pages = len(tf.pages)  # 0 where the header's offset to the first page leads nowhere: a damaged file
            why = f"{pages} readable page(s)" + (": a damaged or empty file" if not pages else "")
            why += f"; {reports.messages[0]}" if reports.messages else ""
            raise InputError(f"TIFF file holds no image ({why})", source=path)
        declared = _declared_frames(tf)
        # tifffile logs a damaged page list and goes on with the pages before the damage: the frames after it
        # would be lost without a word, so a damaged file is refused
        damaged = [m for m in reports.messages if m.startswith("<tifffile.TiffPages") and any(
            k in m for k in ("corrupted tag list", "invalid offset to page", "invalid page offset"))]
        if damaged:  # (a file written page by page declares 1 frame in each page's description: not said)
            of = f" of the {declared} frames its metadata declares" if declared is not None and declared > len(
                tf.pages) else ""
            raise InputError(f"corrupt TIFF file: {damaged[0]}; {len(tf.pages)} pages can be reached{of}", source=path)
        _check_codec(series[0], path)
        held = _check_data_set_files(tf, series[0], path, reports)
        if held is not None:  # the planes its OME metadata declare
            declared = int(np.prod(series[0].shape[:-2], dtype=np.int64))
        for s in series:
            lead = [(a, n) for a, n in zip(s.axes[:-2], s.shape[:-2]) if n > 1 and a not in "SC"]
            if len(lead) > 1:  # a hyperstack of frames and slices (ImageJ's T and Z, an OME time series of z stacks)
                sizes = " x ".join(f"{n} {_AXIS_NAMES.get(a, a)} ({a})" for a, n in lead)
                raise InputError(
                    f"image has shape {tuple(s.shape)} with axes '{s.axes}': {sizes}; a movie has one axis of frames "
                    "besides rows and columns, so plexloc cannot tell which to fit as frames. If they are one movie's "
                    "frames (an ImageJ hyperstack whose T and Z were swapped), make them one stack (Fiji: Image > "
                    "Hyperstacks > Hyperstack to Stack, or Image > Properties: slices 1, frames "
                    f"{int(np.prod([n for _, n in lead]))}) and save it again",
                    source=path,
                )
            if "S" in s.axes and s.shape[s.axes.index("S")] > 1:
                raise InputError(
                    f"image has shape {tuple(s.shape)} with colour samples (axes '{s.axes}'); "
                    "RGB/multi-sample TIFFs are not supported, a movie must be grey-scale (T, H, W)",
                    source=path,
                )
            # a hyperstack of channels and frames or slices (a 3-D stack marked as channels is read as frames:
            # tifffile's imagej=True writes any (T, H, W) so)
            if "C" in s.axes and s.shape[s.axes.index("C")] > 1 and sum(n > 1 for n in s.shape[:-2]) > 1:
                n_c = s.shape[s.axes.index("C")]
                raise InputError(
                    f"image has shape {tuple(s.shape)} with {n_c} channels (axes '{s.axes}'); plexloc reads one "
                    "channel per TIFF: save each channel as its own file (Fiji: Image > Color > Split Channels) and "
                    "give them in channel order (ch0 first)",
                    source=path,
                )
        if len(series) > 1 and tf.is_ome:
            # an OME-TIFF's image series are separate Images (stage positions, wells, acquisitions), not one movie
            # in parts: their frames would be fitted as if they followed each other
            warnings.warn(
                f"{path}: the OME-TIFF holds {len(series)} images (OME Image elements, e.g. stage positions) of "
                f"shapes {[tuple(s.shape) for s in series]}; reading only the first, {tuple(series[0].shape)}",
                MovieWarning,
                stacklevel=5,
            )
            series = series[:1]
        elif len(series) > 1 and not all(len(s.pages) == 1 and len(s.shape) >= 2
                                         and _frame_geometry(tuple(s.shape), source=path)[0] == 1 for s in series):
            # several image series that are not single pages written one by one: most often one movie written in
            # chunks (tifffile.imwrite(..., append=True) of each block of frames: a series per call), sometimes two
            # separate stacks in one file. They are read one after another as one movie (frames of another shape
            # are refused below), as before, but no longer without a word: a file of separate stacks is split first
            series_text = ", ".join(f"{len(s.pages)}" for s in series)
            warnings.warn(
                f"{path}: the TIFF file holds {len(series)} image series of {series_text} page(s), read one after "
                f"another as one movie of {sum(len(s.pages) for s in series)} frames (a movie written in chunks); if "
                "they are separate acquisitions, save each as its own file",
                MovieWarning,
                stacklevel=5,
            )
        self.dtype = _check_dtype(series[0].dtype, source=path)
        self._mm: np.ndarray | None = None
        self._mapped_series = None  # the series memory-mapped (mapped again after a suspend)
        self._suspended = False
        self._cache: np.ndarray | None = None
        self._siblings: list = []
        self._sibling_parents: list | None = None
        if self._in_folder and len(series[0].pages):
            # a multi-file data set's series (OME-TIFF, Micro-Manager's MMStack_Pos0.ome.tif, _1.ome.tif, ...) spans
            # its sibling files, which the folder lists too: every frame would be read twice (or more)
            for page in (series[0].pages[0], series[0].pages[-1]):
                if page is not None and page.parent is not tf:
                    kind = "Micro-Manager stack" if _is_mmstack(tf) else "OME-TIFF" if tf.is_ome else "TIFF"
                    raise InputError(
                        f"is part of a multi-file {kind} data set (its image series spans other files, e.g. "
                        f"{Path(page.parent.filename).name}); open the data set's first file instead of the folder",
                        source=path,
                    )
        if len(series) == 1:
            s = series[0]
            self.n_frames, self.frame_shape = _frame_geometry(tuple(s.shape), source=path)
            if held is not None and self.n_frames == len(s.pages):  # an OME-TIFF stopped early: the frames it holds
                self.n_frames = held
            # the other files of a multi-file series (Micro-Manager's ..._1.ome.tif, OME-TIFF) stay open while this one
            # is: tifffile closes them after parsing and re-opened one per read, warning "reading array from closed file"
            self._siblings = self._open_siblings(s)
            self._series: int | None = 0
            self._pagewise = len(s.pages) == self.n_frames or held is not None
            if not self._siblings:
                _check_stored_size(tf, s, path, self.n_frames, self.frame_shape, self.dtype)
                if held is None:  # (an OME-TIFF stopped early holds fewer pages than its series: they are checked)
                    _check_last_page(tf, s, path, self.n_frames)
            if memmap:
                with contextlib.suppress(Exception):  # not memory-mappable: fall back to page reads
                    self._map(s)
        else:
            # Several series (e.g. pages written one by one with their own shape): every page a frame.
            shapes = {tuple(s.shape[-2:]) for s in series}
            dtypes = {np.dtype(s.dtype) for s in series}
            one_page_per_frame = all(
                _frame_geometry(tuple(s.shape), source=path)[0] == len(s.pages) for s in series
            )
            if (len(shapes) > 1 or len(dtypes) > 1) and one_page_per_frame:
                raise InputError(_odd_page(series), source=path)
            if len(shapes) > 1 or len(dtypes) > 1 or not one_page_per_frame:
                raise InputError(
                    f"TIFF file holds {len(series)} image series of different shapes or types "
                    f"({sorted(shapes)}, {sorted(str(d) for d in dtypes)}); expected one movie",
                    source=path,
                )
            self.n_frames = sum(len(s.pages) for s in series)
            self.frame_shape = (int(series[0].shape[-2]), int(series[0].shape[-1]))
            _check_last_page(tf, series[-1], path, self.n_frames)
            self._series = None
            self._pagewise = True
        if declared is not None and len(series) == 1 and declared != self.n_frames:
            warnings.warn(
                f"{path}: the file's metadata declares {declared} frames but {self.n_frames} can be read "
                "(an acquisition stopped early, or a damaged file); fitting the frames that can be read",
                MovieWarning,
                stacklevel=4,
            )

    def _map(self, series) -> None:
        """Memory-map ``series`` where its pixels are one uncompressed block holding every frame."""
        mm = _memmap_series(self._tf, series, self.path)
        if mm is not None and mm.size == self.n_frames * self.frame_shape[0] * self.frame_shape[1]:
            self._mm_offset = int(mm.offset)
            self._mm = mm.reshape(self.n_frames, *self.frame_shape)
            self._mmap = getattr(mm, "_mmap", None)  # numpy's map starts at an allocation boundary:
            self._mm_in_map = self._mm_offset % mmap.ALLOCATIONGRANULARITY  # where frame 0 is in it
            self._mapped_series = series

    @property
    def mapped(self) -> bool:
        """Whether the frames are read from a memory map (also while the file is suspended)."""
        return self._mapped_series is not None

    def suspend(self) -> None:
        """Release the file's handle and memory map until the next :meth:`read` takes them up again (a folder's
        files between reads: each held a handle and a map, two descriptors, and a folder of 2,000 single-frame
        files failed at its 510th file on 'Too many open files' under the usual limit of 1,024)."""
        if self._suspended or self._siblings:
            return
        self._mm = None
        self._mmap = None
        self._tf.filehandle.close()
        self._suspended = True

    def _resume(self) -> None:
        if not self._suspended:
            return
        try:
            self._tf.filehandle.open()
        except OSError as err:
            raise InputError(f"cannot open the file again to read its frames ({type(err).__name__}: {err})",
                             source=self.path) from None
        self._suspended = False
        if self._mapped_series is not None:
            try:
                self._map(self._mapped_series)
            except (OSError, ValueError) as err:  # replaced or cut short since it was opened
                raise InputError(f"cannot map the file again to read its frames ({type(err).__name__}: {err})",
                                 source=self.path) from None

    def _open_siblings(self, series) -> list:
        handles = []
        self._sibling_parents = _series_siblings(self._tf, series)
        for parent in self._sibling_parents:
            if parent.filehandle.closed:
                parent.filehandle.open()
                handles.append(parent.filehandle)
        return handles

    def sibling_files(self) -> list[Path]:
        """The other files of this file's multi-file OME-TIFF or Micro-Manager series (its first series), in the
        series' order; [] where it has none."""
        parents = self._sibling_parents
        if parents is None:  # several series, read as one movie: not walked at opening
            parents = []
            with contextlib.suppress(Exception):
                parents = _series_siblings(self._tf, self._tf.series[0])
        return [Path(getattr(p.filehandle, "dirname", None) or self.path.parent) / p.filename
                for p in parents if getattr(p, "filename", None)]

    def roi_offset(self) -> RoiOffset | None:
        """The ROI's chip position from this file's metadata (:func:`plexloc.io.roi.read_roi_offset`)."""
        return read_roi_offset(self._tf, path=self.path, frame_shape=self.frame_shape)

    def pixel_size(self) -> PixelSize | None:
        """The pixel size from this file's metadata (:func:`plexloc.io.pixel_size.read_pixel_size`)."""
        return read_pixel_size(self._tf, path=self.path)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start:stop`` as a new native-byte-order array of shape (stop-start, H, W)."""
        n = stop - start
        if n <= 0:
            return np.zeros((0, *self.frame_shape), dtype=self.dtype)
        self._resume()
        if self._mm is not None:
            self._check_mapped_size(start, stop)
            out = np.array(self._mm[start:stop], dtype=self.dtype)
            self._release_mapped(start, stop)
            return out
        try:
            data = self._read_pages(start, stop)
        except Exception as err:
            raise InputError(
                f"cannot read frames {start}..{stop - 1} ({type(err).__name__}: {err})", source=self.path
            ) from None
        return np.asarray(data, dtype=self.dtype).reshape(n, *self.frame_shape)

    def _release_mapped(self, start: int, stop: int) -> None:
        """Drop the mapped pages of frames ``start:stop``, copied out already, from this process's memory (madvise
        MADV_DONTNEED: they stay in the system's page cache, and a later read maps them again). Without it, every
        page of the file touched stayed in the process's resident memory until the movie was closed: a fit's peak
        RSS grew by the movie's size (711 MB reading a 659 MB movie of 20,000 frames, 136 MB for 2,000), which is
        what a cluster's job accounting measures and kills jobs by."""
        mapped, advice = getattr(self, "_mmap", None), getattr(mmap, "MADV_DONTNEED", None)
        if mapped is None or advice is None or self._mm is None:
            return
        frame_bytes = int(self._mm[0].nbytes)
        first = self._mm_in_map + start * frame_bytes
        first -= first % mmap.PAGESIZE
        end = min(self._mm_in_map + stop * frame_bytes, len(mapped))
        with contextlib.suppress(OSError, ValueError):  # a closed map, or a system without madvise: nothing to drop
            if end > first:
                mapped.madvise(advice, first, end - first)

    def _check_mapped_size(self, start: int, stop: int) -> None:
        """Refuse to read mapped frames that the file no longer holds: a file truncated after it was opened (overwritten
        in place, a disk or network share failing) kills the process with SIGBUS ('Bus error', no message, nothing
        saved) when a mapped page beyond its end is touched."""
        mm = self._mm
        assert mm is not None
        end = self._mm_offset + stop * int(mm[0].nbytes)
        try:
            size = os.fstat(self._tf.filehandle.fileno()).st_size
        except (OSError, ValueError):  # a closed handle: the map itself may still be fine; let numpy say
            return
        if size < end:
            frame_bytes = int(mm[0].nbytes)
            held = max(0, (size - self._mm_offset) // frame_bytes) if frame_bytes else 0
            raise InputError(
                f"cannot read frames {start}..{stop - 1}: the file was truncated while it was read (it now has "
                f"{size} bytes, enough for frames 0..{held - 1} of its {self.n_frames})", source=self.path)

    def _read_pages(self, start: int, stop: int) -> np.ndarray:
        if self._pagewise:
            return self._tf.asarray(key=slice(start, stop), series=self._series)
        if self._cache is None:  # pages do not map to frames: read the series once
            self._cache = self._tf.series[0].asarray().reshape(self.n_frames, *self.frame_shape)
        return self._cache[start:stop]

    def close(self) -> None:
        self._mm = None
        self._mmap = None
        self._cache = None
        for fh in getattr(self, "_siblings", ()):
            fh.close()
        self._tf.close()


def _check_finite_frames(frames: np.ndarray, first: int, path, *, movie_first: int | None = None) -> None:
    """A float movie with NaN or inf pixels (a broken conversion, a saturated division): refused, naming the
    file, the first such frame and pixel, rather than localized into NaN rows or holes.

    ``frames`` are frames ``first ..`` of the file ``path``; ``movie_first``: where the file is one of a folder's,
    the movie's frame number of ``frames[0]`` (the message gives both numbers)."""
    finite = np.isfinite(frames)
    if finite.all():
        return
    idx = tuple(int(v) for v in np.argwhere(~finite)[0])
    n_bad = int(finite.size - np.count_nonzero(finite))
    where = f"row {idx[-2]}, column {idx[-1]}" if len(idx) == 3 else f"index {idx[1:]}"
    of_movie = "" if movie_first is None else f" (frame {movie_first + idx[0]} of the folder's movie)"
    raise InputError(f"frame {first + idx[0]}{of_movie} has a non-finite pixel value {float(frames[idx])!r} at {where} "
                     f"({n_bad} such pixel(s) in frames {first}-{first + len(frames) - 1}); camera images must be "
                     "finite", source=path)


def _refuse_odd_first(first: _TiffSource, second: _TiffSource, third: Path) -> None:
    """Refuse a folder whose first file's frames differ from the second's, naming the first where the third agrees
    with the second: the error named the second file ('img_1.tif: frames are 16x20 uint16, but img_0.tif has 8x20
    uint16'), the first file that a folder of 2,000 files agreeing with each other showed to be fine. Returns where
    the third file cannot tell (or cannot be read: its own error comes when it is opened in turn)."""
    try:
        with warnings.catch_warnings():  # its own warnings come when it is opened in turn
            warnings.simplefilter("ignore")
            other = _TiffSource(third, memmap=False, in_folder=True)
    except InputError:
        return
    try:
        agree = other.frame_shape == second.frame_shape and other.dtype == second.dtype
    finally:
        other.close()
    if agree:
        raise InputError(
            f"frames are {first.frame_shape[0]}x{first.frame_shape[1]} {first.dtype}, but the folder's next files "
            f"({second.path.name}, {third.name}) have {second.frame_shape[0]}x{second.frame_shape[1]} {second.dtype}; "
            "all files of a movie folder must share frame shape and pixel type: move this file out of the folder",
            source=first.path,
        )


def _numbering_gap(files: list[Path], n_frames: list[int]) -> str | None:
    """Where the files of a folder are numbered (names that differ in one number only: ``img_0.tif``, ``img_1.tif``,
    ...) and a number is missing, a message naming it; else None.

    A missing file would shift every later frame's number, silently. Numbers that step by 1, by the frames of the
    file before (names that give the first frame: ``movie_0.tif``, ``movie_1000.tif``), or all by the same step are
    taken as complete: one of these rules must hold for every step."""
    if len(files) < 3:
        return None
    parts = [re.split(r"(\d+)", p.name.lower()) for p in files]
    if len({len(q) for q in parts}) != 1:
        return None
    varying = [i for i in range(len(parts[0])) if len({q[i] for q in parts}) > 1]
    if len(varying) != 1 or varying[0] % 2 == 0:  # not one numeric field that alone tells the files apart
        return None
    numbers = [int(q[varying[0]]) for q in parts]
    steps = np.diff(numbers).tolist()
    by_frames = [numbers[k] + n_frames[k] for k in range(len(steps))]  # the next number where names count frames
    if len(set(steps)) == 1 or all(numbers[k + 1] == by_frames[k] for k in range(len(steps))):
        return None
    count_frames = sum(s == n for s, n in zip(steps, n_frames)) > sum(s == 1 for s in steps)
    for k, step in enumerate(steps):
        expected = by_frames[k] if count_frames else numbers[k] + 1
        if numbers[k + 1] != expected:
            return (f"the files are numbered, but after {files[k].name} comes {files[k + 1].name} (number "
                    f"{numbers[k + 1]}, expected {expected}): a missing file would shift the frame numbers of every "
                    "later file; restore it, or put the files after the gap in a folder of their own")
    return None  # pragma: no cover - some step differs from the expected one


#: Micro-Manager's "separate image files" names: ``img_channel000_position000_time000000000_z000.tif``
_MM_IMAGE_NAME = re.compile(r"channel(\d+)_position(\d+)_time(\d+)_z(\d+)", re.IGNORECASE)


def _mixed_folder(files: list[Path]) -> str | None:
    """Where a folder's TIFF files are not the frames of one movie in one order, a message saying why; else None.

    Natural sort order makes one sequence of every TIFF file of the folder, so (1) Micro-Manager's separate image
    files of several channels, positions or z planes (``img_channel000_position000_time000000000_z000.tif``, ...)
    would be read channel after channel as one movie of interleaved frames, and (2) a file named otherwise than the
    others (``dark.tif`` beside ``img_0.tif``, ``img_1.tif``, ...) would be read as frames of the movie, shifting
    every later frame number. Names that differ only in their numbers share a pattern; one file whose stem begins
    every other name (``movie.tif``, ``movie_X2.tif``, ``movie_X3.tif``, as Andor Solis splits a long acquisition)
    is the first part of that movie, not another pattern."""
    mm = [_MM_IMAGE_NAME.search(p.name) for p in files]
    if all(mm) and len(files) > 1:
        for k, what in ((0, "channels"), (1, "positions"), (3, "z planes")):
            values = sorted({int(m.group(k + 1)) for m in mm})
            if len(values) > 1:
                return (f"holds Micro-Manager image files of {len(values)} {what} ({', '.join(map(str, values[:6]))}"
                        f"{', ...' if len(values) > 6 else ''}); read in name order, their frames would follow each "
                        f"other as one movie: put each channel and position in a folder of its own")
    patterns: dict[str, list[str]] = {}
    for p in files:
        key = p.stem.lower().removesuffix(".ome")  # .tif = .tiff = .btf = .ome.tif
        patterns.setdefault(re.sub(r"\d+", "#", key), []).append(p.name)
    if len(patterns) < 2:
        return None
    singles = [names[0] for names in patterns.values() if len(names) == 1]
    for name in singles:  # the first part of a split acquisition: its stem begins every other file's name
        stem = Path(name).stem.lower().removesuffix(".ome")
        if all(p.name.lower().startswith(stem) for p in files):
            rest = {k: v for k, v in patterns.items() if v != [name]}
            if len(rest) == 1:
                return None
    shown = "; ".join(f"{k.replace('#', 'N')}: {len(v)} file(s), e.g. {v[0]}" for k, v in
                      sorted(patterns.items(), key=lambda kv: -len(kv[1])))
    return (f"the TIFF files follow {len(patterns)} name patterns ({shown}); read in name order as one movie, the "
            f"files of one pattern would add frames to the other's and shift every later frame number: keep one "
            f"movie's files in the folder (or open the file you mean)")


class _FrameIndexing:
    """``movie[i]`` ``(H, W)``, ``movie[a:b]`` ``(T, H, W)`` (new arrays) and :meth:`iter_chunks` over a class's
    ``_read(start, stop)``, ``n_frames`` and ``path`` (:class:`MovieReader`, :class:`ArrayMovie`)."""

    n_frames: int
    path: str

    def _read(self, start: int, stop: int) -> np.ndarray:  # pragma: no cover - each class has its own
        raise NotImplementedError

    def _check_open(self) -> None:
        """Raise when the frames can no longer be read (a closed file)."""

    def __getitem__(self, key: int | slice) -> np.ndarray:
        self._check_open()
        if isinstance(key, slice):
            start, stop, step = key.indices(self.n_frames)
            if step != 1:
                raise InputError(f"frame slices must have step 1, got step {key.step}", source=self.path)
            return self._read(start, max(start, stop))
        if isinstance(key, (int, np.integer)):
            i = int(key) + (self.n_frames if int(key) < 0 else 0)
            if not 0 <= i < self.n_frames:
                raise IndexError(f"frame {int(key)} out of range for a movie of {self.n_frames} frames")
            return self._read(i, i + 1)[0]
        raise TypeError(f"movie indices must be int or slice, not {type(key).__name__}")

    def iter_chunks(self, chunk_frames: int) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start_frame, frames)`` for consecutive chunks of at most ``chunk_frames`` frames."""
        if int(chunk_frames) < 1:
            raise InputError(f"chunk_frames must be >= 1, got {chunk_frames}")
        for start in range(0, self.n_frames, int(chunk_frames)):
            yield start, self._read(start, min(start + int(chunk_frames), self.n_frames))



def folder_tiffs(folder: Path) -> list[Path]:
    """The TIFF files of a folder (not hidden, not in subfolders), in natural order (``img_2`` before ``img_10``)."""
    return sorted((p for p in Path(folder).iterdir()
                   if p.is_file() and p.suffix.lower() in TIFF_SUFFIXES and not p.name.startswith(".")),
                  key=lambda p: _natural_key(p.name))


def movie_subfolders(folder: Path) -> list[Path]:
    """The subfolders of ``folder`` that hold TIFF files (a folder of movie folders: each is a movie), by name;
    [] where none can be read."""
    try:
        return sorted((p for p in Path(folder).iterdir()
                       if p.is_dir() and not p.name.startswith(".") and folder_tiffs(p)), key=lambda p: p.name)
    except OSError:
        return []


def _one_data_set(files: list[Path], memmap: bool) -> _TiffSource | None:
    """The first of a folder's TIFF ``files``, opened on its own, where it is the first file of a multi-file OME-TIFF
    or Micro-Manager data set whose files are exactly the folder's (Micro-Manager saves an acquisition in a folder of
    its own: ``run_MMStack_Pos0.ome.tif``, ``run_MMStack_Pos0_1.ome.tif``, ...); else None. The folder was refused
    ('open the data set's first file instead of the folder'), though it holds nothing else. Only files named
    ``*.ome.*`` are tried; what opening it warns is said only where it is used."""
    if len(files) < 2 or ".ome." not in files[0].name.lower():
        return None
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        try:
            src = _TiffSource(files[0], memmap=memmap)
        except InputError:
            return None  # its own error comes when the folder's files are opened in turn
    held = {os.path.abspath(p) for p in [files[0], *src.sibling_files()]}
    if held != {os.path.abspath(p) for p in files}:
        src.close()
        return None
    for w in said:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return src


def _first_names(paths: list[Path], n: int = 5) -> str:
    return ", ".join(p.name for p in paths[:n]) + (f" and {len(paths) - n} more" if len(paths) > n else "")

class MovieReader(_FrameIndexing):
    """Frames of one TIFF movie, or of a folder of TIFF files, read on demand.

    Use :func:`open_movie` to create one. Indexing follows numpy: ``movie[i]`` is one frame of shape
    ``(H, W)``; ``movie[a:b]`` is an array ``(T, H, W)`` (slices must have step 1). Returned arrays are
    new arrays in native byte order; they stay valid after :meth:`close`.

    Args:
        path: a TIFF file or a folder of TIFF files.
        memmap: memory-map files whose image data are contiguous and uncompressed (default); with
            ``False`` every request reads only the TIFF pages it needs.

    Attributes:
        path: the file or folder that was opened.
        files: the TIFF files, in the order their frames are numbered.
        n_frames: number of frames ``T``.
        frame_shape: ``(H, W)``.
        dtype: pixel type (native byte order).
        roi_offset: chip pixel ``(x, y)`` of the frames' corner and its source, where the first file's
            metadata record it, else ``None`` (:mod:`plexloc.io.roi`; bad metadata raise ``InputError``
            on access); ``roi_offset_px`` is its ``(x, y)``.
    """

    def __init__(self, path: str | os.PathLike, *, memmap: bool = True):
        self.path = Path(path)
        if not self.path.exists():
            raise InputError("file or folder not found", source=self.path)
        if self.path.is_dir():
            files = folder_tiffs(self.path)
            if not files:
                subs = movie_subfolders(self.path)
                more = "" if not subs else (
                    f", but {len(subs)} of its subfolders do ({_first_names(subs)}): a folder of TIFFs is one movie, "
                    f"so give each subfolder as a movie ({subs[0]}{', ...' if len(subs) > 1 else ''})")
                raise InputError(
                    f"folder holds no TIFF files (looked for {', '.join(TIFF_SUFFIXES)}){more}", source=self.path
                )
            mixed = _mixed_folder(files)
            if mixed is not None:
                raise InputError(mixed, source=self.path)
        else:
            files = [self.path]
        whole = _one_data_set(files, memmap) if self.path.is_dir() else None
        if whole is not None:  # the folder of one multi-file data set: read through its first file
            files = [files[0]]
        self.files: list[Path] = files
        self._sources: list[_TiffSource] = []
        try:
            for f in files:
                src = whole if whole is not None else _TiffSource(f, memmap=memmap, in_folder=self.path.is_dir())
                self._sources.append(src)
                first = self._sources[0]
                if src.frame_shape != first.frame_shape or src.dtype != first.dtype:
                    if len(self._sources) == 2 and len(files) > 2:
                        _refuse_odd_first(first, src, files[2])
                    raise InputError(
                        f"frames are {src.frame_shape[0]}x{src.frame_shape[1]} {src.dtype}, but "
                        f"{first.path.name} has {first.frame_shape[0]}x{first.frame_shape[1]} {first.dtype}; "
                        "all files of a movie folder must share frame shape and pixel type",
                        source=f,
                    )
                if src.n_frames == 0 and self.path.is_dir():
                    raise InputError("holds no frames (an empty or truncated file); the frames of a movie folder's "
                                     "files follow each other, so remove the file or restore it", source=f)
                if len(self._sources) > 1:  # a folder's files other than the first are opened when read
                    src.suspend()
            if self.path.is_dir():
                gap = _numbering_gap(files, [s.n_frames for s in self._sources])
                if gap is not None:
                    raise InputError(gap, source=self.path)
        except BaseException:
            self.close()
            raise
        self.frame_shape: tuple[int, int] = self._sources[0].frame_shape
        self.dtype: np.dtype = self._sources[0].dtype
        self._starts = np.cumsum([0] + [s.n_frames for s in self._sources])
        self.n_frames: int = int(self._starts[-1])
        self._roi: tuple[RoiOffset | None] | None = None
        self._open: list[int] = []  # the folder's files (not the first) held open, the last read last
        self._lock = threading.Lock()
        if self.n_frames == 0:  # nothing to fit: every command would write an empty table and exit 0
            self.close()
            raise InputError("the movie holds no frames (an empty or truncated file)", source=self.path)

    # --- metadata -----------------------------------------------------------------------------
    @property
    def roi_offset(self) -> RoiOffset | None:
        if self._roi is None:
            if not self._sources:
                raise ValueError(f"{self.path}: movie is closed")
            self._roi = (self._sources[0].roi_offset(),)
        return self._roi[0]

    @property
    def pixel_size(self) -> PixelSize | None:
        """The pixel size in the sample recorded in the first file's metadata (Micro-Manager, OME, ImageJ), else None
        (:mod:`plexloc.io.pixel_size`)."""
        if not self._sources:
            raise ValueError(f"{self.path}: movie is closed")
        return self._sources[0].pixel_size()

    @property
    def roi_offset_px(self) -> tuple[int, int] | None:
        roi = self.roi_offset
        return None if roi is None else roi.px

    @property
    def data_files(self) -> list[Path]:
        """The files the frames are read from: a folder's (:attr:`files`), else the file and the other files of its
        multi-file OME-TIFF or Micro-Manager series (``..._MMStack_Pos0_1.ome.tif``, ...)."""
        if not self._sources:
            raise ValueError(f"{self.path}: movie is closed")
        if len(self.files) != 1:
            return list(self.files)
        seen = {os.path.abspath(self.files[0])}
        out = list(self.files)
        for p in self._sources[0].sibling_files():
            if os.path.abspath(p) not in seen:
                seen.add(os.path.abspath(p))
                out.append(p)
        return out

    @property
    def tiff_file(self) -> tifffile.TiffFile:
        """The first file as this reader parsed it (its metadata, pages and series), for inspection: not closed by the
        caller, the reader owns it."""
        if not self._sources:
            raise ValueError(f"{self.path}: movie is closed")
        return self._sources[0]._tf

    @property
    def memory_mapped(self) -> list[bool]:
        """Per file, whether its frames are read from a memory map (uncompressed pixels in one contiguous block)
        rather than page by page."""
        return [s.mapped for s in self._sources]

    # --- access -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.n_frames

    def _read(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((max(stop - start, 0), *self.frame_shape), dtype=self.dtype)
        if stop <= start:
            return out
        first = int(np.searchsorted(self._starts, start, side="right")) - 1
        pos = 0
        for k in range(first, len(self._sources)):
            s0 = int(self._starts[k])
            if s0 >= stop:
                break
            a, b = max(start, s0) - s0, min(stop, int(self._starts[k + 1])) - s0
            part = out[pos : pos + b - a]
            if k:  # a folder's file: at most MAX_OPEN_FILES of them open at once (the first stays open)
                with self._lock:
                    part[...] = self._sources[k].read(a, b)
                    self._hold_open(k)
            else:
                part[...] = self._sources[k].read(a, b)
            if part.dtype.kind in "fc":  # names the file (of a folder) and the frame in it
                _check_finite_frames(part, a, self._sources[k].path,
                                     movie_first=s0 + a if len(self._sources) > 1 else None)
            pos += b - a
        return out

    def _hold_open(self, k: int) -> None:
        """Note that the folder's file ``k`` was read; suspend the one read longest ago beyond MAX_OPEN_FILES."""
        if k in self._open:
            self._open.remove(k)
        self._open.append(k)
        while len(self._open) > MAX_OPEN_FILES:
            self._sources[self._open.pop(0)].suspend()

    def _check_open(self) -> None:
        if not self._sources:
            raise ValueError(f"{self.path}: movie is closed")

    # --- lifetime -----------------------------------------------------------------------------
    def close(self) -> None:
        """Release file handles and memory maps (idempotent)."""
        for s in self._sources:
            s.close()
        self._sources = []

    def __enter__(self) -> MovieReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"MovieReader({str(self.path)!r}, n_frames={self.n_frames}, frame_shape={self.frame_shape}, "
            f"dtype={self.dtype}, files={len(self.files)})"
        )


class ArrayMovie(_FrameIndexing):
    """Raw frames held in memory behind :class:`MovieReader`'s interface, so that what streams a TIFF movie
    (:func:`plexloc.infer.fit_movie`, :func:`plexloc.mle.fit_movie`, their ``fit_movie_to_file``) fits an array too.

    Args:
        frames: a numpy array or torch tensor ``(T, H, W)`` (``(H, W)``: one frame) of raw camera values (ADU, as a
            TIFF would hold them; the fit converts them to photons with the camera). A numpy array is not copied
            unless its pixel type is converted (as TIFF pixels would be); a tensor is moved to the CPU once (a CPU
            tensor shares its memory). Pixel types as for TIFF movies:
            integers, float32, float64 (float16 and bfloat16 tensors are read as float32).
        name: what messages call the movie (its ``path``).

    Attributes:
        path, n_frames, frame_shape, dtype: as :class:`MovieReader`'s; ``roi_offset``, ``roi_offset_px`` and
        ``pixel_size`` are None (an array carries no metadata: give the ROI position to the fit where it matters).

    Raises:
        InputError: not 2-D or 3-D, no frames, an unsupported pixel type; non-finite pixels when read (as for TIFF).
    """

    roi_offset: RoiOffset | None = None
    roi_offset_px: tuple[int, int] | None = None
    pixel_size: PixelSize | None = None
    #: the checks' hints that float or 8-bit pixels are not a camera's raw counts are for files; an array's float
    #: values are as likely raw ADU (the simulator's ``MovieSimulation.frames``)
    counts_dtype_known: bool = False

    def __init__(self, frames: Any, *, name: str = "in-memory movie"):
        self.path = str(name)
        if not isinstance(frames, np.ndarray) and hasattr(frames, "detach") and hasattr(frames, "cpu"):  # torch
            t = frames.detach()
            if t.dtype.is_floating_point and t.element_size() < 4:
                t = t.float()
            frames = t.cpu().numpy()
        elif not isinstance(frames, np.ndarray):
            raise InputError(f"frames must be a numpy array or a torch tensor (T, H, W), got {type(frames).__name__}",
                             source=self.path)
        if frames.ndim == 2:
            frames = frames[None]
        if frames.ndim != 3:
            raise InputError(f"frames must have shape (T, H, W) or (H, W), got {tuple(frames.shape)}", source=self.path)
        dtype = _check_dtype(frames.dtype, source=self.path)
        self._frames = frames if frames.dtype == dtype else frames.astype(dtype)
        if len(frames) == 0:
            raise InputError("the movie holds no frames", source=self.path)
        self.files: list[Path] = []
        self.frame_shape: tuple[int, int] = (int(frames.shape[1]), int(frames.shape[2]))
        self.dtype: np.dtype = dtype
        self.n_frames: int = int(frames.shape[0])

    def __len__(self) -> int:
        return self.n_frames

    def _read(self, start: int, stop: int) -> np.ndarray:
        out = np.array(self._frames[start:stop])  # a new array, as MovieReader's: the caller's frames stay as they are
        if out.dtype.kind == "f":
            _check_finite_frames(out, start, self.path)
        return out

    def close(self) -> None:
        """Nothing to release (the array stays the caller's)."""

    def __enter__(self) -> ArrayMovie:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __str__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"ArrayMovie({self.path!r}, n_frames={self.n_frames}, frame_shape={self.frame_shape}, dtype={self.dtype})"


def _is_array(obj: Any) -> bool:
    return isinstance(obj, np.ndarray) or (hasattr(obj, "detach") and hasattr(obj, "shape"))


def channel_movies(movie: Any) -> list[str | os.PathLike | ArrayMovie]:
    """The movie of each channel, as the fits take them: a path (a TIFF file or folder, opened later with
    :func:`open_movie`) or an :class:`ArrayMovie`.

    ``movie``: a path; a numpy array or torch tensor of raw frames ``(T, H, W)`` (one channel; ``(H, W)``: one frame)
    or ``(C, T, H, W)`` (one movie per channel, as :attr:`plexloc.simulation.MovieSimulation.frames`); or a list
    with one path or ``(T, H, W)`` array per channel.

    Raises:
        InputError: an array of another rank, or a list item that is neither (a list of single frames ``(H, W)`` is
            refused: stack them into one ``(T, H, W)`` array).
        TypeError: anything else (a number, a dict, a configuration).
    """
    if isinstance(movie, (str, os.PathLike)):
        return [movie]
    if _is_array(movie):
        shape = tuple(movie.shape)
        if len(shape) == 4:
            return [ArrayMovie(movie[c], name=f"in-memory movie, channel {c}") for c in range(shape[0])]
        if len(shape) in (2, 3):
            return [ArrayMovie(movie)]
        raise InputError(f"an in-memory movie must have shape (T, H, W) for one channel or (C, T, H, W) for one "
                         f"movie per channel, got {shape}")
    if isinstance(movie, (list, tuple)) and movie:
        out: list[str | os.PathLike | ArrayMovie] = []
        for c, item in enumerate(movie):
            if isinstance(item, (str, os.PathLike, ArrayMovie)):
                out.append(item)
            elif _is_array(item) and len(item.shape) == 3:
                out.append(ArrayMovie(item, name=f"in-memory movie, channel {c}"))
            else:
                what = f"an array of shape {tuple(item.shape)}" if _is_array(item) else type(item).__name__
                hint = (" (a list of single frames? stack them: numpy.stack(frames) is one (T, H, W) movie)"
                        if _is_array(item) and len(item.shape) == 2 else "")
                raise InputError(f"item {c} of the movie list is {what}; give one path or (T, H, W) array per "
                                 f"channel{hint}")
        return out
    raise TypeError(f"movie must be a TIFF file or folder, a numpy array or torch tensor (T, H, W) or (C, T, H, W) of "
                    f"raw frames, or a list of one per channel; got {type(movie).__name__}")


def open_channel_movie(source: str | os.PathLike | ArrayMovie) -> MovieReader | ArrayMovie:
    """:func:`open_movie` of a path; an :class:`ArrayMovie` as it is."""
    return source if isinstance(source, ArrayMovie) else open_movie(source)


def open_movie(path: str | os.PathLike) -> MovieReader:
    """Open a TIFF movie (file or folder of files) for streaming; see :class:`MovieReader`.

    Args:
        path: a TIFF/BigTIFF/OME-TIFF file, or a folder of TIFF files (natural sort order).

    Raises:
        InputError: missing path, empty folder, unreadable or non-TIFF file, unsupported shape or
            pixel type, or files of a folder that differ in frame shape or pixel type.
    """
    return MovieReader(path)


def read_movie(path: str | os.PathLike) -> np.ndarray:
    """Read a whole TIFF movie into memory as ``(T, H, W)``; a single image gives ``(1, H, W)``.

    Args:
        path: a TIFF/BigTIFF/OME-TIFF file (or a folder of TIFF files, as :func:`open_movie`).

    Returns:
        array of shape ``(T, H, W)`` in the file's pixel type (native byte order).

    Raises:
        InputError: see :func:`open_movie`.
    """
    with MovieReader(path) as movie:
        return movie[:]


# --- writing ------------------------------------------------------------------------------------


def _as_frames(frames: Any, *, source: str | os.PathLike) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise InputError(f"frames must have shape (T, H, W) or (H, W), got {arr.shape}", source=source)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"frames must be numeric, got dtype {arr.dtype}", source=source)
    return arr


def _convert(arr: np.ndarray, dtype: np.dtype, *, source: str | os.PathLike) -> np.ndarray:
    """``arr`` as ``dtype``; integers must fit (after rounding to nearest), never wrap."""
    if dtype.kind == "f":
        return np.asarray(arr, dtype=dtype)
    if arr.size == 0:
        return arr.astype(dtype)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise InputError(f"frames contain NaN or inf, which {dtype} cannot hold", source=source)
        arr = np.rint(arr)
    lo, hi = arr.min(), arr.max()
    info = np.iinfo(dtype)
    if lo < info.min or hi > info.max:
        raise InputError(
            f"frame values span [{lo}, {hi}], outside the range [{info.min}, {info.max}] of {dtype}; "
            "choose a wider dtype (or float32) instead of wrapping",
            source=source,
        )
    return arr.astype(dtype)


def _target_dtype(dtype: Any, *, source: str | os.PathLike) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise InputError(f"unknown dtype {dtype!r}; allowed are {_ALLOWED_DTYPES_TEXT}", source=source) from None
    return _check_dtype(dt, source=source)


_WRITE_KW: dict[str, Any] = {"photometric": "minisblack"}


def write_movie(path: str | os.PathLike, frames: Any, *, dtype: Any = np.uint16) -> None:
    """Write frames ``(T, H, W)`` (or one ``(H, W)`` image) to a TIFF file, atomically.

    Args:
        path: target file (``.tif``/``.tiff``); its folder is created if missing.
        frames: array-like of shape ``(T, H, W)`` or ``(H, W)``.
        dtype: pixel type of the file. For an integer dtype float values are rounded to the nearest
            integer and must fit the dtype's range; NaN/inf are refused.

    The file is BigTIFF when the pixel data exceed 2 GiB, classic TIFF otherwise.

    Raises:
        InputError: wrong rank, unsupported dtype, or values that do not fit ``dtype``.
    """
    target = _target_dtype(dtype, source=path)
    data = _convert(_as_frames(frames, source=path), target, source=path)
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp,
            data,
            bigtiff=data.nbytes > BIGTIFF_THRESHOLD_BYTES,
            metadata={"axes": "TYX"},
            **_WRITE_KW,
        )


class MovieWriter:
    """Append frames to a TIFF movie chunk by chunk; the file appears only on a clean close.

    Args:
        path: target file; written to a temporary file next to it and renamed into place when the
            writer is closed without an exception.
        dtype: pixel type (as :func:`write_movie`: integers must fit, never wrap).
        bigtiff: ``True``/``False`` to force the format; ``None`` (default) writes classic TIFF and
            switches to BigTIFF (copying what was written) once the data pass 2 GiB.

    All frames must share one shape. The result is one image series ``(T, H, W)`` stored
    contiguously, so :func:`open_movie` can memory-map it. Leaving the ``with`` block through an
    exception (or calling :meth:`abort`) discards the temporary file and leaves ``path`` untouched.
    Outside a ``with`` block, end with :meth:`close` (or :meth:`abort`); a writer that is never
    closed leaves its hidden temporary file behind.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> with MovieWriter(d / "long.tif", dtype=np.uint16) as w:
        ...     for k in range(3):
        ...         w.write(np.full((2, 8, 8), k))
        >>> read_movie(d / "long.tif").shape
        (6, 8, 8)
    """

    def __init__(self, path: str | os.PathLike, *, dtype: Any = np.uint16, bigtiff: bool | None = None):
        self.path = Path(path)
        self.dtype = _target_dtype(dtype, source=self.path)
        self._auto_bigtiff = bigtiff is None
        self._bigtiff = bool(bigtiff)
        self._ctx = atomic_path(self.path)
        self._tmp: Path = self._ctx.__enter__()
        self._file: Path = self._tmp  # the file being written (a second temp file after a BigTIFF switch)
        self._tw: tifffile.TiffWriter | None = None
        self.n_frames = 0
        self.frame_shape: tuple[int, int] | None = None
        self._closed = False

    def _put(self, data: np.ndarray) -> None:
        assert self._tw is not None
        for frame in data:  # 2-D pages written contiguously form one (T, H, W) series
            self._tw.write(frame, contiguous=True, **_WRITE_KW)

    def write(self, frames: Any) -> None:
        """Append frames ``(T, H, W)`` or one frame ``(H, W)``."""
        if self._closed:
            raise ValueError(f"{self.path}: movie writer is closed")
        data = _convert(_as_frames(frames, source=self.path), self.dtype, source=self.path)
        if self.frame_shape is None:
            self.frame_shape = (int(data.shape[1]), int(data.shape[2]))
        elif data.shape[1:] != self.frame_shape:
            raise InputError(
                f"frames of shape {data.shape[1:]} do not match the movie's {self.frame_shape}", source=self.path
            )
        total = (self.n_frames + len(data)) * self.frame_shape[0] * self.frame_shape[1] * self.dtype.itemsize
        too_big = self._auto_bigtiff and not self._bigtiff and total > BIGTIFF_THRESHOLD_BYTES
        if self._tw is None:
            self._bigtiff = self._bigtiff or too_big
            self._tw = tifffile.TiffWriter(self._file, bigtiff=self._bigtiff)
        elif too_big:
            self._switch_to_bigtiff()
        self._put(data)
        self.n_frames += len(data)

    def _switch_to_bigtiff(self) -> None:
        """Copy what was written into a new BigTIFF temp file and go on writing there."""
        assert self._tw is not None
        self._tw.close()
        self._tw = None
        fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".big.tmp.tif", dir=self._tmp.parent)
        os.close(fd)
        self._file = Path(name)
        self._bigtiff = True
        self._tw = tifffile.TiffWriter(self._file, bigtiff=True)
        if self.n_frames:
            with MovieReader(self._tmp) as old:
                for _, chunk in old.iter_chunks(256):
                    self._put(chunk)

    def close(self) -> None:
        """Finish the file and rename it into place (idempotent)."""
        self._finish(None)

    def abort(self) -> None:
        """Discard everything written; ``path`` is left untouched (idempotent)."""
        self._finish(_Aborted())

    def _finish(self, exc: BaseException | None) -> None:
        if self._closed:
            return
        self._closed = True
        error = exc
        if self._tw is not None:
            try:
                self._tw.close()
            except BaseException as close_err:  # pragma: no cover - disk full and the like
                error = error or close_err
        if error is None and self.n_frames == 0:
            error = InputError("no frames were written; a TIFF movie needs at least one frame", source=self.path)
        if error is None:
            if self._file != self._tmp:
                os.replace(self._file, self._tmp)
            self._ctx.__exit__(None, None, None)  # rename into place
            return
        if self._file != self._tmp:
            with contextlib.suppress(FileNotFoundError):
                self._file.unlink()
        with contextlib.suppress(BaseException):  # removes the temporary file
            self._ctx.__exit__(type(error), error, error.__traceback__)
        if exc is None:
            raise error

    def __enter__(self) -> MovieWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._finish(exc)


class _Aborted(Exception):
    """Marker passed through the atomic-write context when a writer is aborted."""
