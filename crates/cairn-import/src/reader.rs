//! Reading a log file's records one at a time, whatever its layout and compression.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::Progress;

/// Files up to this size (decompressed) are read into memory and parsed once; larger files
/// are streamed twice (check, then load) so memory stays bounded.
pub const IN_MEMORY_LIMIT: u64 = 64 << 20;

pub enum RecordSource {
    InMemory(Vec<u8>),
    Streaming,
}

impl RecordSource {
    pub fn open(
        path: &Path,
        max_decompressed: u64,
        in_memory_limit: u64,
        progress: &dyn Progress,
    ) -> Result<Self, String> {
        let reader = open_decompressed(path, max_decompressed, progress)?;
        let mut content = Vec::new();
        let read = reader
            .take(in_memory_limit + 1)
            .read_to_end(&mut content)
            .map_err(read_error)?;
        if read as u64 <= in_memory_limit {
            Ok(Self::InMemory(content))
        } else {
            Ok(Self::Streaming)
        }
    }
}

fn read_error(error: io::Error) -> String {
    match error.kind() {
        io::ErrorKind::UnexpectedEof => {
            "the file is truncated (unexpected end of compressed data)".to_owned()
        }
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => {
            format!("the file is corrupt: {error}")
        }
        _ => format!("cannot read the file: {error}"),
    }
}

/// A reader over the file's content, gunzipped when the file is gzip (by its magic bytes, not
/// its name), that fails once more than `max_decompressed` bytes come out.
pub fn open_decompressed<'p>(
    path: &Path,
    max_decompressed: u64,
    progress: &'p dyn Progress,
) -> Result<Box<dyn BufRead + 'p>, String> {
    let file = File::open(path).map_err(|error| format!("cannot open the file: {error}"))?;
    let raw = BufReader::with_capacity(
        256 << 10,
        CountingReader {
            inner: file,
            progress,
        },
    );
    decompressed(raw, max_decompressed)
}

/// `raw`'s content, gunzipped when it is gzip (by its magic bytes), failing once more than
/// `max_decompressed` bytes come out.
pub fn decompressed<'r>(
    mut raw: impl BufRead + 'r,
    max_decompressed: u64,
) -> Result<Box<dyn BufRead + 'r>, String> {
    let is_gzip = raw
        .fill_buf()
        .map_err(read_error)?
        .starts_with(&[0x1f, 0x8b]);
    let content: Box<dyn Read + 'r> = if is_gzip {
        Box::new(GzipErrors(MultiGzDecoder::new(raw)))
    } else {
        Box::new(raw)
    };
    Ok(Box::new(BufReader::with_capacity(
        256 << 10,
        BoundedReader {
            inner: content,
            remaining: max_decompressed,
            limit: max_decompressed,
        },
    )))
}

/// Names every failure inside the gzip stream as truncation or corruption, which is what it
/// is, rather than letting it read as a generic IO failure.
struct GzipErrors<R>(R);

impl<R: Read> Read for GzipErrors<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        self.0.read(buffer).map_err(|error| match error.kind() {
            io::ErrorKind::UnexpectedEof => error,
            _ if error.to_string().contains("exceeds the") => error,
            _ => io::Error::new(
                io::ErrorKind::InvalidData,
                format!("gzip data is corrupt: {error}"),
            ),
        })
    }
}

struct CountingReader<'a> {
    inner: File,
    progress: &'a dyn Progress,
}

impl Read for CountingReader<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.progress.bytes_read(read as u64);
        Ok(read)
    }
}

struct BoundedReader<R> {
    inner: R,
    remaining: u64,
    limit: u64,
}

impl<R: Read> Read for BoundedReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            // Anything more than the bound is an error, not a silent cut.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("decompressed content exceeds the {} byte limit", self.limit),
                )),
            };
        }
        let allowed = buffer.len().min(self.remaining as usize);
        let read = self.inner.read(&mut buffer[..allowed])?;
        self.remaining -= read as u64;
        Ok(read)
    }
}

