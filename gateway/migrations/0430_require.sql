-- herald_require(ok, message): true when ok, else aborts the statement (and its transaction)
-- with SQLSTATE HR001 and the message. One statement that writes several tables uses it to
-- refuse as a whole when a guard it computed did not hold (billing.charging: the debit of a
-- batch stored in the same statement as its messages, which then commits alone).
CREATE FUNCTION herald_require(ok boolean, message text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION USING ERRCODE = 'HR001', MESSAGE = message;
    END IF;
    RETURN true;
END
$$;
