"""The capabilities: one package per published system, each split by job.

Every capability package has the same rooms (a module is absent where the capability has no such job):

- ``data``: what it reads, samples and caches (datasets, feature caches, scene sets);
- ``task``: its training task for the shared loop (:func:`geoseek.train.fit`) and its train entry point;
- ``evaluate``: its paper's protocol, the baselines beside it and the metrics it reports;
- ``figures``: the plots a person looks at (retrieval grids, embedding maps);
- ``build``: source → items and vectors → a :class:`geoseek.collection.Collection`;
- ``search``: its query pipeline over a built collection.

What two capabilities do alike lives once, in :mod:`geoseek.capabilities.common`. Layers: a
capability may import sources, encoders, losses, index, collection, train and common; nothing
below the capabilities (sources, encoders, index, collection) imports them. The query entry
points in :mod:`geoseek.search`, the service and the CLI call into them.
"""