/// Whether the file is a whole, well-formed log, without keeping any record.
pub fn check_well_formed(path: &Path, max_decompressed: u64) -> Result<(), String> {
    let mut reader = open_decompressed(path, max_decompressed, &crate::NoProgress)?;
    let layout = detect_layout(reader.fill_buf().map_err(read_error)?);
    for_each_element::<IgnoredAny, _>(
        serde_json::Deserializer::from_reader(reader),
        layout,
        |_| {},
    )
}

/// Calls `each` with the JSON text of every record of a log held in `reader`.
pub fn for_each_record<R: BufRead>(
    mut reader: R,
    mut each: impl FnMut(&[u8]),
) -> Result<(), String> {
    let layout = detect_layout(reader.fill_buf().map_err(read_error)?);
    let deserializer = serde_json::Deserializer::from_reader(reader);
    for_each_element::<Box<RawValue>, _>(deserializer, layout, |raw| each(raw.get().as_bytes()))
}

/// The same for a log already in memory; records are borrowed, never copied.
pub fn for_each_record_in(content: &[u8], mut each: impl FnMut(&[u8])) -> Result<(), String> {
    let layout = detect_layout(content);
    let deserializer = serde_json::Deserializer::from_slice(content);
    for_each_element::<&RawValue, _>(deserializer, layout, |raw| each(raw.get().as_bytes()))
}

enum Layout {
    /// `{"Records": [...]}`, as trails deliver.
    RecordsObject,
    /// `[...]`
    BareArray,
    /// One record after another (one per line, or pretty-printed one after another).
    Concatenated,
    Empty,
}

fn detect_layout(prefix: &[u8]) -> Layout {
    let text = skip_whitespace(prefix);
    match text.first() {
        None => Layout::Empty,
        Some(b'[') => Layout::BareArray,
        Some(b'{') if skip_whitespace(&text[1..]).starts_with(b"\"Records\"") => {
            Layout::RecordsObject
        }
        Some(_) => Layout::Concatenated,
    }
}

fn skip_whitespace(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

fn for_each_element<'de, T, R>(
    mut deserializer: serde_json::Deserializer<R>,
    layout: Layout,
    mut each: impl FnMut(T),
) -> Result<(), String>
where
    T: de::Deserialize<'de>,
    R: serde_json::de::Read<'de>,
{
    match layout {
        Layout::Empty => Ok(()),
        Layout::Concatenated => {
            for element in deserializer.into_iter::<T>() {
                each(element.map_err(describe_syntax_error)?);
            }
            Ok(())
        }
        Layout::BareArray | Layout::RecordsObject => {
            let seed = ElementsSeed {
                each: &mut each,
                wrapped: matches!(layout, Layout::RecordsObject),
                element: std::marker::PhantomData,
            };
            seed.deserialize(&mut deserializer)
                .map_err(describe_syntax_error)?;
            deserializer.end().map_err(describe_syntax_error)
        }
    }
}

fn describe_syntax_error(error: serde_json::Error) -> String {
    if error.is_io() {
        // serde_json hands back the reader's own error, kind and all.
        return read_error(io::Error::from(error));
    }
    match error.classify() {
        serde_json::error::Category::Eof => format!(
            "the file is truncated: JSON ends early at line {} column {}",
            error.line(),
            error.column()
        ),
        _ => format!("the file is not valid JSON: {error}"),
    }
}

struct ElementsSeed<'a, T, F> {
    each: &'a mut F,
    wrapped: bool,
    element: std::marker::PhantomData<T>,
}

impl<'de, T, F> DeserializeSeed<'de> for ElementsSeed<'_, T, F>
where
    T: de::Deserialize<'de>,
    F: FnMut(T),
{
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.wrapped {
            deserializer.deserialize_map(self)
        } else {
            deserializer.deserialize_seq(self)
        }
    }
}

impl<'de, T, F> Visitor<'de> for ElementsSeed<'_, T, F>
where
    T: de::Deserialize<'de>,
    F: FnMut(T),
{
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str(r#"{"Records": [...]} or a JSON array of records"#)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(element) = seq.next_element::<T>()? {
            (self.each)(element);
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen_records = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "Records" && !seen_records {
                seen_records = true;
                map.next_value_seed(ElementsSeed {
                    each: &mut *self.each,
                    wrapped: false,
                    element: std::marker::PhantomData,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}
