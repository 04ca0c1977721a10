from gateway.runtime.main import build_app


async def test_healthz_reports_postgres_and_redis(settings, make_client):
    client = await make_client(build_app(settings))
    resp = await client.get("/healthz")
    assert resp.status == 200
    # no services built: the HTTP API alone (as a test client runs it)
    assert await resp.json() == {"status": "ok", "postgres": "ok", "redis": "ok",
                                 "worker": 0, "role": "all", "services": {}}
    assert resp.headers["X-Request-Id"]


async def test_healthz_503_when_redis_unreachable(settings, make_client):
    from gateway.base.embedded import free_port

    broken = settings.replace(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    client = await make_client(build_app(broken))
    resp = await client.get("/healthz")
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "unavailable" and body["postgres"] == "ok"
    assert body["redis"].startswith("error")


async def test_healthz_lists_the_smpp_server_of_an_ingress_process_and_503_once_it_stops(
        settings, make_client):
    from gateway.runtime.services import build_services

    client = await make_client(build_app(settings.replace(role="ingress", worker=2)))
    (ingress,) = build_services(client.app)
    resp = await client.get("/healthz")
    assert resp.status == 503  # built, not started yet
    assert (await resp.json())["services"] == {"smpp_server": "not listening"}
    await ingress.start()
    try:
        resp = await client.get("/healthz")
        assert resp.status == 200
        assert await resp.json() == {"status": "ok", "postgres": "ok", "redis": "ok", "worker": 2,
                                     "role": "ingress", "services": {"smpp_server": "ok"}}
        assert (await client.get("/healthz?service=smpp_server")).status == 200
        absent = await client.get("/healthz?service=callbacks")  # an egress service
        assert absent.status == 404 and (await absent.json())["status"] == "absent"
    finally:
        await ingress.stop()
    resp = await client.get("/healthz")
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "unavailable" and body["services"] == {"smpp_server": "not listening"}
    assert (await client.get("/healthz?service=smpp_server")).status == 503


async def test_healthz_names_the_one_stopped_service_of_a_full_process(settings, make_client):
    from gateway.runtime.housekeeping import Housekeeping
    from gateway.runtime.services import build_services

    client = await make_client(build_app(settings))
    services = build_services(client.app)
    started = []
    try:
        for service in services:
            await service.start()
            started.append(service)
        resp = await client.get("/healthz")
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["services"] == {
            "callbacks": "ok", "vendor_connectors": "ok", "smpp_server": "ok",
            "viber_connectors": "ok", "viber_cascade": "ok", "housekeeping": "ok"}
        (housekeeping,) = [s for s in services if isinstance(s, Housekeeping)]
        await housekeeping.stop()
        resp = await client.get("/healthz")
        assert resp.status == 503
        body = await resp.json()
        assert body["services"]["housekeeping"] == "stopped"
        assert body["services"]["smpp_server"] == "ok"
        # a balancer asking for SMPP alone still routes here
        assert (await client.get("/healthz?service=smpp_server")).status == 200
        assert (await client.get("/healthz?service=housekeeping")).status == 503
    finally:
        for service in reversed(started):
            await service.stop()


async def test_a_service_whose_task_failed_says_why():
    import asyncio

    from gateway.base.app import task_health

    async def broken() -> None:
        raise RuntimeError("pool gone")

    task = asyncio.create_task(broken())
    assert task_health(task) == "ok"  # not run yet
    await asyncio.wait([task])
    assert task_health(task) == "failed: RuntimeError('pool gone')"
    assert task_health(None) == "not running"


def test_health_status():
    from gateway.base.app import health_status

    ok = {"postgres": "ok", "redis": "ok"}
    pg_down = {"postgres": "error: refused", "redis": "ok"}
    services = {"smpp_server": "ok", "housekeeping": "stopped"}
    for checks, svc, wanted, status in (
        (ok, {}, None, 200),
        (ok, {"smpp_server": "ok"}, None, 200),
        (ok, services, None, 503),
        (ok, services, "smpp_server", 200),
        (ok, services, "housekeeping", 503),
        (ok, services, "callbacks", 404),
        (pg_down, {"smpp_server": "ok"}, "smpp_server", 503),
        (pg_down, {}, None, 503),
    ):
        assert health_status(checks, svc, wanted) == status, (checks, svc, wanted)


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

    from gateway.runtime.main import prepare_database

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
