-- What client_ref carried in four text formats, each in typed columns of its own.
--
-- client_ref held 'svc:<service_type>', 'concat:<ref>:<total>:<seq>:<wide>',
-- 'raw:<udhi>' and 'cascade:<viber message id>', parsed by prefix wherever they
-- were read. From here on it is only the producer's own reference, which Herald
-- never reads; the four become:
--
-- service_type  the SMPP submit's service_type (replace_if_present_flag matches on it)
-- concat_*      a part the SMPP client split itself: the concatenation reference of
--               its UDH (or SAR TLVs), the number of parts, this part's number, and
--               whether the reference is 16-bit; Herald sends the part with the same UDH
-- udhi          binary octets passed through as the client wrote them: whether they
--               start with a user data header (the UDHI bit of esm_class)
-- fallback_for  the SMS of a Viber→SMS cascade: the Viber message it stands in for
--               (its callbacks carry that message's transaction id)
--
-- All nullable without a default: adding them rewrites nothing. Existing rows are
-- converted in one pass and their client_ref cleared.

ALTER TABLE messages
    ADD COLUMN service_type text,
    ADD COLUMN concat_ref   integer,
    ADD COLUMN concat_total smallint,
    ADD COLUMN concat_seq   smallint,
    ADD COLUMN concat_wide  boolean,
    ADD COLUMN udhi         boolean,
    ADD COLUMN fallback_for uuid,
    ADD CONSTRAINT messages_concat_whole CHECK (
        (concat_ref IS NULL) = (concat_total IS NULL)
        AND (concat_total IS NULL) = (concat_seq IS NULL)
        AND (concat_seq IS NULL) = (concat_wide IS NULL));

UPDATE messages SET
    service_type = CASE WHEN client_ref LIKE 'svc:%' THEN substr(client_ref, 5) END,
    concat_ref   = CASE WHEN client_ref LIKE 'concat:%' THEN split_part(client_ref, ':', 2)::integer END,
    concat_total = CASE WHEN client_ref LIKE 'concat:%' THEN split_part(client_ref, ':', 3)::smallint END,
    concat_seq   = CASE WHEN client_ref LIKE 'concat:%' THEN split_part(client_ref, ':', 4)::smallint END,
    concat_wide  = CASE WHEN client_ref LIKE 'concat:%' THEN split_part(client_ref, ':', 5) = '1' END,
    udhi         = CASE WHEN client_ref LIKE 'raw:%' THEN client_ref = 'raw:1' END,
    fallback_for = CASE WHEN client_ref LIKE 'cascade:%' THEN substr(client_ref, 9)::uuid END,
    client_ref   = NULL
WHERE client_ref LIKE ANY (ARRAY['svc:%', 'concat:%', 'raw:%', 'cascade:%']);
