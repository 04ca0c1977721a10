-- Contacts (Campaign Portal guide §6): a partner's audience, its groups, custom fields,
-- and the stop list screens' extensions of stop_list (0304). The contacts/ package
-- documents every table and column (contacts/__init__.py).

-- The country a user dials from: local numbers they type or import get its calling code.
ALTER TABLE users ADD COLUMN country char(2) CHECK (country ~ '^[A-Z]{2}$');

-- Case folding for names and custom values. lower() under the database's collation folds
-- only ASCII when that collation is "C" (the embedded server's); the first collation of
-- these that the server has folds every alphabet. Indexes and queries use these functions
-- on both sides, so they agree whichever it is.
DO $$
DECLARE
    candidate text;
    chosen text := '';
BEGIN
    FOREACH candidate IN ARRAY ARRAY['unicode', 'C.utf8', 'C.UTF-8', 'en_US.utf8'] LOOP
        BEGIN
            EXECUTE format('SELECT lower(%L COLLATE %I)', 'Ä', candidate);
            chosen := format('COLLATE %I', candidate);
            EXIT;
        EXCEPTION WHEN OTHERS THEN  -- absent, or ICU not built in
            NULL;
        END;
    END LOOP;
    EXECUTE format($f$CREATE FUNCTION contact_fold(value text) RETURNS text
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS 'SELECT lower(value %s)'$f$, chosen);
END $$;

-- Custom values folded, for the case-blind equality filter (one GIN index serves text,
-- number, date and boolean fields alike: folding leaves the others as they are).
CREATE FUNCTION contact_fields_folded(fields jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT contact_fold(fields::text)::jsonb $$;

CREATE TABLE contact_groups (
    id           bigserial PRIMARY KEY,
    partner_id   bigint NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    parent_id    bigint,                 -- nesting: the group this one sits in (same partner)
    kind         text NOT NULL DEFAULT 'user' CHECK (kind IN ('user', 'stop_list')),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    description  text NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
    -- contacts whose group_ids hold this id; kept by the statement triggers below
    member_count bigint NOT NULL DEFAULT 0,
    created_by   bigint,                 -- users.id (users are disabled, never deleted)
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (partner_id, id),
    FOREIGN KEY (partner_id, parent_id) REFERENCES contact_groups (partner_id, id)
        ON DELETE SET NULL (parent_id),
    CHECK (parent_id IS DISTINCT FROM id),
    CHECK (kind = 'user' OR parent_id IS NULL)
);
CREATE UNIQUE INDEX contact_groups_name ON contact_groups (partner_id, contact_fold(name));
CREATE UNIQUE INDEX contact_groups_stop_list ON contact_groups (partner_id) WHERE kind = 'stop_list';
CREATE INDEX contact_groups_parent ON contact_groups (parent_id) WHERE parent_id IS NOT NULL;

-- Every partner has its system group "Stop List" from the start.
CREATE FUNCTION partners_add_stop_list_group() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO contact_groups (partner_id, kind, name) VALUES (NEW.id, 'stop_list', 'Stop List')
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER partners_stop_list_group AFTER INSERT ON partners
    FOR EACH ROW EXECUTE FUNCTION partners_add_stop_list_group();
INSERT INTO contact_groups (partner_id, kind, name)
SELECT id, 'stop_list', 'Stop List' FROM partners ON CONFLICT DO NOTHING;

-- Custom fields of a partner's contacts (and the label / required flag of the built-in
-- optional ones, rows with builtin = true, made when a partner first changes them).
CREATE TABLE contact_fields (
    id          bigserial PRIMARY KEY,
    partner_id  bigint NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 60),
    -- key in contacts.fields and the campaign placeholder {variable}
    variable    text NOT NULL CHECK (length(variable) BETWEEN 1 AND 60 AND variable !~ '[[:space:]{}]'),
    data_type   text NOT NULL CHECK (data_type IN ('text', 'number', 'date', 'boolean')),
    required    boolean NOT NULL DEFAULT false,
    builtin     boolean NOT NULL DEFAULT false,
    position    integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (partner_id, variable)
);
CREATE UNIQUE INDEX contact_fields_name ON contact_fields (partner_id, contact_fold(name));

