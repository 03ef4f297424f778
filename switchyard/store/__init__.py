"""SQLModel tables and the engine. The database is the source of truth."""
