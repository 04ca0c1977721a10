-- Status changes without index writes.
--
-- A message row changes twice after it is stored (SENT, then the receipt's
-- status). PostgreSQL can make such an update HOT — a new row version on the
-- same page, no new index entries — only when no indexed column changes and
-- the page has room. messages_in_flight indexed the status itself, so every
-- change wrote an entry in every index of the table; nothing reads it (the
-- send queue knows what is in flight). Leaving a fifth of each new page free
-- gives the updated versions their room.
DROP INDEX messages_in_flight;
ALTER TABLE messages SET (fillfactor = 80);
