import asyncpg
import pytest

from gateway.base.migrate import MigrationError, discover, migrate
from gateway.base.seed import seed_system_owner
from tests.conftest import drop_database


async def _empty_db(pg_url: str, name: str) -> str:
    admin = await asyncpg.connect(pg_url)
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    return pg_url.rsplit("/", 1)[0] + f"/{name}"


async def test_migrations_apply_on_empty_database_and_are_idempotent(pg_url):
    url = await _empty_db(pg_url, "herald_mig_empty")
    conn = await asyncpg.connect(url)
    try:
        applied = await migrate(conn)
        assert applied == [m.path.name for m in discover()]
        assert await migrate(conn) == []
        versions = [r["version"] for r in await conn.fetch(
            "SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == [m.version for m in discover()]
    finally:
        await conn.close()
        await drop_database(pg_url, url)


async def test_concurrent_migrations_apply_each_file_once(pg_url):
    import asyncio

    url = await _empty_db(pg_url, "herald_mig_race")
    conns = [await asyncpg.connect(url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        assert sorted(len(r) for r in results) == [0, 0, len(discover())]
    finally:
        for c in conns:
            await c.close()
        await drop_database(pg_url, url)


async def test_failed_migration_leaves_schema_and_names_file(pg_url, tmp_path):
    (tmp_path / "0001_good.sql").write_text("CREATE TABLE good (id int);")
    (tmp_path / "0002_bad.sql").write_text(
        "CREATE TABLE half (id int);\nSELECT * FROM no_such_table;")
    url = await _empty_db(pg_url, "herald_mig_bad")
    conn = await asyncpg.connect(url)
    try:
        with pytest.raises(MigrationError) as err:
            await migrate(conn, tmp_path)
        assert "0002_bad.sql" in str(err.value)
        assert "no_such_table" in str(err.value)
        tables = {r["tablename"] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert "good" in tables and "half" not in tables
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 1
        # fixed file applies on the next run
        (tmp_path / "0002_bad.sql").write_text("CREATE TABLE half (id int);")
        assert await migrate(conn, tmp_path) == ["0002_bad.sql"]
    finally:
        await conn.close()
        await drop_database(pg_url, url)


def test_badly_named_or_duplicate_files_are_refused(tmp_path):
    (tmp_path / "1_x.sql").write_text("")
    with pytest.raises(MigrationError, match="name must look like"):
        discover(tmp_path)
    (tmp_path / "1_x.sql").unlink()
    (tmp_path / "0001_a.sql").write_text("")
    (tmp_path / "0001_b.sql").write_text("")
    with pytest.raises(MigrationError, match="also used by"):
        discover(tmp_path)


async def test_seed_creates_owner_portal_admin_once(conn):
    # the template is already seeded: a second seed changes nothing
    result = await seed_system_owner(conn, admin_email="other@x.test", admin_password="pw")
    assert result.created is False
    owner = await conn.fetchrow("SELECT * FROM partners WHERE kind = 'owner'")
    assert owner["path"] == [owner["id"]]
    portal = await conn.fetchrow("SELECT * FROM portals WHERE is_default")
    assert portal["owner_partner_id"] == owner["id"]
    admin = await conn.fetchrow("SELECT * FROM users WHERE role = 'owner_admin'")
    assert admin["status"] == "active" and admin["partner_id"] == owner["id"]


async def test_seed_generates_password_when_none_given(conn):
    await conn.execute("DELETE FROM users; UPDATE portals SET owner_partner_id = NULL; DELETE FROM partners; DELETE FROM portals;")
    result = await seed_system_owner(conn, admin_email="first@x.test")
    assert result.created and result.generated_password and len(result.generated_password) >= 12
    from argon2 import PasswordHasher

    stored = await conn.fetchval("SELECT password_hash FROM users WHERE email = 'first@x.test'")
    assert PasswordHasher().verify(stored, result.generated_password)


async def test_partner_path_is_filled_from_parent(conn):
    owner_id, portal_id = await conn.fetchrow(
        "SELECT id, portal_id FROM partners WHERE kind = 'owner'")
    reseller = await conn.fetchval(
        "INSERT INTO partners (parent_id, kind, name, portal_id) VALUES ($1, 'reseller', 'R', $2) RETURNING id",
        owner_id, portal_id)
    client = await conn.fetchval(
        "INSERT INTO partners (parent_id, kind, name, portal_id) VALUES ($1, 'client', 'C', $2) RETURNING id",
        reseller, portal_id)
    assert await conn.fetchval("SELECT path FROM partners WHERE id = $1", client) == [owner_id, reseller, client]


async def test_client_ref_formats_move_to_their_typed_columns(pg_url, tmp_path):
    """Migration 0440 on a database that has every other migration (messages partitioned
    already): each of the four formats becomes its columns, anything else stays as it is."""
    import shutil
    import uuid

    from gateway.base.migrate import MIGRATIONS_DIR
    from gateway.store.messages import new_message_id

    for path in MIGRATIONS_DIR.glob("*.sql"):
        if not path.name.startswith("0440_"):
            shutil.copy(path, tmp_path / path.name)
    url = await _empty_db(pg_url, "herald_mig_refs")
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn, tmp_path)
        await seed_system_owner(conn, admin_email="refs@x.test", admin_password="pw-refs-1")
        owner = await conn.fetchval("SELECT id FROM partners WHERE kind = 'owner'")
        viber = uuid.UUID("0193f1c2-0000-7000-8000-000000000001")
        refs = ["svc:CMT", "concat:300:3:2:1", "concat:7:2:1:0", "raw:1", "raw:0",
                f"cascade:{viber}", "r17", None]
        ids = []
        for ref in refs:
            ids.append(await conn.fetchval(
                """INSERT INTO messages (id, partner_id, origin, sender, destination, client_ref)
                   VALUES ($1, $2, 'smpp', 'S', '79161234567', $3) RETURNING id""",
                new_message_id(), owner, ref))
        assert await migrate(conn) == ["0440_message_typed_refs.sql"]
        rows = {r["id"]: tuple(r)[1:] for r in await conn.fetch(
            """SELECT id, client_ref, service_type, concat_ref, concat_total, concat_seq,
                      concat_wide, udhi, fallback_for FROM messages""")}
        assert [rows[i] for i in ids] == [
            (None, "CMT", None, None, None, None, None, None),
            (None, None, 300, 3, 2, True, None, None),
            (None, None, 7, 2, 1, False, None, None),
            (None, None, None, None, None, None, True, None),
            (None, None, None, None, None, None, False, None),
            (None, None, None, None, None, None, None, viber),
            ("r17", None, None, None, None, None, None, None),   # a producer's own: untouched
            (None, None, None, None, None, None, None, None),
        ]
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE messages SET concat_ref = 1 WHERE id = $1", ids[-1])
    finally:
        await conn.close()
        await drop_database(pg_url, url)
