use std::io::Write;

use cairn_model::LookupAttributeKey;
use cairn_store::{HistoryView, LookupQuery, SqliteEventStore};
use flate2::write::GzEncoder;
use serde_json::{json, Value};

use super::*;

fn record(id: &str, second: u32) -> Value {
    json!({"eventVersion": "1.08", "eventTime": format!("2024-01-01T00:00:{second:02}Z"),
        "eventSource": "ec2.amazonaws.com", "eventName": "DescribeInstances", "awsRegion": "us-east-1",
        "userIdentity": {"type": "IAMUser", "userName": "alice", "accessKeyId": "AKIA1"},
        "eventID": id, "readOnly": true, "eventType": "AwsApiCall", "responseElements": null})
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

struct Fixture {
    dir: tempfile::TempDir,
    store: Arc<SqliteEventStore>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteEventStore::open(&dir.path().join("data")).unwrap());
        Self { dir, store }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join("logs").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn import_with(&self, paths: &[PathBuf], options: &ImportOptions) -> Vec<FileReport> {
        let files = collect_files(paths).unwrap();
        import_files(self.store.clone(), &files, options, &NoProgress).unwrap()
    }

    fn import(&self, paths: &[PathBuf]) -> Vec<FileReport> {
        self.import_with(paths, &ImportOptions::default())
    }

    fn count(&self) -> u64 {
        self.store.count().unwrap()
    }
}

#[test]
fn reads_every_layout() {
    let fixture = Fixture::new();
    let wrapped =
        serde_json::to_vec(&json!({"Records": [record("a", 1), record("b", 2)]})).unwrap();
    let array = serde_json::to_vec_pretty(&json!([record("c", 3)])).unwrap();
    let lines = format!("{}\n\n{}\n", record("d", 4), record("e", 5));
    let paths = [
        fixture.write("wrapped.json.gz", &gzip(&wrapped)),
        fixture.write("array.json", &array),
        fixture.write("lines.json", lines.as_bytes()),
        // gzip recognised by content, not name
        fixture.write("plain-name.json", &gzip(&wrapped)),
    ];
    let reports = fixture.import(&paths);
    let imported: Vec<u64> = reports.iter().map(|report| report.imported).collect();
    assert_eq!(imported, [2, 1, 2, 0]);
    assert_eq!(reports[3].skipped.get(DUPLICATE), Some(&2));
    assert_eq!(fixture.count(), 5);
}

#[test]
fn importing_twice_adds_nothing() {
    let fixture = Fixture::new();
    let path = fixture.write(
        "a.json",
        &serde_json::to_vec(&json!({"Records": [record("a", 1), record("b", 2)]})).unwrap(),
    );
    assert_eq!(fixture.import(std::slice::from_ref(&path))[0].imported, 2);
    let again = fixture.import(&[path]);
    assert_eq!(again[0].imported, 0);
    assert_eq!(again[0].skipped.get(DUPLICATE), Some(&2));
    assert_eq!(fixture.count(), 2);
}

#[test]
fn invalid_records_are_reported_not_dropped() {
    let fixture = Fixture::new();
    let mut no_time = record("x", 1);
    no_time.as_object_mut().unwrap().remove("eventTime");
    let mut bad_time = record("y", 1);
    bad_time["eventTime"] = json!("last tuesday");
    let content = json!([record("a", 1), no_time, bad_time, 42]);
    let path = fixture.write("mixed.json", &serde_json::to_vec(&content).unwrap());
    let report = &fixture.import(&[path])[0];
    assert_eq!(report.records, 4);
    assert_eq!(report.imported, 1);
    assert_eq!(report.skipped.get("missing eventTime"), Some(&1));
    assert_eq!(report.skipped_total(), 3);
    assert!(report
        .skipped
        .keys()
        .any(|reason| reason.contains("last tuesday")));
}

#[test]
fn broken_files_leave_the_store_unchanged() {
    let fixture = Fixture::new();
    let good = serde_json::to_vec(
        &json!({"Records": (0..50).map(|n| record(&format!("r{n}"), 1)).collect::<Vec<_>>()}),
    )
    .unwrap();
    let compressed = gzip(&good);
    let truncated_gzip = fixture.write("truncated.json.gz", &compressed[..compressed.len() / 2]);
    let truncated_json = fixture.write("truncated.json", &good[..good.len() - 10]);
    let mut corrupt = good.clone();
    corrupt[good.len() / 2] = b'}';
    let corrupt_json = fixture.write("corrupt.json", &corrupt);
    let mut corrupt_gzip = compressed.clone();
    let middle = corrupt_gzip.len() / 2;
    corrupt_gzip[middle] ^= 0xff;
    let corrupt_gzip = fixture.write("corrupt.json.gz", &corrupt_gzip);
    for options in [
        ImportOptions::default(),
        ImportOptions {
            in_memory_limit: 100,
            batch_size: 7,
            ..ImportOptions::default()
        },
    ] {
        let reports = fixture.import_with(
            &[
                truncated_gzip.clone(),
                truncated_json.clone(),
                corrupt_json.clone(),
                corrupt_gzip.clone(),
            ],
            &options,
        );
        for report in &reports {
            let error = report
                .error
                .as_deref()
                .unwrap_or_else(|| panic!("{report:?}"));
            assert!(
                error.contains("truncated")
                    || error.contains("corrupt")
                    || error.contains("not valid JSON"),
                "{error}"
            );
            assert_eq!(report.imported, 0);
        }
        assert_eq!(fixture.count(), 0);
    }
}

