-- The event history on PostgreSQL. Events and their lookup entries are partitioned by
-- eventTime, one partition per UTC day (made by the writer as it needs them), so that a
-- retention sweep drops whole partitions. Time is epoch milliseconds throughout.

CREATE TABLE events (
    seq        bigint   NOT NULL,
    event_id   text     NOT NULL,
    event_time bigint   NOT NULL,
    category   smallint NOT NULL,
    fed        boolean  NOT NULL,
    record     bytea    NOT NULL
) PARTITION BY RANGE (event_time);
CREATE INDEX events_by_time ON events (category, event_time, seq);
CREATE INDEX events_fed_by_seq ON events (seq) WHERE fed;

-- One row per (attribute value, event): value_key is a stable 64-bit hash of the
-- attribute and its value; readers compare the record itself, so a collision costs a
-- re-read, never a wrong answer.
CREATE TABLE lookup_entries (
    value_key  bigint   NOT NULL,
    category   smallint NOT NULL,
    event_time bigint   NOT NULL,
    seq        bigint   NOT NULL
) PARTITION BY RANGE (event_time);
CREATE INDEX lookup_entries_by_value ON lookup_entries (value_key, category, event_time, seq);

-- Not partitioned: the one place an eventID is unique across every day and every node.
CREATE TABLE event_ids (
    event_id   text   PRIMARY KEY,
    event_time bigint NOT NULL,
    seq        bigint NOT NULL
);
CREATE INDEX event_ids_by_time ON event_ids (event_time);

-- The days that have partitions, kept by the writer under the feed lock.
CREATE TABLE event_days (
    day bigint PRIMARY KEY
);

-- The highest sequence number ever given. Writers take this row's lock first, so numbers
-- are given in commit order across every node, and a sweep never lowers it.
CREATE TABLE feed_counter (
    id       smallint PRIMARY KEY CHECK (id = 1),
    last_seq bigint   NOT NULL
);
INSERT INTO feed_counter (id, last_seq) VALUES (1, 0);

CREATE TABLE state (
    namespace text NOT NULL,
    key       text NOT NULL,
    value     text NOT NULL,
    PRIMARY KEY (namespace, key)
);
