"""HTTP routes, one module per query mode (plus ``collections`` for the generic API).

Every module here that defines ``router = APIRouter()`` is included by
:func:`geoseek.service.app.create_app` (discovered with :mod:`pkgutil` when the app is created;
modules whose name starts with ``_`` are skipped). Routes behind ``/collections/{name}/...``
take the opened collection with ``Depends(get_collection)`` from :mod:`geoseek.service.deps`.

A module may tell the app which collections its routes apply to (so ``GET /collections`` lists
only the query modes a collection supports and the web page shows only those tools), by one of:

- ``def supports(collection) -> bool``;
- ``MODALITIES = ("osm-tiles", ...)``: the collection's ``manifest["modality"]`` must be one;
- nothing: the modality of ``geoseek.search.<module>.MODE`` is used when that exists, else the
  routes apply to every collection.

A route's query-mode name comes from its path: ``/collections/{name}/search/sketch-map`` is the
mode ``sketch-map``, ``/collections/{name}/similar`` is ``similar``.
"""
