"""The SQL system of record: models, engine factory and migrations."""
