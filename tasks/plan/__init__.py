"""From valid rows to jobs: one per image, with a stable asset_id and a priced cost range."""
