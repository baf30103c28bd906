-- Version 1 of wasmhost's cluster state. Records are the same JSON documents the embedded
-- store keeps; the columns beside them are what queries, uniqueness and leases need.
CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE apps (
    app_id text PRIMARY KEY,
    name_key text NOT NULL UNIQUE, -- workspace/environment/name
    body text NOT NULL
);
CREATE TABLE versions (
    app_id text NOT NULL,
    version bigint NOT NULL,
    digest text NOT NULL,
    body text NOT NULL,
    PRIMARY KEY (app_id, version)
);
CREATE TABLE functions (
    function_id text PRIMARY KEY,
    app_id text NOT NULL,
    name text NOT NULL,
    body text NOT NULL,
    UNIQUE (app_id, name)
);
CREATE TABLE labels (key text PRIMARY KEY, function_id text NOT NULL); -- workspace/label
CREATE TABLE domains (domain text PRIMARY KEY, function_id text NOT NULL);
CREATE TABLE tokens (token_id text PRIMARY KEY, body text NOT NULL);
CREATE TABLE secrets (name text PRIMARY KEY, body text NOT NULL);
CREATE TABLE volumes (name text PRIMARY KEY, body text NOT NULL);
CREATE TABLE schedules (function_id text PRIMARY KEY, body text NOT NULL);
CREATE TABLE calls (
    call_id text PRIMARY KEY,
    function_id text NOT NULL,
    created_at text NOT NULL,
    finished_at text,
    done boolean NOT NULL,
    claimed_by text,           -- the host running it
    lease_until timestamptz,   -- when another host may take it over
    body text NOT NULL
);
CREATE INDEX calls_by_function ON calls (function_id, created_at);
CREATE INDEX calls_open ON calls (lease_until) WHERE NOT done;
CREATE INDEX calls_claimed ON calls (claimed_by) WHERE NOT done;
CREATE TABLE logs (
    seq bigserial PRIMARY KEY,
    app_id text NOT NULL,
    function text NOT NULL,
    call_id text,
    time text NOT NULL,
    body text NOT NULL
);
CREATE INDEX logs_by_app ON logs (app_id, seq);
CREATE INDEX logs_by_call ON logs (call_id, seq);
CREATE INDEX logs_by_time ON logs (time);
CREATE TABLE components (digest text PRIMARY KEY, bytes bytea NOT NULL);
-- Counts changes to what hosts serve, in the changing transaction (so a host that sees the
-- new count also sees the change); hosts poll it.
CREATE TABLE changes (seq bigint NOT NULL);
INSERT INTO changes VALUES (0);
