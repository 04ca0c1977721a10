"""Fixtures shared by the gateway tests."""

from __future__ import annotations

import pytest_asyncio

from gateway.accept.pipeline import Pipeline


@pytest_asyncio.fixture(loop_scope="session")
async def pipeline(pool, redis, settings):
    """A started pipeline with its own group-commit writer."""
    p = Pipeline(pool, redis, settings)
    await p.start()
    yield p
    await p.stop()
