-- The transparency log reads every event in sequence order, imported ones too; the fed
-- index covers only the feed trails deliver from.
CREATE INDEX events_by_seq ON events (seq);
