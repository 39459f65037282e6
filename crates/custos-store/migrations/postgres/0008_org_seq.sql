-- SQLite only: records name their org by a small integer. PostgreSQL keeps the org id;
-- this step keeps both backends' steps the same.
SELECT 1;
