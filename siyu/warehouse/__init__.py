"""The analytics warehouse: a DuckDB copy of the operational store, keyed by customer."""