CREATE TABLE contacts (
    id          bigserial NOT NULL,
    partner_id  bigint NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    -- E.164 digits without '+', as stop_list.msisdn and messages.destination;
    -- byte order, so a phone prefix filter is a range of the unique index
    phone       text COLLATE "C" NOT NULL CHECK (phone ~ '^[1-9][0-9]{6,14}$'),
    group_ids   bigint[] NOT NULL CHECK (cardinality(group_ids) >= 1),  -- contact_groups.id, >= 1
    first_name  text NOT NULL DEFAULT '' CHECK (length(first_name) <= 100),
    last_name   text NOT NULL DEFAULT '' CHECK (length(last_name) <= 100),
    birth_date  date,
    gender      text CHECK (gender IN ('female', 'male', 'other')),
    comments    text NOT NULL DEFAULT '' CHECK (length(comments) <= 1000),
    fields      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(fields) = 'object'),
    created_by  bigint,                 -- users.id; no foreign key: a million-row import
    updated_by  bigint,                 -- would pay a key check per row for nothing
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- ids are unique by their sequence; keyed with the partner, the one index serves
    -- lookups and the newest-first pages (a million-row import maintains one index less)
    PRIMARY KEY (partner_id, id)
);
CREATE UNIQUE INDEX contacts_phone ON contacts (partner_id, phone);
CREATE INDEX contacts_groups ON contacts USING gin (group_ids);
CREATE INDEX contacts_fields ON contacts USING gin (contact_fields_folded(fields) jsonb_path_ops);

