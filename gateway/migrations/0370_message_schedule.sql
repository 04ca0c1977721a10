-- Gateway pipeline: scheduled messages and what replace_sm needs (SMPP 3.4 §4.10).
--
-- scheduled_for: a message the client scheduled (SMPP schedule_delivery_time) is
-- charged and stored at once, but its send_queue row is written with not_before =
-- scheduled_for, so no worker claims it earlier. NULL means "send now"; a schedule
-- in the past is stored as NULL. query_sm reads it; replace_sm may change it (and
-- the queue row's not_before in the same transaction).
--
-- smpp_data_coding: the data_coding of the client's submit_sm. Herald re-encodes
-- the text it decoded (the data_coding column holds what Herald sends with), but a
-- replace_sm's short_message comes written in the original submit's data_coding,
-- since replace_sm carries none of its own. NULL for messages from other edges.
--
-- Both nullable without a default: adding them rewrites nothing.

ALTER TABLE messages
    ADD COLUMN scheduled_for    timestamptz,
    ADD COLUMN smpp_data_coding smallint CHECK (smpp_data_coding BETWEEN 0 AND 255);
