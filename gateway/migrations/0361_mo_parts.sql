-- Gateway pipeline: parts of long MO messages waiting for the rest, kept in the
-- database so they survive a restart (gateway.mo). A set is keyed like the UDH
-- concatenation / SAR identifies it: subscriber, destination, reference, total.
-- Parts of a stored message stay (taken_at set) for one more timeout, so a part
-- the vendor repeats after that is recognised instead of starting a new set.
-- mo_messages.complete is false for a message stored from an incomplete set
-- after the reassembly timeout (its parts column then counts the parts received).

CREATE TABLE mo_parts (
    source       text NOT NULL,
    destination  text NOT NULL,
    ref          integer NOT NULL,
    total        smallint NOT NULL CHECK (total > 1),
    seq          smallint NOT NULL CHECK (seq BETWEEN 1 AND total),
    vendor_id    bigint,
    data_coding  smallint NOT NULL,
    payload      bytea NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    taken_at     timestamptz,    -- when the message they make was stored
    PRIMARY KEY (source, destination, ref, total, seq)
);
CREATE INDEX mo_parts_age ON mo_parts (received_at);

ALTER TABLE mo_messages ADD COLUMN complete boolean NOT NULL DEFAULT true;
