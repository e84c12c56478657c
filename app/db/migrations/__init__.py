"""Alembic migrations of the gateway's database, shipped inside the package (see app/db/migrate.py)."""
