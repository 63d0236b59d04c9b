"""The HTTP API and browser playground over a folder of SQLite databases.

``create_app(db_dir, model_path)`` builds the FastAPI application; ``graphix serve`` runs it
on uvicorn. FastAPI and uvicorn come with the ``serve`` extra: ``pip install 'graphix[serve]'``.
"""

from graphix.server.app import create_app

__all__ = ["create_app"]
