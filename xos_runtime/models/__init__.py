"""The models layer: xproto parsing, model definitions and the model dependency graph.

Everything above this layer (store, engines, cli) imports from here, never from the private
details of the modules below. Typical use at start-up::

    models = load_models([settings.models_dir, *plugin_texts])
    graph = build_model_graph(models, deps_file=settings.dependency_graph)
    order = sync_order(graph)
"""

from xos_runtime.models.definitions import (
    BOOKKEEPING_FIELDS,
    BOOKKEEPING_NAMES,
    NO_DEFAULT,
    ROOT_BASE,
    SCALAR_TYPES,
    Field,
    Link,
    Model,
    ModelSet,
    is_bookkeeping,
)
from xos_runtime.models.graph import (
    GRAPH_FORMATS,
    LINKS_ORIGIN,
    build_model_graph,
    deletion_order,
    format_graph,
    sync_order,
)
from xos_runtime.models.loader import ModelSource, load_models, validate_models
from xos_runtime.models.xproto import (
    BASES_OPTION,
    LINK_KINDS,
    POLICY_OPTION,
    REVERSE_ID_OPTION,
    XprotoFile,
    convert_default,
    parse_xproto,
)

__all__ = [
    "BASES_OPTION",
    "BOOKKEEPING_FIELDS",
    "BOOKKEEPING_NAMES",
    "GRAPH_FORMATS",
    "LINKS_ORIGIN",
    "LINK_KINDS",
    "NO_DEFAULT",
    "POLICY_OPTION",
    "REVERSE_ID_OPTION",
    "ROOT_BASE",
    "SCALAR_TYPES",
    "Field",
    "Link",
    "Model",
    "ModelSet",
    "ModelSource",
    "XprotoFile",
    "build_model_graph",
    "convert_default",
    "deletion_order",
    "format_graph",
    "is_bookkeeping",
    "load_models",
    "parse_xproto",
    "sync_order",
    "validate_models",
]
