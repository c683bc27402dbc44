//! aws-chunked request bodies (`Content-Encoding: aws-chunked`), checked as they pass.
//!
//! A client that cannot hash a whole body before sending it declares
//! `x-amz-content-sha256: STREAMING-…` and frames the body in chunks:
//!
//! ```text
//! <hex size>;chunk-signature=<sig>\r\n<data>\r\n   … repeated …
//! 0;chunk-signature=<sig>\r\n                      the empty final chunk
//! <name>:<value>\r\n                               trailing headers, if declared
//! x-amz-trailer-signature:<sig>\r\n                signed trailers only
//! \r\n
//! ```
//!
//! Each chunk signature is an HMAC, under the request's signing key, of the chunk's SHA-256
//! chained to the previous signature (the first chains to the request's own signature), so
//! a verified request whose body was altered, reordered or cut fails here. Without this
//! check the header signature, which covers only the literal `STREAMING-…`, would vouch for
//! any body. `STREAMING-UNSIGNED-PAYLOAD-TRAILER` (botocore over TLS) carries no chunk
//! signatures; its framing is still checked, and its trailing checksum is the upstream's to
//! verify.
//!
//! The checker is fed the body in whatever pieces the network delivers and holds at most one
//! header line: a chunk's data is hashed as it passes, never buffered.

use sha2::{Digest, Sha256};

use crate::signing::{constant_time_eq, hmac_sha256};

const CHUNK_ALGORITHM: &str = "AWS4-HMAC-SHA256-PAYLOAD";
const TRAILER_ALGORITHM: &str = "AWS4-HMAC-SHA256-TRAILER";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const TRAILER_SIGNATURE: &str = "x-amz-trailer-signature";
/// Longer chunk-header or trailer lines than this are not a client's: AWS's own are under
/// 100 bytes.
const MAX_LINE_BYTES: usize = 4096;
const MAX_TRAILERS: usize = 16;

/// What a verified request's later body signatures are checked with: its signing key,
/// timestamp and scope, and its own signature, which the first chunk's chains to.
#[derive(Clone, PartialEq, Eq)]
pub struct ChunkSigning {
    signing_key: Vec<u8>,
    amz_date: String,
    scope: String,
    seed_signature: String,
}

impl std::fmt::Debug for ChunkSigning {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The signing key signs as the caller for a day: it never reaches a log.
        formatter
            .debug_struct("ChunkSigning")
            .field("amz_date", &self.amz_date)
            .field("scope", &self.scope)
            .field("seed_signature", &self.seed_signature)
            .finish_non_exhaustive()
    }
}

impl ChunkSigning {
    pub(crate) fn new(
        signing_key: Vec<u8>,
        amz_date: String,
        scope: String,
        seed_signature: String,
    ) -> Self {
        Self {
            signing_key,
            amz_date,
            scope,
            seed_signature,
        }
    }

    fn sign(&self, algorithm: &str, previous: &str, hashes: &str) -> String {
        let string_to_sign = format!(
            "{algorithm}\n{}\n{}\n{previous}\n{hashes}",
            self.amz_date, self.scope
        );
        hex::encode(hmac_sha256(&self.signing_key, string_to_sign.as_bytes()))
    }

    /// The signature of a chunk whose data hashes to `data_sha256`, after `previous`.
    pub fn chunk_signature(&self, previous: &str, data_sha256: &[u8]) -> String {
        let hashes = format!("{EMPTY_SHA256}\n{}", hex::encode(data_sha256));
        self.sign(CHUNK_ALGORITHM, previous, &hashes)
    }

    /// The signature of trailing headers, after the final chunk's signature `previous`.
    pub fn trailer_signature(&self, previous: &str, trailers: &[(String, String)]) -> String {
        let hash = hex::encode(Sha256::digest(canonical_trailers(trailers).as_bytes()));
        self.sign(TRAILER_ALGORITHM, previous, &hash)
    }

