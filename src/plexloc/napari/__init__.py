"""napari plugin (optional extra ``plexloc[napari]``): open localization tables as a points layer plus a
rendered image layer. The reader functions here need neither napari nor npe2; napari finds them through
``napari.yaml`` (entry point ``napari.manifest``)."""

from plexloc.napari._reader import get_reader, read_localizations

__all__ = ["get_reader", "read_localizations"]
