"""Prints, as JSON, the public surface of whichever `ml_metadata` this interpreter imports:
names of its modules, MetadataStore's methods with their parameters and defaults, the error
classes and status codes. Run under the official client and under the drop-in, and compared."""

from __future__ import annotations

import inspect
import json
from typing import Any

import ml_metadata
from ml_metadata import errors, proto
from ml_metadata.metadata_store import metadata_store


def _public(module: Any) -> list[str]:
    return sorted(name for name in dir(module) if not name.startswith("_"))


def _signature(function: Any) -> list[list[str]]:
    return [
        [p.name, p.kind.name, "" if p.default is inspect.Parameter.empty else repr(p.default)]
        for p in inspect.signature(function).parameters.values()
    ]


store = metadata_store.MetadataStore
surface = {
    "ml_metadata": [
        n for n in ("ListOptions", "MetadataStore", "OrderByField", "downgrade_schema") if hasattr(ml_metadata, n)
    ],
    "proto": [n for n in _public(proto) if n[0].isupper()],
    "methods": {name: _signature(getattr(store, name)) for name in _public(store) if callable(getattr(store, name))},
    "init": _signature(store.__init__),
    "properties": sorted(n for n in _public(store) if isinstance(getattr(store, n), property)),
    "errors": {
        name: getattr(errors, name)
        for name in _public(errors)
        if name.isupper() and isinstance(getattr(errors, name), int)
    },
    "error_classes": {
        cls.__name__: errors.make_exception("m", code).error_code
        for code in range(1, 17)
        for cls in [type(errors.make_exception("m", code))]
    },
    "list_options": _signature(metadata_store.ListOptions),
    "order_by": sorted(m.name for m in metadata_store.OrderByField),
    "downgrade_schema": _signature(metadata_store.downgrade_schema),
}
print(json.dumps(surface, sort_keys=True))
