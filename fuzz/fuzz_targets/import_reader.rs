//! Any log file, plain or gzip, is imported record by record or rejected whole, never a
//! panic, and never more than the decompressed bound in memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cairn_import::read_log_bytes(data, 1 << 20);
});
