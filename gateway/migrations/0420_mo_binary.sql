-- Binary MO (gateway.mo, "Binary MO"): the octets are kept as hex in text, which
-- cannot hold NUL, as messages does for binary submits.
-- encoding: 'binary' for such a row; NULL for text decoded from data_coding.
-- data_coding: the carrier's data_coding (of the first part); NULL in rows stored before.
-- udhi: the octets start with a user data header (a PDU passed on whole).
ALTER TABLE mo_messages
    ADD COLUMN encoding text CHECK (encoding = 'binary'),
    ADD COLUMN data_coding smallint,
    ADD COLUMN udhi boolean NOT NULL DEFAULT false;
