"""The LanceDB store: chunks with vectors, a BM25 full-text index, filters, and hybrid search (RRF).

Writes for a batch of documents are one LanceDB commit (``merge_insert`` keyed by chunk id, deleting the
batch's old chunks by source), so a reader sees either the old or the new version of a document, never
both and never neither.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ragline.errors import StoreError
from ragline.types import Chunk, Hit, Vectors

TABLE = "chunks"
COLUMNS = ["id", "doc_id", "ordinal", "text", "title", "heading", "page", "tenant", "language", "tags"]
_COLUMN_FILTERS = {"tenant", "language", "doc_id", "title"}


def sql_quote(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def where_clause(filters: Mapping[str, str]) -> str | None:
    """SQL for ``key=value`` filters: known columns directly, ``source`` as a doc_id prefix, else a tag."""
    parts = []
    for key, value in sorted(filters.items()):
        if key in _COLUMN_FILTERS:
            parts.append(f"{key} = {sql_quote(value)}")
        elif key == "source":
            like = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            parts.append(f"(doc_id = {sql_quote(value)} OR doc_id LIKE {sql_quote(like + '%')})")
        else:
            parts.append(f"array_has(tags, {sql_quote(f'{key}={value}')})")
    return " AND ".join(parts) or None


def import_lancedb() -> Any:
    """``import lancedb``, without running the REST namespace client's package ``__init__`` up front.

    lancedb imports ``lance_namespace_urllib3_client.models``; the client's ``__init__`` would first import
    every REST API class, each method wrapped by pydantic's ``validate_call``: about 0.9 s of a 1.7 s import,
    for a client a local or S3 table never uses. The package is registered unexecuted, its submodules import
    as usual, and the ``__init__`` runs on the first attribute taken from the package itself.
    """
    import sys

    name = "lance_namespace_urllib3_client"
    if name not in sys.modules and "lancedb" not in sys.modules:
        from importlib.util import find_spec, module_from_spec

        spec = find_spec(name)
        if spec is not None and spec.loader is not None and spec.submodule_search_locations is not None:
            module = module_from_spec(spec)
            loader = spec.loader

            def load_on_use(attr: str) -> Any:
                del module.__getattr__
                loader.exec_module(module)
                return getattr(module, attr)

            module.__getattr__ = load_on_use  # type: ignore[method-assign]
            sys.modules[name] = module
    import lancedb

    return lancedb


def _chunk_from_row(row: Mapping[str, Any]) -> Chunk:
    return Chunk(
        id=row["id"],
        doc_id=row["doc_id"],
        ordinal=int(row["ordinal"]),
        text=row["text"],
        title=row["title"] or "",
        heading=row["heading"] or "",
        page=row["page"],
        tenant=row["tenant"],
        language=row["language"],
        tags=tuple(row["tags"] or ()),
    )


class LanceStore:
    """Chunks in a LanceDB table in a local folder (or any URI LanceDB opens, such as ``s3://``)."""

    def __init__(
        self, uri: str | Path, dimension: int, storage_options: Mapping[str, str] | None = None, *,
        ann_min_rows: int = 0, exact: bool = False,
    ) -> None:
        self.uri = str(uri)
        self.storage_options = dict(storage_options or {})
        self.dimension = dimension
        self.ann_min_rows = ann_min_rows  # build the ANN index at this many chunks (0: never on its own)
        self.exact = exact  # search every vector even when an ANN index exists
        self._db: Any = None
        self._table: Any = None
        self._lock = threading.Lock()
        self._fts_ready = False

    def _connect(self) -> Any:
        if self._db is None:
            lancedb = import_lancedb()
            if "://" not in self.uri:
                Path(self.uri).mkdir(parents=True, exist_ok=True)
            self._db = lancedb.connect(self.uri, storage_options=self.storage_options or None)
        return self._db

    def _schema(self) -> Any:
        import pyarrow as pa

        return pa.schema(
            [
                ("id", pa.string()),
                ("doc_id", pa.string()),
                ("ordinal", pa.int32()),
                ("text", pa.string()),
                ("context", pa.string()),
                ("title", pa.string()),
                ("heading", pa.string()),
                ("page", pa.int32()),
                ("tenant", pa.string()),
                ("language", pa.string()),
                ("tags", pa.list_(pa.string())),
                ("vector", pa.list_(pa.float32(), self.dimension)),
            ]
        )

    def _open(self, create: bool = False) -> Any:
        if self._table is None:
            db = self._connect()
            try:
                self._table = db.open_table(TABLE)
            except ValueError:  # "Table 'chunks' was not found"
                if create:
                    self._table = db.create_table(TABLE, schema=self._schema())
            else:
                width = self._table.schema.field("vector").type.list_size
                if width != self.dimension:
                    raise StoreError(
                        f"the index at {self.uri} holds {width}-dimensional vectors but the embedder makes "
                        f"{self.dimension}; vectors of different models are not comparable: use another "
                        "home folder or re-ingest into an empty one"
                    )
        return self._table

    def _rows(self, chunks: Sequence[Chunk], vectors: Vectors) -> Any:
        import pyarrow as pa

        data = {
            "id": [c.id for c in chunks],
            "doc_id": [c.doc_id for c in chunks],
            "ordinal": [c.ordinal for c in chunks],
            "text": [c.text for c in chunks],
            "context": [c.context_text() for c in chunks],
            "title": [c.title for c in chunks],
            "heading": [c.heading for c in chunks],
            "page": [c.page for c in chunks],
            "tenant": [c.tenant for c in chunks],
            "language": [c.language for c in chunks],
            "tags": [list(c.tags) for c in chunks],
            "vector": pa.FixedSizeListArray.from_arrays(
                pa.array(vectors.reshape(-1), pa.float32()), self.dimension
            ),
        }
        return pa.Table.from_pydict(data, schema=self._schema())

    def replace_documents(
        self, tenant: str, doc_ids: Sequence[str], chunks: Sequence[Chunk], vectors: Vectors, *, fresh: bool
    ) -> None:
        """Make ``chunks`` the whole content of ``doc_ids`` in one commit (``fresh``: none stored yet)."""
        if not doc_ids:
            return
        rows = self._rows(chunks, vectors)
        with self._lock:
            table = self._open(create=True)
            scope = f"tenant = {sql_quote(tenant)} AND doc_id IN ({', '.join(map(sql_quote, doc_ids))})"
            if fresh:
                # No stored version to keep: clear what an interrupted run may have left, then append.
                table.delete(scope)
                if len(chunks):
                    table.add(rows)
                return
            (
                table.merge_insert("id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .when_not_matched_by_source_delete(scope)
                .execute(rows)
            )

    def delete_document(self, tenant: str, doc_id: str) -> None:
        """Remove every chunk of one document."""
        with self._lock:
            table = self._open()
            if table is not None:
                table.delete(f"tenant = {sql_quote(tenant)} AND doc_id = {sql_quote(doc_id)}")

    def _has_fts(self, table: Any) -> bool:
        return any(getattr(ix, "index_type", "") == "FTS" for ix in table.list_indices())

    def _create_fts(self, table: Any) -> None:
        from lancedb.index import FTS

        table.create_index("context", config=FTS(with_position=False, stem=True, remove_stop_words=True))

    def refresh_indexes(self) -> None:
        """After a write: compact the table, fold the new rows into the indexes, build the full-text index if missing.

        The ANN vector index is built once the table reaches ``ann_min_rows`` chunks; after that, new rows
        are folded into it by ``optimize`` (and found by a flat scan of the unindexed rows until then).
        """
        with self._lock:
            table = self._open()
            if table is None:
                return
            # optimize compacts the fragments each written batch left (a first ingestion of 1,000 pages queried
            # 30 % slower before it: 48 against 37 ms p50) and folds new rows into the indexes
            table.optimize()
            if not self._has_fts(table):
                self._create_fts(table)
            self._fts_ready = True
            if self.ann_min_rows and not self._vector_indexes(table) and table.count_rows() >= self.ann_min_rows:
                self._create_vector_index(table)

    @staticmethod
    def _vector_indexes(table: Any) -> list[Any]:
        return [ix for ix in table.list_indices() if getattr(ix, "columns", None) == ["vector"]]

    @staticmethod
    def _create_vector_index(table: Any) -> None:
        # IVF partitions of ~4,096 vectors, each searched through an HNSW graph of 8-bit scalar-quantised
        # vectors: high recall without the refine step that product quantisation needs.
        from lancedb.index import IvfHnswSq

        partitions = max(1, table.count_rows() // 4096)
        table.create_index("vector", config=IvfHnswSq(distance_type="cosine", num_partitions=partitions),
                           replace=True)

    def build_vector_index(self) -> bool:
        """Build (or rebuild) the ANN vector index now, whatever the table's size; False when there is no table."""
        with self._lock:
            table = self._open()
            if table is None or table.count_rows() == 0:
                return False
            self._create_vector_index(table)
            return True

    def drop_vector_index(self) -> None:
        """Remove the ANN vector index: searches scan every vector again."""
        with self._lock:
            table = self._open()
            for ix in self._vector_indexes(table) if table is not None else []:
                table.drop_index(ix.name)

    @property
    def version(self) -> int:
        """The table's version: it changes with every write."""
        table = self._open()
        return int(table.version) if table is not None else 0

    def describe(self) -> str:
        """How many chunks the table holds (opening it is the check)."""
        return f"{self.count():,} chunks in {self.uri}"

    def count(self, filters: Mapping[str, str] | None = None) -> int:
        """Chunks matching ``filters``."""
        table = self._open()
        return 0 if table is None else int(table.count_rows(where_clause(filters or {})))

    def passages(self, filters: Mapping[str, str], limit: int) -> list[Chunk]:
        """Chunks matching ``filters``, in reading order (a filtered scan, no ranking)."""
        table = self._open()
        if table is None:
            return []
        query = table.search().limit(limit).select(COLUMNS)
        where = where_clause(filters)
        if where:
            query = query.where(where)
        return sorted((_chunk_from_row(row) for row in query.to_list()), key=lambda c: (c.doc_id, c.ordinal))

    def _hits(self, rows: list[dict[str, Any]], score_key: str, name: str) -> list[Hit]:
        hits = []
        for row in rows:
            raw = float(row.get(score_key, 0.0))
            score = 1.0 - raw / 2.0 if score_key == "_distance" else raw
            hits.append(Hit(_chunk_from_row(row), score, (name,)))
        return hits

    def search_vector(self, vector: Vectors, k: int, filters: Mapping[str, str]) -> list[Hit]:
        """Nearest chunks by cosine similarity."""
        table = self._open()
        if table is None:
            return []
        query = table.search(vector, vector_column_name="vector").distance_type("cosine").limit(k)
        # With an ANN index: HNSW's candidate list (ef) of at least 100, so that small k keep a high recall.
        query = query.bypass_vector_index() if self.exact else query.ef(max(2 * k, 100))
        where = where_clause(filters)
        if where:
            query = query.where(where, prefilter=True)
        return self._hits(query.select([*COLUMNS, "_distance"]).to_list(), "_distance", "vector")

    def search_text(self, text: str, k: int, filters: Mapping[str, str]) -> list[Hit]:
        """Best chunks by BM25 over title, breadcrumb and text."""
        table = self._open()
        if table is None or not text.strip():
            return []
        if not self._fts_ready:
            with self._lock:
                if not self._has_fts(table):
                    self._create_fts(table)
                self._fts_ready = True
        # A quoted phrase is a phrase query, which needs word positions the index does not keep: search the words
        query = table.search(text.replace('"', " "), query_type="fts", fts_columns="context").limit(k)
        where = where_clause(filters)
        if where:
            query = query.where(where, prefilter=True)
        return self._hits(query.select([*COLUMNS, "_score"]).to_list(), "_score", "bm25")
