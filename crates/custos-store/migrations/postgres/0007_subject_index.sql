-- SQLite only: its subject index sorted by the ref's first hex digit, so ingest appends
-- instead of writing at random. PostgreSQL keeps the index of 0001; this step keeps both
-- backends' steps the same.
SELECT 1;