-- member_count of every group a statement added to or took from: one UPDATE per
-- statement, whatever its row count (an import changes a million rows in one).
-- deltas: {"group id": change}.
CREATE FUNCTION contact_groups_count(deltas jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- lock in id order: two statements touching the same groups cannot deadlock
    PERFORM 1 FROM contact_groups
     WHERE id IN (SELECT k::bigint FROM jsonb_object_keys(deltas) k) ORDER BY id FOR UPDATE;
    UPDATE contact_groups g SET member_count = g.member_count + d.value::bigint
      FROM jsonb_each_text(deltas) d WHERE g.id = d.key::bigint;
END $$;

CREATE FUNCTION contacts_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE deltas jsonb;
BEGIN
    SELECT jsonb_object_agg(gid, -n) INTO deltas
      FROM (SELECT gid, count(*) AS n FROM old_rows, unnest(group_ids) gid GROUP BY gid) s;
    IF deltas IS NOT NULL THEN PERFORM contact_groups_count(deltas); END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION contacts_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE deltas jsonb;
BEGIN
    SELECT jsonb_object_agg(gid, n) INTO deltas FROM (
        SELECT gid, sum(n) AS n FROM (
            SELECT gid, 1 AS n FROM new_rows, unnest(group_ids) gid
            UNION ALL
            SELECT gid, -1 FROM old_rows, unnest(group_ids) gid) c
        GROUP BY gid HAVING sum(n) <> 0) s;
    IF deltas IS NOT NULL THEN PERFORM contact_groups_count(deltas); END IF;
    RETURN NULL;
END $$;

-- Inserts add to member_count themselves (contacts.contacts.count_new): a statement
-- trigger would copy every row of a million-row import into its transition table.
CREATE TRIGGER contacts_count_delete AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION contacts_count_delete();
CREATE TRIGGER contacts_count_update AFTER UPDATE ON contacts
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION contacts_count_update();

-- Reply templates move contacts into these groups: a group they name cannot be deleted.
UPDATE reply_templates SET subscribe_group_id = NULL
 WHERE subscribe_group_id NOT IN (SELECT id FROM contact_groups WHERE partner_id = reply_templates.partner_id);
UPDATE reply_templates SET unsubscribe_group_id = NULL
 WHERE unsubscribe_group_id NOT IN (SELECT id FROM contact_groups WHERE partner_id = reply_templates.partner_id);
ALTER TABLE reply_templates
    ADD FOREIGN KEY (partner_id, subscribe_group_id) REFERENCES contact_groups (partner_id, id),
    ADD FOREIGN KEY (partner_id, unsubscribe_group_id) REFERENCES contact_groups (partner_id, id);

-- The stop list screens: who blocked a pair (NULL: an opt-out by MO, or older rows).
ALTER TABLE stop_list ADD COLUMN created_by bigint;

-- Imports (guide §6.5): the job, its file, its rejected rows. The job lives here, not
-- in memory: any Herald process takes a queued one, and one whose process died is
-- taken again once its lease runs out.
CREATE TABLE contact_imports (
    id            bigserial PRIMARY KEY,
    partner_id    bigint NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    user_id       bigint,
    file_name     text NOT NULL CHECK (length(file_name) <= 255),
    file_kind     text NOT NULL CHECK (file_kind IN ('csv', 'xls', 'xlsx')),
    file_size     bigint NOT NULL,
    status        text NOT NULL DEFAULT 'draft'
                  CHECK (status IN ('draft', 'queued', 'running', 'done', 'failed')),
    -- the wizard's choices
    header_row    boolean NOT NULL DEFAULT true,
    mapping       jsonb NOT NULL DEFAULT '[]',     -- per file column: a field key or null (skipped)
    mode          text NOT NULL DEFAULT 'add_update' CHECK (mode IN ('add_update', 'add_only', 'update_only')),
    stop_mode     text NOT NULL DEFAULT 'exclude' CHECK (stop_mode IN ('exclude', 'unblock', 'block')),
    stop_senders  text[] NOT NULL DEFAULT '{}',    -- '*' for all sender IDs
    group_id      bigint,
    country       char(2),                         -- default region of local numbers
    preview       jsonb NOT NULL DEFAULT '[]',     -- the first rows, for the mapping step
    columns       integer NOT NULL DEFAULT 0,
    -- progress and result
    rows_total    bigint NOT NULL DEFAULT 0,
    rows_done     bigint NOT NULL DEFAULT 0,
    progress      smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    added         bigint NOT NULL DEFAULT 0,
    updated       bigint NOT NULL DEFAULT 0,
    skipped       bigint NOT NULL DEFAULT 0,
    rejected      bigint NOT NULL DEFAULT 0,
    error         text NOT NULL DEFAULT '',
    attempts      integer NOT NULL DEFAULT 0,
    lease_until   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    queued_at     timestamptz,
    finished_at   timestamptz,
    UNIQUE (partner_id, id),
    FOREIGN KEY (partner_id, group_id) REFERENCES contact_groups (partner_id, id) ON DELETE SET NULL (group_id)
);
CREATE INDEX contact_imports_due ON contact_imports (queued_at) WHERE status IN ('queued', 'running');

-- The uploaded file, in pieces of up to 1 MiB: read back as a stream by whichever
-- process runs the import, and downloadable from Import History.
CREATE TABLE contact_import_chunks (
    import_id   bigint NOT NULL REFERENCES contact_imports (id) ON DELETE CASCADE,
    seq         integer NOT NULL,
    data        bytea NOT NULL,
    PRIMARY KEY (import_id, seq)
);

CREATE TABLE contact_import_rejects (
    import_id   bigint NOT NULL REFERENCES contact_imports (id) ON DELETE CASCADE,
    row_number  bigint NOT NULL,                   -- 1 = the file's first line
    reason      text NOT NULL,                     -- a reason code (contacts/imports.py REASONS)
    detail      text NOT NULL DEFAULT '',          -- what was wrong (the column, the value)
    raw         text[] NOT NULL DEFAULT '{}',      -- the row as read
    PRIMARY KEY (import_id, row_number)
);
