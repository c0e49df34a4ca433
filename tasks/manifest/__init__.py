"""Reading a manifest (CSV, Parquet, JSONL) and validating every row into a row or a reject."""
