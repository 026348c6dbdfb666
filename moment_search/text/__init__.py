"""The text side: frozen MiniLM token embeddings and FVMR's semantic role tree.

Neither module imports its heavy dependency (transformers, spaCy) until an encoder or parser is
built, so importing this package is cheap.
"""

from moment_search.text.role_tree import RoleTree, RoleTreeParser, Word, tree_from_doc
from moment_search.text.tokens import (
    CacheInfo,
    TokenBatch,
    TokenEncoder,
    resolve_model_path,
    span_embeddings,
)

__all__ = [
    "CacheInfo",
    "RoleTree",
    "RoleTreeParser",
    "TokenBatch",
    "TokenEncoder",
    "Word",
    "resolve_model_path",
    "span_embeddings",
    "tree_from_doc",
]
