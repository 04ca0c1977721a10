-- Viber→SMS cascade: fallbackTtl counts from when Herald accepted the message.
--
-- A cascade message gets its viber_cascade_due row as it is stored, due
-- fallback_ttl seconds after created_at (or after scheduled_for when that is
-- later: gateway.cascade.fallback_due computes the same), so a message still
-- waiting in the send queue falls back on time too. Before this, the row was
-- written only when the provider took the message (sent_at + fallback_ttl).
--
-- A row trigger with a WHEN clause rather than a statement trigger with a
-- transition table: PostgreSQL tests WHEN on each row as it is inserted and
-- queues nothing for a row that fails it, so a message without a fallback costs
-- one expression test and no function call, while a transition table would copy
-- every inserted message into a tuplestore for one function call per COPY.
-- Measured on 500k non-cascade rows (server time, 20 interleaved rounds): about
-- 0.1 µs per row for the WHEN test, 0.5 µs for the transition table, beside the
-- 12-15 µs a message row costs to store, where neither shows above the noise.
CREATE FUNCTION viber_cascade_due_on_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO viber_cascade_due (viber_message_id, due_at)
    VALUES (NEW.id, greatest(NEW.created_at, NEW.scheduled_for)
                    + make_interval(secs => NEW.fallback_ttl))
    ON CONFLICT (viber_message_id) DO UPDATE
        SET due_at = least(viber_cascade_due.due_at, EXCLUDED.due_at);
    RETURN NULL;
END
$$;

CREATE TRIGGER messages_viber_cascade_due AFTER INSERT ON messages
FOR EACH ROW
WHEN (NEW.fallback_channel = 'sms' AND NEW.fallback_ttl IS NOT NULL AND NEW.channel = 'viber'
      AND NEW.status IN ('PREPARED', 'BILLED', 'SENT'))
EXECUTE FUNCTION viber_cascade_due_on_insert();

-- Messages stored before this migration. Queued ones get their row; rows written
-- at sent_at + fallback_ttl move back to created_at + fallback_ttl. Both read the
-- small tables (the send queue, the pending rows), never the whole messages table.
INSERT INTO viber_cascade_due (viber_message_id, due_at)
SELECT m.id, greatest(m.created_at, m.scheduled_for) + make_interval(secs => m.fallback_ttl)
FROM send_queue q JOIN messages m ON m.id = q.message_id
WHERE m.fallback_channel = 'sms' AND m.fallback_ttl IS NOT NULL AND m.channel = 'viber'
  AND m.status IN ('PREPARED', 'BILLED')
ON CONFLICT (viber_message_id) DO UPDATE
    SET due_at = least(viber_cascade_due.due_at, EXCLUDED.due_at);

UPDATE viber_cascade_due d
SET due_at = greatest(m.created_at, m.scheduled_for) + make_interval(secs => m.fallback_ttl)
FROM messages m
WHERE m.id = d.viber_message_id AND m.fallback_ttl IS NOT NULL AND m.status = 'SENT'
  AND d.due_at > greatest(m.created_at, m.scheduled_for) + make_interval(secs => m.fallback_ttl);