    pub fn seed_signature(&self) -> &str {
        &self.seed_signature
    }
}

/// Trailing headers as their signature covers them: lower-case names, trimmed values, one
/// `name:value\n` line each, sorted by name (SigV4's canonical headers).
fn canonical_trailers(trailers: &[(String, String)]) -> String {
    let mut lines: Vec<String> = trailers
        .iter()
        .map(|(name, value)| format!("{}:{}\n", name.to_ascii_lowercase(), value.trim()))
        .collect();
    lines.sort();
    lines.concat()
}

/// Why an aws-chunked body is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    #[error("the aws-chunked body is malformed: {0}")]
    Malformed(&'static str),
    #[error("a chunk signature does not match the chunk")]
    ChunkSignatureMismatch,
    #[error("the trailer signature does not match the trailing headers")]
    TrailerSignatureMismatch,
    #[error("the aws-chunked body ended before its final chunk")]
    Incomplete,
    #[error("the body decodes to {actual} bytes, not the {declared} x-amz-decoded-content-length declares")]
    DecodedLengthMismatch { declared: u64, actual: u64 },
}

/// The payload of a whole aws-chunked body, its framing, signatures and trailers dropped.
/// The body must already have been checked (its signatures are not looked at here): this is
/// for a call Cairn answers itself, after the gateway verified it.
pub fn decode(body: &[u8]) -> Result<Vec<u8>, ChunkedError> {
    let mut payload = Vec::with_capacity(body.len());
    let mut rest = body;
    loop {
        let line_end = rest
            .windows(2)
            .take(MAX_LINE_BYTES)
            .position(|pair| pair == b"\r\n")
            .ok_or(ChunkedError::Incomplete)?;
        let line = std::str::from_utf8(&rest[..line_end])
            .map_err(|_| ChunkedError::Malformed("a chunk header is not text"))?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| ChunkedError::Malformed("a chunk size is not hexadecimal"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(payload);
        }
        if rest.len() < size + 2 || &rest[size..size + 2] != b"\r\n" {
            return Err(ChunkedError::Incomplete);
        }
        payload.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// How the body declares itself in `x-amz-content-sha256`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkFraming {
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`: every chunk signed.
    Signed { trailer: bool },
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: plain chunks, then trailing headers.
    UnsignedWithTrailer,
}

enum State {
    ChunkHeader,
    ChunkData {
        remaining: u64,
        hasher: Sha256,
        signature: Option<String>,
    },
    ChunkEnd {
        seen: u8,
    },
    Trailer,
    Done,
}

/// Checks one aws-chunked body, fed in pieces: see the module comment.
pub struct AwsChunkedChecker {
    framing: ChunkFraming,
    signing: Option<ChunkSigning>,
    previous_signature: String,
    state: State,
    line: Vec<u8>,
    trailers: Vec<(String, String)>,
    decoded: u64,
    declared_decoded_length: Option<u64>,
}

impl AwsChunkedChecker {
    /// A checker for a body framed as `framing`. Signed framing needs the request's
    /// `signing`; without it the body cannot be checked and is refused.
    pub fn new(
        framing: ChunkFraming,
        signing: Option<ChunkSigning>,
        declared_decoded_length: Option<u64>,
    ) -> Result<Self, ChunkedError> {
        let signing = match framing {
            ChunkFraming::Signed { .. } => Some(signing.ok_or(ChunkedError::Malformed(
                "signed chunks need a request signed in its Authorization header",
            ))?),
            ChunkFraming::UnsignedWithTrailer => None,
        };
        Ok(Self {
            framing,
            previous_signature: signing
                .as_ref()
                .map(|signing| signing.seed_signature.clone())
                .unwrap_or_default(),
            signing,
            state: State::ChunkHeader,
            line: Vec::new(),
            trailers: Vec::new(),
            decoded: 0,
            declared_decoded_length,
        })
    }

    /// Feeds the next bytes of the body.
    pub fn update(&mut self, mut bytes: &[u8]) -> Result<(), ChunkedError> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::ChunkHeader | State::Trailer => {
                    let Some(line) = self.take_line(&mut bytes)? else {
                        continue;
                    };
                    if matches!(self.state, State::ChunkHeader) {
                        self.chunk_header(&line)?;
                    } else {
                        self.trailer_line(&line)?;
                    }
                }
                State::ChunkData {
                    remaining,
                    hasher,
                    signature,
                } => {
                    let take = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len());
                    hasher.update(&bytes[..take]);
                    bytes = &bytes[take..];
                    *remaining -= take as u64;
                    self.decoded += take as u64;
                    if *remaining == 0 {
                        let digest = std::mem::take(hasher).finalize();
                        let signature = signature.take();
                        self.check_chunk(signature.as_deref(), &digest)?;
                        self.state = State::ChunkEnd { seen: 0 };
                    }
                }
                State::ChunkEnd { seen } => {
                    let expected = if *seen == 0 { b'\r' } else { b'\n' };
                    if bytes[0] != expected {
                        return Err(ChunkedError::Malformed(
                            "a chunk's data is not followed by CRLF",
                        ));
                    }
                    bytes = &bytes[1..];
                    *seen += 1;
                    if *seen == 2 {
                        self.state = State::ChunkHeader;
                    }
                }
                State::Done => {
                    return Err(ChunkedError::Malformed("bytes follow the final chunk"));
                }
            }
        }
        Ok(())
    }

    /// Whether everything fed in was a whole, valid body.
    pub fn finish(self) -> Result<(), ChunkedError> {
        if !matches!(self.state, State::Done) {
            return Err(ChunkedError::Incomplete);
        }
        match self.declared_decoded_length {
            Some(declared) if declared != self.decoded => {
                Err(ChunkedError::DecodedLengthMismatch {
                    declared,
                    actual: self.decoded,
                })
            }
            _ => Ok(()),
        }
    }

    /// Moves bytes into the line buffer up to CRLF; the line without it once complete.
    fn take_line(&mut self, bytes: &mut &[u8]) -> Result<Option<Vec<u8>>, ChunkedError> {
        let end = bytes.iter().position(|&byte| byte == b'\n');
        let taken = end.map_or(bytes.len(), |end| end + 1);
        if self.line.len() + taken > MAX_LINE_BYTES {
            return Err(ChunkedError::Malformed(
                "a chunk header or trailer line is too long",
            ));
        }
        self.line.extend_from_slice(&bytes[..taken]);
        *bytes = &bytes[taken..];
        if end.is_none() {
            return Ok(None);
        }
        let mut line = std::mem::take(&mut self.line);
        line.pop();
        if line.pop() != Some(b'\r') {
            return Err(ChunkedError::Malformed("a line does not end in CRLF"));
        }
        Ok(Some(line))
    }

    fn chunk_header(&mut self, line: &[u8]) -> Result<(), ChunkedError> {
        let line = std::str::from_utf8(line)
            .map_err(|_| ChunkedError::Malformed("a chunk header is not text"))?;
        let mut parts = line.split(';');
        let size = parts.next().unwrap_or_default();
        if size.is_empty() || size.len() > 16 || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ChunkedError::Malformed("a chunk size is not hexadecimal"));
        }
        let size = u64::from_str_radix(size, 16)
            .map_err(|_| ChunkedError::Malformed("a chunk size is not hexadecimal"))?;
        let mut signature = None;
        for extension in parts {
            match extension.split_once('=') {
                Some(("chunk-signature", value)) if signature.is_none() => {
                    signature = Some(value.to_owned());
                }
                _ => {
                    return Err(ChunkedError::Malformed(
                        "a chunk header has an unknown extension",
                    ))
                }
            }
        }
        if signature.is_some() != self.signing.is_some() {
            return Err(ChunkedError::Malformed(
                "chunk signatures must be present exactly when the body is declared signed",
            ));
        }
        if size == 0 {
            self.check_chunk(signature.as_deref(), &Sha256::digest(b""))?;
            self.state = State::Trailer;
        } else {
            self.state = State::ChunkData {
                remaining: size,
                hasher: Sha256::new(),
                signature,
            };
        }
        Ok(())
    }

    fn check_chunk(
        &mut self,
        claimed: Option<&str>,
        data_sha256: &[u8],
    ) -> Result<(), ChunkedError> {
        let (Some(signing), Some(claimed)) = (&self.signing, claimed) else {
            return Ok(());
        };
        let expected = signing.chunk_signature(&self.previous_signature, data_sha256);
        if !constant_time_eq(expected.as_bytes(), claimed.as_bytes()) {
            return Err(ChunkedError::ChunkSignatureMismatch);
        }
        self.previous_signature = expected;
        Ok(())
    }

    fn trailer_line(&mut self, line: &[u8]) -> Result<(), ChunkedError> {
        let expects_trailer = match self.framing {
            ChunkFraming::Signed { trailer } => trailer,
            ChunkFraming::UnsignedWithTrailer => true,
        };
        if line.is_empty() {
            let signed_trailer = self.signing.is_some() && expects_trailer;
            if signed_trailer && !self.trailers.is_empty() {
                return Err(ChunkedError::Malformed(
                    "signed trailers end without x-amz-trailer-signature",
                ));
            }
            self.state = State::Done;
            return Ok(());
        }
        if !expects_trailer {
            return Err(ChunkedError::Malformed(
                "trailing headers the request did not declare",
            ));
        }
        if self.trailers.len() == MAX_TRAILERS {
            return Err(ChunkedError::Malformed("too many trailing headers"));
        }
        let line = std::str::from_utf8(line)
            .map_err(|_| ChunkedError::Malformed("a trailing header is not text"))?;
        let Some((name, value)) = line.split_once(':') else {
            return Err(ChunkedError::Malformed("a trailing header has no colon"));
        };
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(ChunkedError::Malformed(
                "a trailing header has no valid name",
            ));
        }
        match &self.signing {
            Some(signing) if name.eq_ignore_ascii_case(TRAILER_SIGNATURE) => {
                let expected = signing.trailer_signature(&self.previous_signature, &self.trailers);
                if !constant_time_eq(expected.as_bytes(), value.trim().as_bytes()) {
                    return Err(ChunkedError::TrailerSignatureMismatch);
                }
                // The signature closes the trailers: anything after it would be unsigned.
                self.trailers.clear();
                self.signing = None;
                self.framing = ChunkFraming::Signed { trailer: false };
            }
            _ => self.trailers.push((name.to_owned(), value.to_owned())),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checked_body_decodes_to_its_payload() {
        let body = b"5;chunk-signature=ab\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n";
        assert_eq!(decode(body).unwrap(), b"hello world");
        assert_eq!(decode(b"5\r\nhel"), Err(ChunkedError::Incomplete));
        assert!(matches!(decode(b"zz\r\n"), Err(ChunkedError::Malformed(_))));
    }
    use crate::sigv4::{self, DeclaredPayload, PayloadCheck, PayloadError, SignedRequest};
    use chrono::{TimeZone, Utc};
    use http::{HeaderMap, HeaderValue, Method};

    // AWS's published signed streaming upload ("Signature Calculations for the Authorization
    // Header: Transferring Payload in Multiple Chunks"): 66,560 bytes of 'a' in a 64 KiB
    // chunk, a 1 KiB chunk and the empty final chunk.
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
    const CHUNK_1: &str = "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648";
    const CHUNK_2: &str = "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497";
    const FINAL: &str = "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9";
    // The AWS Common Runtime's own test signs trailers first:1st, second:2nd, third:3rd
    // after the final chunk of the same example.
    const CRT_TRAILER: &str = "df5735bd9f3295cd9386572292562fefc93ba94e80a0a1ddcbd652c4e0a75e6c";

    fn published_headers(content_sha256: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("host", "s3.amazonaws.com"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("x-amz-content-sha256", content_sha256),
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", "66560"),
            ("content-length", "66824"),
            (
                "authorization",
                &format!(
                    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
                     SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;\
                     x-amz-decoded-content-length;x-amz-storage-class,Signature={SEED}"
                ),
            ),
        ] {
            headers.insert(name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    /// The published request, verified as Cairn verifies any request.
    fn published_signing() -> ChunkSigning {
        let headers = published_headers("STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
        let request = SignedRequest {
            method: &Method::PUT,
            raw_path: "/examplebucket/chunkObject.txt",
            raw_query: "",
            headers: &headers,
            body: b"",
        };
        let now = Utc.with_ymd_and_hms(2013, 5, 24, 0, 0, 0).unwrap();
        let verified = sigv4::verify(&request, now, |_| Some(SECRET)).expect("AWS's own example");
        verified.chunk_signing.expect("a signed-chunk request")
    }

    fn chunk(size: usize, signature: &str) -> Vec<u8> {
        let mut framed = format!("{size:x};chunk-signature={signature}\r\n").into_bytes();
        framed.extend(std::iter::repeat_n(b'a', size));
        framed.extend_from_slice(b"\r\n");
        framed
    }

    fn published_body() -> Vec<u8> {
        let mut body = chunk(65536, CHUNK_1);
        body.extend(chunk(1024, CHUNK_2));
        body.extend(format!("0;chunk-signature={FINAL}\r\n\r\n").into_bytes());
        body
    }

    fn check(body: &[u8], piece: usize) -> Result<(), ChunkedError> {
        let mut checker = AwsChunkedChecker::new(
            ChunkFraming::Signed { trailer: false },
            Some(published_signing()),
            Some(66560),
        )?;
        for part in body.chunks(piece) {
            checker.update(part)?;
        }
        checker.finish()
    }

    #[test]
    fn the_published_example_verifies_in_pieces_of_any_size() {
        assert_eq!(published_signing().seed_signature(), SEED);
        let body = published_body();
        assert_eq!(body.len(), 66824, "the example's Content-Length");
        for piece in [1, 7, 4096, 65536 + 90, body.len()] {
            assert_eq!(check(&body, piece), Ok(()), "pieces of {piece}");
        }
    }

    #[test]
    fn the_crt_trailer_signature_is_reproduced() {
        let trailers = [("first", "1st"), ("second", "2nd"), ("third", "3rd")]
            .map(|(name, value)| (name.to_owned(), value.to_owned()));
        assert_eq!(
            published_signing().trailer_signature(FINAL, &trailers),
            CRT_TRAILER
        );
        let mut body = chunk(65536, CHUNK_1);
        body.extend(chunk(1024, CHUNK_2));
        body.extend(
            format!(
                "0;chunk-signature={FINAL}\r\nsecond:2nd\r\nfirst:1st\r\nthird:3rd\r\n\
                 x-amz-trailer-signature:{CRT_TRAILER}\r\n\r\n"
            )
            .into_bytes(),
        );
        let signed_trailer = |body: &[u8]| {
            let mut checker = AwsChunkedChecker::new(
                ChunkFraming::Signed { trailer: true },
                Some(published_signing()),
                None,
            )?;
            checker.update(body)?;
            checker.finish()
        };
        assert_eq!(signed_trailer(&body), Ok(()));
        let forged = String::from_utf8(body.clone())
            .unwrap()
            .replace("third:3rd", "third:4th");
        assert_eq!(
            signed_trailer(forged.as_bytes()),
            Err(ChunkedError::TrailerSignatureMismatch)
        );
    }

    #[test]
    fn altered_reordered_or_cut_bodies_are_refused() {
        let body = published_body();
        let mut altered = body.clone();
        altered[100] = b'b';
        assert_eq!(
            check(&altered, 4096),
            Err(ChunkedError::ChunkSignatureMismatch)
        );

        let mut reordered = chunk(1024, CHUNK_2);
        reordered.extend(chunk(65536, CHUNK_1));
        assert_eq!(
            check(&reordered, 4096),
            Err(ChunkedError::ChunkSignatureMismatch)
        );

        let cut = &body[..body.len() - 40];
        assert_eq!(check(cut, 4096), Err(ChunkedError::Incomplete));
        let without_final = chunk(65536, CHUNK_1);
        assert_eq!(check(&without_final, 4096), Err(ChunkedError::Incomplete));

        let mut extended = body.clone();
        extended.extend_from_slice(b"5\r\nhello\r\n");
        assert!(matches!(
            check(&extended, 4096),
            Err(ChunkedError::Malformed(_))
        ));

        let unsigned_chunk = b"10000\r\n".to_vec();
        assert!(matches!(
            check(&unsigned_chunk, 4096),
            Err(ChunkedError::Malformed(_))
        ));
    }

    #[test]
    fn malformed_framing_is_refused_without_panicking() {
        for body in [
            &b"zz;chunk-signature=00\r\n"[..],
            b"10000;chunk-signature=ab;other=1\r\n",
            b"ffffffffffffffffff;chunk-signature=ab\r\n",
            b"1;chunk-signature=ab\n",
            &[b'1'; MAX_LINE_BYTES + 1],
        ] {
            assert!(
                matches!(check(body, 3), Err(ChunkedError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(&body[..body.len().min(40)])
            );
        }
    }

    #[test]
    fn unsigned_chunks_with_a_trailer_are_framed_as_botocore_frames_them() {
        let unsigned = |body: &[u8], decoded| {
            let mut checker =
                AwsChunkedChecker::new(ChunkFraming::UnsignedWithTrailer, None, decoded)?;
            checker.update(body)?;
            checker.finish()
        };
        let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
        assert_eq!(unsigned(body, Some(11)), Ok(()));
        assert_eq!(
            unsigned(body, Some(12)),
            Err(ChunkedError::DecodedLengthMismatch {
                declared: 12,
                actual: 11
            })
        );
        let signed_anyway = format!("5;chunk-signature={CHUNK_1}\r\nhello\r\n0\r\n\r\n");
        assert!(matches!(
            unsigned(signed_anyway.as_bytes(), None),
            Err(ChunkedError::Malformed(_))
        ));
    }

    #[test]
    fn declared_payloads_choose_the_check() {
        let headers = published_headers("STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
        assert_eq!(
            sigv4::declared_payload(&headers),
            Ok(DeclaredPayload::Chunked(ChunkFraming::Signed {
                trailer: false
            }))
        );
        let ecdsa = published_headers("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD");
        assert!(sigv4::declared_payload(&ecdsa).is_err());
        let declared = DeclaredPayload::Chunked(ChunkFraming::Signed { trailer: false });
        assert!(
            PayloadCheck::for_declared(declared, None, &headers).is_err(),
            "signed chunks without a signing context cannot be checked"
        );
        let mut check = PayloadCheck::for_declared(declared, Some(&published_signing()), &headers)
            .unwrap()
            .unwrap();
        let mut body = published_body();
        body[66_000] = b'b';
        let outcome = check.update(&body).and_then(|()| check.finish());
        assert_eq!(
            outcome,
            Err(PayloadError::Chunked(ChunkedError::ChunkSignatureMismatch))
        );
    }

    #[test]
    fn the_signing_key_stays_out_of_debug_output() {
        let printed = format!("{:?}", published_signing());
        assert!(printed.contains(SEED));
        assert!(!printed.contains("signing_key"));
    }
}
