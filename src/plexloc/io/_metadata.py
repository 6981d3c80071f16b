"""Reading a TIFF file's Micro-Manager and OME-XML metadata, once, for every module that looks at them
(:mod:`plexloc.io.pixel_size`, :mod:`plexloc.io.roi`, :mod:`plexloc.io.movie_info`).

- :func:`micro_manager_metadata`: the first page's per-image JSON (TIFF tag 51123, decoded by tifffile) and the
  summary JSON of the file header (``TiffFile.micromanager_metadata['Summary']``, read only where the first page has
  the per-image tag, as tifffile itself requires; a damaged header gives ``{}``: tifffile logs it).
- :func:`ome_root`: the OME-XML description parsed by an XML parser (entities resolved, either quote), parsed once
  per open ``TiffFile`` (a Micro-Manager OME-TIFF of 50,000 frames holds megabytes of ``Plane`` and ``TiffData``
  elements); None where the file is no OME-TIFF or its XML does not parse.
"""

from __future__ import annotations

import contextlib
import weakref
import xml.etree.ElementTree as ET
from typing import Any

__all__ = ["MM_METADATA_TAG", "first_element", "local_name", "micro_manager_metadata", "ome_root"]

#: TIFF tag of Micro-Manager's per-image JSON metadata ("MicroManagerMetadata").
MM_METADATA_TAG = 51123

#: parsed OME-XML per open TiffFile (weak: forgotten with the file)
_OME_ROOTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_UNPARSED = object()


def micro_manager_metadata(tf) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(image, summary)``: the first page's Micro-Manager per-image metadata and the summary metadata of an open
    ``tifffile.TiffFile``, each ``{}`` where it is absent, damaged or not a JSON object."""
    tag = tf.pages.first.tags.get(MM_METADATA_TAG)
    if tag is None:
        return {}, {}
    image = tag.value if isinstance(tag.value, dict) else {}
    summary: Any = {}
    with contextlib.suppress(Exception):  # a damaged header: tifffile logs it; the images may still be fine
        summary = (tf.micromanager_metadata or {}).get("Summary") or {}
    return image, summary if isinstance(summary, dict) else {}


def ome_root(tf) -> ET.Element | None:
    """The root element of an open ``tifffile.TiffFile``'s OME-XML, parsed once per file; None where it is no
    OME-TIFF or the XML does not parse (errors reading the description itself are raised)."""
    if not getattr(tf, "is_ome", False):
        return None
    try:
        cached = _OME_ROOTS.get(tf, _UNPARSED)
    except TypeError:  # not weak-referenceable: parsed each time
        cached = _UNPARSED
    if cached is not _UNPARSED:
        return cached
    xml = tf.ome_metadata
    root = None
    if xml:
        try:
            root = ET.fromstring(xml.encode("utf-8") if isinstance(xml, str) else xml)
        except (ET.ParseError, ValueError):
            root = None
    with contextlib.suppress(TypeError):
        _OME_ROOTS[tf] = root
    return root


def local_name(tag: str) -> str:
    """An XML tag without its namespace (``{http://www.openmicroscopy.org/...}Pixels`` -> ``Pixels``)."""
    return tag.rsplit("}", 1)[-1]


def first_element(root: ET.Element, name: str) -> ET.Element | None:
    """The first element below (or at) ``root`` named ``name`` in any namespace, in document order."""
    for el in root.iter():
        if local_name(el.tag) == name:
            return el
    return None
