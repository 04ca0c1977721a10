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
