from gateway.main import build_app


async def test_healthz_reports_postgres_and_redis(settings, make_client):
    client = await make_client(build_app(settings))
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "postgres": "ok", "redis": "ok"}
    assert resp.headers["X-Request-Id"]


async def test_healthz_503_when_redis_unreachable(settings, make_client):
    from gateway.embedded import free_port

    broken = settings.replace(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    client = await make_client(build_app(broken))
    resp = await client.get("/healthz")
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "unavailable" and body["postgres"] == "ok"
    assert body["redis"].startswith("error")


async def test_metrics_in_prometheus_text(settings, make_client):
    client = await make_client(build_app(settings))
    await client.get("/healthz")
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    assert 'herald_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text


async def test_prepare_database_seeds_reference_book_and_secret_once(settings):
    import asyncpg

    from gateway.main import prepare_database

    blank = settings.replace(secret_key="")
    first = await prepare_database(blank)
    conn = await asyncpg.connect(settings.database_url)
    try:
        prefixes = await conn.fetchval("SELECT count(*) FROM number_prefixes")
        assert prefixes > 1000  # the world table: every country at least
        assert await conn.fetchval(
            "SELECT country FROM number_prefixes WHERE prefix = '44' LIMIT 1") is not None
        second = await prepare_database(blank)
        assert await conn.fetchval("SELECT count(*) FROM number_prefixes") == prefixes
    finally:
        await conn.close()
    assert first.secret_key and first.secret_key == second.secret_key  # one secret for every process
