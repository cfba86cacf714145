"""What each import wrote, as its lineage records it, in one SQL fragment for rollback,
verify-data and record history.

A chunk's lineage row (`tidegate.load_lineage`) holds the keys of the rows it inserted and
either their digests (rows written by statements) or its transaction's id (rows written by
COPY: unchanged while their `xmin` is that id); a row image (`tidegate.row_images`) holds the
keys, digests and before-images of the rows it updated."""

from __future__ import annotations

# SQL: a lineage row `w`'s transaction id as `xmin` holds it (32 bits).
XID32 = "(w.xid::text::numeric % 4294967296)::bigint"
# SQL: target row `t` is not as written row `w` (digest, xid) left it.
CHANGED = (
    "(w.digest IS NOT NULL AND hashtextextended(t::text, 0) <> w.digest)"
    " OR (w.xid IS NOT NULL AND t.xmin::text::bigint <> w.xid)"
)


def written_sql(where: str) -> str:
    """SQL: every row the lineage rows and row images `w` that satisfy `where` wrote:
    (kind 'i' inserted or 'u' updated, import_id, seq, key, digest, before, xid). A row image
    stored before images kept their keys has a NULL key (its `before` holds it)."""
    return (
        f"SELECT 'i' AS kind, w.import_id, w.seq, x.key, x.digest, NULL::jsonb AS before,"
        f" {XID32} AS xid FROM tidegate.load_lineage w,"
        " ROWS FROM (jsonb_array_elements(w.keys), unnest(w.digests)) AS x(key, digest)"
        f" WHERE w.keys IS NOT NULL AND {where}"
        " UNION ALL"
        " SELECT 'u', w.import_id, w.seq, x.key, x.digest, x.before, NULL::bigint"
        " FROM tidegate.row_images w, ROWS FROM (jsonb_array_elements(w.keys),"
        " unnest(w.digests), jsonb_array_elements(w.before)) AS x(key, digest, before)"
        f" WHERE {where}"
    )
