-- Like the app's db/init.sql: extensions, run once by the db image on an empty data folder.
CREATE EXTENSION IF NOT EXISTS pgcrypto;
