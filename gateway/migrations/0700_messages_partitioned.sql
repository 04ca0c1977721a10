-- Messages (EDRs) partitioned by month, so that old months can be dropped whole.
--
-- The partition key is the message id. Ids are UUIDv7 (gateway.store.messages
-- new_message_id): their first 48 bits are the Unix milliseconds of acceptance,
-- so a range of ids is a range of time, and a month is the ids from the first
-- possible id of its first millisecond to the first of the next month's. Keyed on
-- id rather than created_at:
--   * the primary key stays (id) — a unique key must contain the partition key —
--     so send_queue's foreign key and every lookup by id (receipts, query_sm,
--     GET /api/messages/{id}) keep working unchanged, each pruned to one partition;
--   * keyed on created_at, the key would become (id, created_at), send_queue would
--     need a created_at column to reference it, and a lookup by id alone would probe
--     every month.
-- Screens that filter on created_at add the matching id range (herald_uuid7_floor)
-- so that PostgreSQL prunes the months outside it: id and created_at are taken at
-- the same moment when a message is accepted.
--
-- The existing table is not copied: it becomes the first partition, holding every id
-- below the first day of next month (ATTACH checks the bound with one scan, writes
-- nothing), and monthly partitions follow from there. Its indexes, foreign key and
-- checks are attached as they are; the parent gets the same definitions, so later
-- months get them too. gateway.store.partitions creates months ahead and drops those
-- past HERALD_EDR_RETENTION_MONTHS (the first partition goes once its last month does).

-- The first UUIDv7 of a time: its millisecond, every other bit zero. (One expression,
-- so that PostgreSQL inlines it into the queries that bound their ids with it.)
CREATE FUNCTION herald_uuid7_floor(at timestamptz) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (encode(int8send(greatest(floor(extract(epoch FROM at) * 1000), 0)::bigint << 16), 'hex')
            || '0000000000000000')::uuid
$$;

-- The time a UUIDv7 was drawn (its first 48 bits as Unix milliseconds).
CREATE FUNCTION herald_uuid7_time(id uuid) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_timestamp(('x' || left(replace(id::text, '-', ''), 12))::bit(48)::bigint / 1000.0)
$$;

-- One month's partition (named messages_yYYYYmMM), unless it exists. Created on its own
-- and then attached: CREATE TABLE ... PARTITION OF would lock messages against every
-- reader and writer (ACCESS EXCLUSIVE), ATTACH only against other schema changes. Each
-- partition keeps a fifth of its pages free for the status updates (0390).
CREATE FUNCTION herald_message_month(month date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    first date := date_trunc('month', month)::date;
    name text := 'messages_y' || to_char(first, 'YYYY') || 'm' || to_char(first, 'MM');
BEGIN
    IF to_regclass(name) IS NULL THEN
        EXECUTE format('CREATE TABLE %I (LIKE messages INCLUDING DEFAULTS INCLUDING CONSTRAINTS'
                       ' INCLUDING STORAGE INCLUDING COMMENTS) WITH (fillfactor = 80)', name);
        EXECUTE format('ALTER TABLE messages ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       name, herald_uuid7_floor(first::timestamp AT TIME ZONE 'UTC'),
                       herald_uuid7_floor((first + interval '1 month')::timestamp AT TIME ZONE 'UTC'));
    END IF;
    RETURN name;
END
$$;

DO $$
DECLARE
    next_month date := (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month')::date;
    item record;
    definition text;
BEGIN
    ALTER TABLE messages RENAME TO messages_legacy;

    -- Free the names of the indexes and constraints for the parent's.
    FOR item IN SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                WHERE i.indrelid = 'messages_legacy'::regclass LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', item.relname, item.relname || '_legacy');
    END LOOP;
    FOR item IN SELECT conname FROM pg_constraint
                WHERE conrelid = 'messages_legacy'::regclass AND contype = 'f' LOOP
        EXECUTE format('ALTER TABLE messages_legacy RENAME CONSTRAINT %I TO %I',
                       item.conname, item.conname || '_legacy');
    END LOOP;

    CREATE TABLE messages (LIKE messages_legacy INCLUDING DEFAULTS INCLUDING CONSTRAINTS
                           INCLUDING STORAGE INCLUDING COMMENTS)
        PARTITION BY RANGE (id);

    -- The same indexes and foreign keys on the parent, under their old names; attaching
    -- the old table then adopts its own as the parent's (no index is built again).
    FOR item IN SELECT c.relname, pg_get_indexdef(i.indexrelid) AS def, i.indisprimary
                FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                WHERE i.indrelid = 'messages_legacy'::regclass LOOP
        IF item.indisprimary THEN
            ALTER TABLE messages ADD CONSTRAINT messages_pkey PRIMARY KEY (id);
        ELSE
            definition := replace(item.def, 'ON public.messages_legacy ', 'ON public.messages ');
            definition := replace(definition, 'INDEX ' || item.relname || ' ',
                                  'INDEX ' || left(item.relname, -length('_legacy')) || ' ');
            EXECUTE definition;
        END IF;
    END LOOP;
    FOR item IN SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
                WHERE conrelid = 'messages_legacy'::regclass AND contype = 'f' LOOP
        EXECUTE format('ALTER TABLE messages ADD CONSTRAINT %I %s',
                       left(item.conname, -length('_legacy')), item.def);
    END LOOP;

    -- Row triggers move to the parent, which gives them to every partition.
    FOR item IN SELECT tgname, pg_get_triggerdef(oid) AS def FROM pg_trigger
                WHERE tgrelid = 'messages_legacy'::regclass AND NOT tgisinternal LOOP
        EXECUTE format('DROP TRIGGER %I ON messages_legacy', item.tgname);
        EXECUTE replace(item.def, ' ON public.messages_legacy ', ' ON public.messages ');
    END LOOP;

    EXECUTE format('ALTER TABLE messages ATTACH PARTITION messages_legacy FOR VALUES FROM (MINVALUE) TO (%L)',
                   herald_uuid7_floor(next_month::timestamp AT TIME ZONE 'UTC'));

    -- Tables referencing messages now reference the partitioned table.
    FOR item IN SELECT conrelid::regclass AS tab, conname, pg_get_constraintdef(oid) AS def
                FROM pg_constraint WHERE confrelid = 'messages_legacy'::regclass AND contype = 'f'
                  AND conparentid = 0 AND conrelid <> 'messages_legacy'::regclass LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', item.tab, item.conname);
        EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', item.tab, item.conname,
                       replace(item.def, 'REFERENCES messages_legacy(', 'REFERENCES messages('));
    END LOOP;

    -- The old table is the partition of everything before next month.
    EXECUTE format('ALTER TABLE messages_legacy RENAME TO %I',
                   'messages_before_y' || to_char(next_month, 'YYYY') || 'm' || to_char(next_month, 'MM'));

    -- Two months ahead; gateway.store.partitions keeps it so.
    FOR n IN 0..1 LOOP
        PERFORM herald_message_month((next_month + make_interval(months => n))::date);
    END LOOP;
END
$$;