#[test]
fn decompressed_size_is_bounded() {
    let fixture = Fixture::new();
    let content =
        serde_json::to_vec(&json!({"Records": [record("a", 1)], "padding": " ".repeat(100_000)}))
            .unwrap();
    let path = fixture.write("bomb.json.gz", &gzip(&content));
    let options = ImportOptions {
        max_decompressed_bytes: 10_000,
        ..ImportOptions::default()
    };
    let report = &fixture.import_with(&[path], &options)[0];
    assert!(
        report
            .error
            .as_deref()
            .unwrap()
            .contains("exceeds the 10000 byte limit"),
        "{report:?}"
    );
    assert_eq!(fixture.count(), 0);
}

#[test]
fn large_files_stream_in_batches() {
    let fixture = Fixture::new();
    let records: Vec<Value> = (0..500)
        .map(|n| record(&format!("s{n}"), (n % 60) as u32))
        .collect();
    let path = fixture.write(
        "big.json.gz",
        &gzip(&serde_json::to_vec(&json!({"Records": records})).unwrap()),
    );
    let options = ImportOptions {
        in_memory_limit: 1_000,
        batch_size: 64,
        ..ImportOptions::default()
    };
    let report = &fixture.import_with(&[path], &options)[0];
    assert_eq!((report.records, report.imported), (500, 500));
    let mut query = LookupQuery::all(HistoryView::Management, 50);
    query.attribute = Some(cairn_model::LookupAttribute {
        key: LookupAttributeKey::EventId,
        value: "s499".into(),
    });
    assert_eq!(fixture.store.lookup(&query).unwrap().events.len(), 1);
}

/// Large records make small batches: what waits for a slow writer is bounded by bytes,
/// not only by count (a 200 MB file once sat whole in the queue).
#[test]
fn streamed_batches_are_bounded_by_record_bytes() {
    let fixture = Fixture::new();
    let records: Vec<Value> = (0..300)
        .map(|n| {
            let mut record = record(&format!("b{n}"), (n % 60) as u32);
            record["requestParameters"] = json!({"padding": "x".repeat(1500)});
            record
        })
        .collect();
    let path = fixture.write(
        "big.json",
        &serde_json::to_vec(&json!({"Records": records})).unwrap(),
    );
    let options = ImportOptions {
        in_memory_limit: 1_000,
        batch_bytes: 64 << 10,
        ..ImportOptions::default()
    };
    let mut report = FileReport::default();
    let mut batches = Vec::new();
    import_one_file(&path, &options, &NoProgress, &mut report, |batch| {
        batches.push((batch.len(), record_bytes(&batch)));
    })
    .unwrap();
    assert_eq!(batches.iter().map(|(count, _)| count).sum::<usize>(), 300);
    assert!(batches.len() > 5, "{batches:?}");
    // A batch ends at the first record past the bound.
    assert!(
        batches.iter().all(|(_, bytes)| *bytes < (64 << 10) + 4096),
        "{batches:?}"
    );
}

#[test]
fn walks_directories_like_a_trail_layout_and_skips_digests() {
    let fixture = Fixture::new();
    let wrapped = gzip(&serde_json::to_vec(&json!({"Records": [record("a", 1)]})).unwrap());
    fixture.write("AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/01/111122223333_CloudTrail_us-east-1_20240101T0000Z_abcdefghijklmnop.json.gz", &wrapped);
    fixture.write(
        "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/01/01/d.json.gz",
        &gzip(b"{\"digestStartTime\":1}"),
    );
    fixture.write("AWSLogs/notes.txt", b"not a log");
    let reports = fixture.import(&[fixture.dir.path().join("logs")]);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].imported, 1);
}

#[test]
fn records_older_than_retention_are_skipped() {
    let fixture = Fixture::new();
    let path = fixture.write(
        "a.json",
        &serde_json::to_vec(&json!([record("old", 1), record("new", 30)])).unwrap(),
    );
    let cutoff = cairn_model::parse_event_time("2024-01-01T00:00:10Z").unwrap();
    let options = ImportOptions {
        retention_cutoff_millis: Some(cutoff),
        ..ImportOptions::default()
    };
    let report = &fixture.import_with(&[path], &options)[0];
    assert_eq!(report.imported, 1);
    assert_eq!(
        report.skipped.get("older than the retention window"),
        Some(&1)
    );
}
