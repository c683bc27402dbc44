//! AWS Signature Version 4 verification, header (`Authorization`) and presigned-query
//! (`X-Amz-Signature`) forms, and the body checks a signature's declared payload calls for
//! (a SHA-256, or aws-chunked signatures: see [`crate::chunked`]). Cairn signs only to ask
//! an upstream something as the caller ([`sign_json_post`]).
//!
//! The algorithm follows AWS's "Create a signed AWS API request" page: canonical request,
//! string to sign, HMAC-SHA256 key chain, constant-time comparison.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use http::{HeaderMap, Method};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

use crate::chunked::{AwsChunkedChecker, ChunkFraming, ChunkSigning, ChunkedError};
use crate::form::decode_pairs;
use crate::signing::{constant_time_eq, hmac_sha256};

/// AWS allows a signature date this far from the server's clock, either way.
pub const MAX_CLOCK_SKEW_SECS: i64 = 15 * 60;
/// Presigned URLs may live at most seven days.
const MAX_PRESIGN_EXPIRES_SECS: i64 = 7 * 24 * 3600;
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const AMZ_DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// RFC 3986 unreserved characters stay as they are; everything else is %XX: how SigV4
/// (and so every caller that signs) encodes a query value or a path segment.
pub const URI_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// As [`URI_ENCODE`], keeping `/`: an S3 key in a path.
pub const URI_ENCODE_PATH: &AsciiSet = &URI_ENCODE.remove(b'/');

/// Why a request is not authenticated. Protocol-neutral: each protocol maps these to its
/// own error code and HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("request is missing authentication")]
    Missing,
    #[error("incomplete signature: {0}")]
    Incomplete(String),
    #[error("unknown access key")]
    UnknownAccessKey { access_key_id: String },
    #[error("signature does not match")]
    Mismatch { access_key_id: String },
    #[error("signature expired: {signed} is now earlier than {earliest}")]
    Expired {
        access_key_id: String,
        signed: String,
        earliest: String,
        now: String,
    },
    /// `host` or an `x-amz-*` header the request carries is not covered by its signature:
    /// such a header could have been added to a captured request by anyone.
    #[error("headers not signed: {names:?}")]
    HeadersNotSigned {
        access_key_id: String,
        names: Vec<String>,
    },
    /// A SigV2 presigned URL carries a query parameter its signature does not cover and
    /// that could change what the request does (`?retention` turns PutObject into
    /// PutObjectRetention).
    #[error("query parameters not signed: {names:?}")]
    QueryNotSigned {
        access_key_id: String,
        names: Vec<String>,
    },
    #[error("signature not yet current: {signed} is still later than {latest}")]
    NotYetCurrent {
        access_key_id: String,
        signed: String,
        latest: String,
        now: String,
    },
}

impl SignatureError {
    /// The access key the request presented, when it got that far.
    pub fn access_key_id(&self) -> Option<&str> {
        match self {
            Self::Missing | Self::Incomplete(_) => None,
            Self::UnknownAccessKey { access_key_id }
            | Self::Mismatch { access_key_id }
            | Self::HeadersNotSigned { access_key_id, .. }
            | Self::QueryNotSigned { access_key_id, .. }
            | Self::Expired { access_key_id, .. }
            | Self::NotYetCurrent { access_key_id, .. } => Some(access_key_id),
        }
    }
}

/// The parts of an HTTP request a signature covers.
pub struct SignedRequest<'a> {
    pub method: &'a Method,
    /// The path exactly as sent (still percent-encoded).
    pub raw_path: &'a str,
    /// The query string exactly as sent, without `?`.
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// What the signed `x-amz-content-sha256` header promises about the body. The signature
/// covers the header, not the body, so the body must then be checked against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclaredPayload {
    /// No header: the canonical request hashed the body itself.
    Absent,
    /// A SHA-256 the body must match.
    Sha256([u8; 32]),
    /// `UNSIGNED-PAYLOAD`: the client chose not to protect the body.
    Unsigned,
    /// `STREAMING-…`: an aws-chunked body, its chunks signed or not.
    Chunked(ChunkFraming),
}

/// The header's value is none of the spellings AWS accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER], STREAMING-UNSIGNED-PAYLOAD-TRAILER, or a valid sha256 value")]
pub struct InvalidDeclaredPayload;

/// Reads `x-amz-content-sha256`. The SigV4a spellings (`STREAMING-AWS4-ECDSA-…`) are
/// refused: Cairn verifies SigV4 only.
pub fn declared_payload(headers: &HeaderMap) -> Result<DeclaredPayload, InvalidDeclaredPayload> {
    let Some(value) = headers.get("x-amz-content-sha256") else {
        return Ok(DeclaredPayload::Absent);
    };
    parse_declared_payload(value.to_str().map_err(|_| InvalidDeclaredPayload)?)
}

fn parse_declared_payload(value: &str) -> Result<DeclaredPayload, InvalidDeclaredPayload> {
    let chunked = |framing| Ok(DeclaredPayload::Chunked(framing));
    match value {
        "UNSIGNED-PAYLOAD" => return Ok(DeclaredPayload::Unsigned),
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" => {
            return chunked(ChunkFraming::Signed { trailer: false })
        }
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" => {
            return chunked(ChunkFraming::Signed { trailer: true })
        }
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER" => return chunked(ChunkFraming::UnsignedWithTrailer),
        _ => {}
    }
    let mut digest = [0u8; 32];
    hex::decode_to_slice(value, &mut digest).map_err(|_| InvalidDeclaredPayload)?;
    Ok(DeclaredPayload::Sha256(digest))
}

/// Why a body does not keep its declaration's promise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the body does not match its declared SHA-256")]
    Sha256Mismatch,
    #[error(transparent)]
    Chunked(#[from] ChunkedError),
}

/// Checks a body, whole or piece by piece, against what its signed `x-amz-content-sha256`
/// declares.
pub enum PayloadCheck {
    Sha256 { expected: [u8; 32], running: Sha256 },
    Chunked(Box<AwsChunkedChecker>),
}

impl PayloadCheck {
    /// The check `declared` calls for, or `None` when it promises nothing about the body.
    /// Signed chunks chain to the verified request's `signing`; `headers` give the
    /// `x-amz-decoded-content-length` an aws-chunked body must decode to.
    pub fn for_declared(
        declared: DeclaredPayload,
        signing: Option<&ChunkSigning>,
        headers: &HeaderMap,
    ) -> Result<Option<Self>, PayloadError> {
        Ok(match declared {
            DeclaredPayload::Sha256(expected) => Some(Self::Sha256 {
                expected,
                running: Sha256::new(),
            }),
            DeclaredPayload::Chunked(framing) => {
                let decoded_length = header_text(headers, "x-amz-decoded-content-length")
                    .and_then(|length| length.parse().ok());
                Some(Self::Chunked(Box::new(AwsChunkedChecker::new(
                    framing,
                    signing.cloned(),
                    decoded_length,
                )?)))
            }
            DeclaredPayload::Absent | DeclaredPayload::Unsigned => None,
        })
    }

    pub fn update(&mut self, bytes: &[u8]) -> Result<(), PayloadError> {
        match self {
            Self::Sha256 { running, .. } => {
                running.update(bytes);
                Ok(())
            }
            Self::Chunked(checker) => Ok(checker.update(bytes)?),
        }
    }

    /// Whether everything fed in keeps the declaration's promise.
    pub fn finish(self) -> Result<(), PayloadError> {
        match self {
            Self::Sha256 { expected, running } => {
                let actual: [u8; 32] = running.finalize().into();
                if constant_time_eq(&actual, &expected) {
                    Ok(())
                } else {
                    Err(PayloadError::Sha256Mismatch)
                }
            }
            Self::Chunked(checker) => Ok(checker.finish()?),
        }
    }
}

/// What a valid signature establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSignature {
    pub access_key_id: String,
    pub region: String,
    pub service: String,
    pub signed_at: DateTime<Utc>,
    /// `X-Amz-Security-Token`, for temporary credentials.
    pub session_token: Option<String>,
    /// For a body of signed chunks: what its chunk signatures are checked with.
    pub chunk_signing: Option<ChunkSigning>,
    /// False only for a request let in without a check (see [`accept_unchecked`]).
    pub signature_checked: bool,
}

impl VerifiedSignature {
    /// The check `declared` calls for on this request's body. A request let in unchecked
    /// has no signing key, so its signed chunks cannot be checked and are not.
    pub fn payload_check(
        &self,
        declared: DeclaredPayload,
        headers: &HeaderMap,
    ) -> Result<Option<PayloadCheck>, PayloadError> {
        if !self.signature_checked
            && matches!(
                declared,
                DeclaredPayload::Chunked(ChunkFraming::Signed { .. })
            )
        {
            return Ok(None);
        }
        PayloadCheck::for_declared(declared, self.chunk_signing.as_ref(), headers)
    }
}

impl VerifiedSignature {
    /// A request that carries no signature at all, for an operation AWS serves unsigned
    /// (Cognito's sign-in, STS's web-identity and SAML federation): nothing is verified.
    pub fn unsigned(service: &str, region: &str, now: DateTime<Utc>) -> Self {
        Self {
            access_key_id: String::new(),
            region: region.to_owned(),
            service: service.to_owned(),
            signed_at: now,
            session_token: None,
            chunk_signing: None,
            signature_checked: false,
        }
    }
}

/// What a request claims, taken as if verified, without its signature being checked: for
/// the development mode that lets unknown keys in. Its date must still parse.
pub fn accept_unchecked(claim: &SignatureClaim) -> Result<VerifiedSignature, SignatureError> {
    let signed_at = match claim.legacy_expires_at {
        Some(_) => Utc::now(),
        None => parse_amz_date(&claim.amz_date)?,
    };
    Ok(VerifiedSignature {
        access_key_id: claim.access_key_id.clone(),
        region: claim.region.clone(),
        service: claim.service.clone(),
        signed_at,
        session_token: claim.session_token.clone(),
        chunk_signing: None,
        signature_checked: false,
    })
}

/// The credential scope and signature the request claims, before any secret is consulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureClaim {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
    pub amz_date: String,
    pub presigned_expires: Option<i64>,
    pub session_token: Option<String>,
    /// A presigned URL's `X-Amz-Content-Sha256`, when it names one.
    pub presigned_payload: Option<String>,
    /// For an S3 URL presigned with Signature Version 2: when it expires (epoch seconds).
    pub legacy_expires_at: Option<i64>,
}

impl SignatureClaim {
    /// What the signature says of the body. A header-signed request declares it in its
    /// `x-amz-content-sha256` header; a presigned URL may name it in its query, and an S3
    /// presigned URL that does not is `UNSIGNED-PAYLOAD` (what botocore's presigner signs).
    pub fn declared_payload(
        &self,
        headers: &HeaderMap,
    ) -> Result<DeclaredPayload, InvalidDeclaredPayload> {
        if self.legacy_expires_at.is_some() {
            // SigV2 signs no payload.
            return Ok(DeclaredPayload::Unsigned);
        }
        if self.presigned_expires.is_none() {
            return declared_payload(headers);
        }
        match &self.presigned_payload {
            Some(value) => parse_declared_payload(value),
            None if self.service == "s3" => Ok(DeclaredPayload::Unsigned),
            None => Ok(DeclaredPayload::Absent),
        }
    }

    /// The payload hash of the canonical request: as declared, or the body's own.
    fn payload_hash(&self, request: &SignedRequest<'_>) -> String {
        let declared = if self.presigned_expires.is_none() {
            header_text(request.headers, "x-amz-content-sha256").map(str::to_owned)
        } else {
            match &self.presigned_payload {
                Some(value) => Some(value.clone()),
                None if self.service == "s3" => Some("UNSIGNED-PAYLOAD".to_owned()),
                None => None,
            }
        };
        declared.unwrap_or_else(|| hex::encode(Sha256::digest(request.body)))
    }
}

/// Reads the claim from the `Authorization` header or the presigned query parameters.
pub fn parse_claim(request: &SignedRequest<'_>) -> Result<SignatureClaim, SignatureError> {
    let query = decode_pairs(request.raw_query);
    if let Some(authorization) = request.headers.get(http::header::AUTHORIZATION) {
        let authorization = authorization
            .to_str()
            .map_err(|_| SignatureError::Incomplete("Authorization header is not ASCII".into()))?;
        return parse_authorization_header(authorization, request.headers);
    }
    if query.iter().any(|(key, _)| key == "X-Amz-Algorithm") {
        return parse_presigned_query(&query);
    }
    if let Some(claim) = crate::sigv2::parse_query(&query) {
        return claim;
    }
    Err(SignatureError::Missing)
}

fn parse_authorization_header(
    authorization: &str,
    headers: &HeaderMap,
) -> Result<SignatureClaim, SignatureError> {
    let Some(rest) = authorization.strip_prefix(ALGORITHM) else {
        return Err(SignatureError::Incomplete(format!(
            "Authorization header must use {ALGORITHM}"
        )));
    };
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(value) = part.strip_prefix("Credential=") {
            credential = Some(value);
        } else if let Some(value) = part.strip_prefix("SignedHeaders=") {
            signed_headers = Some(value);
        } else if let Some(value) = part.strip_prefix("Signature=") {
            signature = Some(value);
        }
    }
    let missing = |name: &str| {
        SignatureError::Incomplete(format!(
            "Authorization header requires '{name}' parameter. Authorization={authorization}"
        ))
    };
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    let amz_date = request_date(headers).ok_or_else(|| {
        SignatureError::Incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
                .into(),
        )
    })?;
    build_claim(
        credential,
        signed_headers,
        signature,
        amz_date,
        None,
        header_text(headers, "x-amz-security-token").map(str::to_owned),
    )
}

/// The request's signing time in SigV4's basic form: `X-Amz-Date`, else the HTTP `Date`
/// header (RFC 7231's form, `Sun, 30 Aug 2015 12:36:00 GMT`), which SigV4 also allows.
fn request_date(headers: &HeaderMap) -> Option<String> {
    if let Some(amz_date) = header_text(headers, "x-amz-date") {
        return Some(amz_date.to_owned());
    }
    let date = header_text(headers, "date")?;
    let parsed = DateTime::parse_from_rfc2822(date).ok()?;
    Some(
        parsed
            .with_timezone(&Utc)
            .format(AMZ_DATE_FORMAT)
            .to_string(),
    )
}

fn parse_presigned_query(query: &[(String, String)]) -> Result<SignatureClaim, SignatureError> {
    let get = |name: &str| {
        query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .ok_or_else(|| {
                SignatureError::Incomplete(format!(
                    "AWS query-string parameters must include '{name}'."
                ))
            })
    };
    if get("X-Amz-Algorithm")? != ALGORITHM {
        return Err(SignatureError::Incomplete(format!(
            "X-Amz-Algorithm must be {ALGORITHM}"
        )));
    }
    let expires: i64 = get("X-Amz-Expires")?.parse().map_err(|_| {
        SignatureError::Incomplete("X-Amz-Expires must be a number of seconds".into())
    })?;
    if !(1..=MAX_PRESIGN_EXPIRES_SECS).contains(&expires) {
        return Err(SignatureError::Incomplete(format!(
            "X-Amz-Expires must be between 1 and {MAX_PRESIGN_EXPIRES_SECS} seconds"
        )));
    }
    let mut claim = build_claim(
        get("X-Amz-Credential")?,
        get("X-Amz-SignedHeaders")?,
        get("X-Amz-Signature")?,
        get("X-Amz-Date")?.to_owned(),
        Some(expires),
        get("X-Amz-Security-Token").ok().map(str::to_owned),
    )?;
    claim.presigned_payload = get("X-Amz-Content-Sha256").ok().map(str::to_owned);
    Ok(claim)
}

fn build_claim(
    credential: &str,
    signed_headers: &str,
    signature: &str,
    amz_date: String,
    presigned_expires: Option<i64>,
    session_token: Option<String>,
) -> Result<SignatureClaim, SignatureError> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = parts.as_slice() else {
        return Err(SignatureError::Incomplete(format!(
            "Credential should be scoped to a valid region, not '{credential}'."
        )));
    };
    if *terminator != "aws4_request"
        || access_key_id.is_empty()
        || region.is_empty()
        || service.is_empty()
    {
        return Err(SignatureError::Incomplete(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{credential}'."
        )));
    }
    let signed_headers: Vec<String> = signed_headers
        .split(';')
        .filter(|name| !name.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    if signed_headers.is_empty() || signature.is_empty() {
        return Err(SignatureError::Incomplete(
            "empty SignedHeaders or Signature".into(),
        ));
    }
    Ok(SignatureClaim {
        access_key_id: (*access_key_id).to_owned(),
        date: (*date).to_owned(),
        region: (*region).to_owned(),
        service: (*service).to_owned(),
        signed_headers,
        signature: signature.to_ascii_lowercase(),
        amz_date,
        presigned_expires,
        session_token,
        presigned_payload: None,
        legacy_expires_at: None,
    })
}

/// Verifies a request. `secret_for` returns the secret access key of an access key ID, or
/// `None` when the key is unknown.
pub fn verify<S: AsRef<str>>(
    request: &SignedRequest<'_>,
    now: DateTime<Utc>,
    secret_for: impl FnOnce(&str) -> Option<S>,
) -> Result<VerifiedSignature, SignatureError> {
    let claim = parse_claim(request)?;
    if let Some(expires_at) = claim.legacy_expires_at {
        return verify_legacy(request, claim, expires_at, now, secret_for);
    }
    let signed_at = parse_amz_date(&claim.amz_date)?;
    if !claim.amz_date.starts_with(&claim.date) {
        return Err(SignatureError::Incomplete(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'",
            claim.date,
            &claim.amz_date[..claim.amz_date.len().min(8)]
        )));
    }
    check_time(&claim, signed_at, now)?;
    check_signed_headers(request.headers, &claim)?;
    let Some(secret) = secret_for(&claim.access_key_id) else {
        return Err(SignatureError::UnknownAccessKey {
            access_key_id: claim.access_key_id,
        });
    };
    let signing_key = signing_key(secret.as_ref(), &claim);
    let expected = signature_with_key(request, &claim, &signing_key)?;
    if !constant_time_eq(expected.as_bytes(), claim.signature.as_bytes()) {
        return Err(SignatureError::Mismatch {
            access_key_id: claim.access_key_id,
        });
    }
    let signs_chunks = matches!(
        claim.declared_payload(request.headers),
        Ok(DeclaredPayload::Chunked(ChunkFraming::Signed { .. }))
    );
    let chunk_signing = (signs_chunks && claim.presigned_expires.is_none()).then(|| {
        ChunkSigning::new(
            signing_key,
            claim.amz_date.clone(),
            scope(&claim),
            claim.signature.clone(),
        )
    });
    Ok(VerifiedSignature {
        access_key_id: claim.access_key_id,
        region: claim.region,
        service: claim.service,
        signed_at,
        session_token: claim.session_token,
        chunk_signing,
        signature_checked: true,
    })
}

/// SigV2 query authentication (S3 presigned URLs made by botocore's default presigner).
fn verify_legacy<S: AsRef<str>>(
    request: &SignedRequest<'_>,
    claim: SignatureClaim,
    expires_at: i64,
    now: DateTime<Utc>,
    secret_for: impl FnOnce(&str) -> Option<S>,
) -> Result<VerifiedSignature, SignatureError> {
    let expires = DateTime::from_timestamp(expires_at, 0).unwrap_or_default();
    if now > expires {
        let format = |time: DateTime<Utc>| time.format(AMZ_DATE_FORMAT).to_string();
        return Err(SignatureError::Expired {
            access_key_id: claim.access_key_id,
            signed: format(expires),
            earliest: format(now),
            now: format(now),
        });
    }
    let Some(secret) = secret_for(&claim.access_key_id) else {
        return Err(SignatureError::UnknownAccessKey {
            access_key_id: claim.access_key_id,
        });
    };
    if !crate::sigv2::signature_matches(request, &claim, secret.as_ref()) {
        return Err(SignatureError::Mismatch {
            access_key_id: claim.access_key_id,
        });
    }
    Ok(VerifiedSignature {
        access_key_id: claim.access_key_id,
        region: claim.region,
        service: claim.service,
        signed_at: now,
        session_token: claim.session_token,
        chunk_signing: None,
        signature_checked: true,
    })
}

/// As AWS requires, `host` and every `x-amz-*` header the request carries must be signed;
/// otherwise a captured request could be replayed with headers that change what it does
/// (`x-amz-copy-source` turns a PutObject into a CopyObject).
fn check_signed_headers(headers: &HeaderMap, claim: &SignatureClaim) -> Result<(), SignatureError> {
    let signed = |name: &str| claim.signed_headers.iter().any(|signed| signed == name);
    // A session token may be added after signing (AWS's suite, post-sts-header-after): it is
    // a credential, which the signature's key already binds, not a change to the call.
    let mut names: Vec<String> = headers
        .keys()
        .map(|name| name.as_str())
        .filter(|name| name.starts_with("x-amz-") || *name == "host")
        .filter(|name| *name != "x-amz-security-token")
        .filter(|name| !signed(name))
        .map(str::to_owned)
        .collect();
    if !signed("host") && !names.iter().any(|name| name == "host") {
        names.push("host".to_owned());
    }
    if names.is_empty() {
        return Ok(());
    }
    names.sort();
    names.dedup();
    Err(SignatureError::HeadersNotSigned {
        access_key_id: claim.access_key_id.clone(),
        names,
    })
}

fn check_time(
    claim: &SignatureClaim,
    signed_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let format = |time: DateTime<Utc>| time.format(AMZ_DATE_FORMAT).to_string();
    let skew = chrono::Duration::seconds(MAX_CLOCK_SKEW_SECS);
    let earliest = match claim.presigned_expires {
        // A presigned URL is good from its date until its expiry.
        Some(expires) => now - chrono::Duration::seconds(expires),
        None => now - skew,
    };
    if signed_at < earliest {
        return Err(SignatureError::Expired {
            access_key_id: claim.access_key_id.clone(),
            signed: claim.amz_date.clone(),
            earliest: format(earliest),
            now: format(now),
        });
    }
    if signed_at > now + skew {
        return Err(SignatureError::NotYetCurrent {
            access_key_id: claim.access_key_id.clone(),
            signed: claim.amz_date.clone(),
            latest: format(now + skew),
            now: format(now),
        });
    }
    Ok(())
}

fn parse_amz_date(text: &str) -> Result<DateTime<Utc>, SignatureError> {
    NaiveDateTime::parse_from_str(text, AMZ_DATE_FORMAT)
        .map(|naive| Utc.from_utc_datetime(&naive))
        .map_err(|_| {
            SignatureError::Incomplete(format!(
                "Date must be in ISO-8601 'basic format'. Got '{text}'. See http://en.wikipedia.org/wiki/ISO_8601"
            ))
        })
}

/// The signature `claim` should carry for `request` under `secret`. Verification uses it;
/// so do tests and tools that need to sign a request the way SigV4 clients do.
pub fn expected_signature(
    request: &SignedRequest<'_>,
    claim: &SignatureClaim,
    secret: &str,
) -> Result<String, SignatureError> {
    signature_with_key(request, claim, &signing_key(secret, claim))
}

fn signature_with_key(
    request: &SignedRequest<'_>,
    claim: &SignatureClaim,
    signing_key: &[u8],
) -> Result<String, SignatureError> {
    let canonical = canonical_request(request, claim)?;
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{}\n{}",
        claim.amz_date,
        scope(claim),
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    Ok(hex::encode(hmac_sha256(
        signing_key,
        string_to_sign.as_bytes(),
    )))
}

fn scope(claim: &SignatureClaim) -> String {
    format!(
        "{}/{}/{}/aws4_request",
        claim.date, claim.region, claim.service
    )
}

/// SigV4's key chain: the secret narrowed to the claim's day, region and service.
fn signing_key(secret: &str, claim: &SignatureClaim) -> Vec<u8> {
    crate::signing::signing_key(secret, &claim.date, &claim.region, &claim.service)
}

/// The `Authorization` header value that signs `request` (whose headers must already hold
/// `x-amz-date` and every header in `signed_headers`) with the given key and scope.
pub fn authorization_header(
    request: &SignedRequest<'_>,
    access_key_id: &str,
    secret: &str,
    region: &str,
    service: &str,
    signed_headers: &[&str],
) -> Result<String, SignatureError> {
    let amz_date = header_text(request.headers, "x-amz-date")
        .ok_or_else(|| SignatureError::Incomplete("x-amz-date header is required to sign".into()))?
        .to_owned();
    let date = amz_date.get(..8).unwrap_or_default().to_owned();
    let claim = SignatureClaim {
        access_key_id: access_key_id.to_owned(),
        date: date.clone(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: signed_headers
            .iter()
            .map(|name| name.to_ascii_lowercase())
            .collect(),
        signature: String::new(),
        amz_date,
        presigned_expires: None,
        session_token: None,
        presigned_payload: None,
        legacy_expires_at: None,
    };
    let signature = expected_signature(request, &claim, secret)?;
    Ok(format!(
        "{ALGORITHM} Credential={access_key_id}/{date}/{region}/{service}/aws4_request, SignedHeaders={}, Signature={signature}",
        claim.signed_headers.join(";")
    ))
}

/// The `Authorization` header that signs `request` over every header it holds (which must
/// include `host` and `x-amz-date`, and `x-amz-security-token` for temporary credentials):
/// how Cairn calls an AWS-style endpoint as someone.
pub fn sign_request(
    request: &SignedRequest<'_>,
    credentials: (&str, &str),
    region: &str,
    service: &str,
) -> Result<http::HeaderValue, SignatureError> {
    let mut names: Vec<String> = request
        .headers
        .keys()
        .map(|name| name.as_str().to_owned())
        .collect();
    names.sort();
    names.dedup();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let authorization = authorization_header(
        request,
        credentials.0,
        credentials.1,
        region,
        service,
        &names,
    )?;
    http::HeaderValue::from_str(&authorization)
        .map_err(|_| SignatureError::Incomplete("signature is not a header value".into()))
}

/// [`sign_request`] for a POST of `body` to `/`: an AWS JSON call.
pub fn sign_json_post(
    headers: &mut HeaderMap,
    body: &[u8],
    access_key_id: &str,
    secret: &str,
    region: &str,
    service: &str,
) -> Result<(), SignatureError> {
    let authorization = sign_request(
        &SignedRequest {
            method: &Method::POST,
            raw_path: "/",
            raw_query: "",
            headers,
            body,
        },
        (access_key_id, secret),
        region,
        service,
    )?;
    headers.insert(http::header::AUTHORIZATION, authorization);
    Ok(())
}

/// The canonical request of SigV4 step 1.
pub fn canonical_request(
    request: &SignedRequest<'_>,
    claim: &SignatureClaim,
) -> Result<String, SignatureError> {
    let mut query: Vec<(String, String)> = decode_pairs(request.raw_query)
        .into_iter()
        .filter(|(key, _)| claim.presigned_expires.is_none() || key != "X-Amz-Signature")
        .map(|(key, value)| (uri_encode(&key), uri_encode(&value)))
        .collect();
    query.sort();
    let canonical_query = query
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut canonical_headers = String::new();
    for name in &claim.signed_headers {
        let values: Vec<String> = request
            .headers
            .get_all(name.as_str())
            .iter()
            .map(|value| collapse_spaces(&String::from_utf8_lossy(value.as_bytes())))
            .collect();
        if values.is_empty() {
            return Err(SignatureError::Incomplete(format!(
                "signed header '{name}' is not present in the request"
            )));
        }
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&values.join(","));
        canonical_headers.push('\n');
    }
    let payload_hash = claim.payload_hash(request);
    Ok(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method.as_str(),
        canonical_uri(request.raw_path, &claim.service),
        canonical_query,
        canonical_headers,
        claim.signed_headers.join(";"),
        payload_hash
    ))
}

/// S3 signs the path as sent; every other service signs it normalized (RFC 3986's dot
/// segments removed, empty segments dropped) and URI-encoded once more.
fn canonical_uri(raw_path: &str, service: &str) -> String {
    let path = if raw_path.is_empty() { "/" } else { raw_path };
    if service == "s3" {
        return path.to_owned();
    }
    utf8_percent_encode(&normalized_path(path), URI_ENCODE_PATH).to_string()
}

/// Whether `raw_path` is the path its signature covers: always for S3, which signs the path
/// as sent; for every other service only when normalising leaves it as it is.
pub fn is_path_as_signed(raw_path: &str, service: &str) -> bool {
    service == "s3" || raw_path.is_empty() || normalized_path(raw_path) == raw_path
}

/// `/a/./b/../c//` → `/a/c/`: what AWS's signers sign for every service but S3.
fn normalized_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    let ends_in_directory = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    let mut normalized = format!("/{}", segments.join("/"));
    if ends_in_directory && !segments.is_empty() {
        normalized.push('/');
    }
    normalized
}

fn uri_encode(text: &str) -> String {
    utf8_percent_encode(text, URI_ENCODE).to_string()
}

fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn only_normalised_paths_are_served_as_signed_outside_s3() {
        for path in ["/", "", "/2015-03-31/functions/f/invocations", "/a/"] {
            assert!(is_path_as_signed(path, "lambda"), "{path}");
        }
        for path in ["/a/../b", "//a", "/a/./b", "/a//b", "/a/.."] {
            assert!(!is_path_as_signed(path, "lambda"), "{path}");
            assert!(is_path_as_signed(path, "s3"), "{path}");
        }
    }

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn at(text: &str) -> DateTime<Utc> {
        parse_amz_date(text).unwrap()
    }

    /// AWS's published SigV4 test suite case "get-vanilla".
    fn get_vanilla() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        headers.insert(
            "authorization",
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, \
                 Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
        );
        headers
    }

    fn request<'a>(headers: &'a HeaderMap, query: &'a str) -> SignedRequest<'a> {
        SignedRequest {
            method: &Method::GET,
            raw_path: "/",
            raw_query: query,
            headers,
            body: b"",
        }
    }

    #[test]
    fn accepts_the_aws_test_suite_vanilla_request() {
        let headers = get_vanilla();
        let verified = verify(&request(&headers, ""), at("20150830T123600Z"), |key| {
            (key == "AKIDEXAMPLE").then_some(SECRET)
        })
        .unwrap();
        assert_eq!(verified.region, "us-east-1");
        assert_eq!(verified.service, "service");
    }

    #[test]
    fn rejects_a_wrong_secret_an_unknown_key_and_tampering() {
        let headers = get_vanilla();
        let now = at("20150830T123600Z");
        assert!(matches!(
            verify(&request(&headers, ""), now, |_| Some("other")),
            Err(SignatureError::Mismatch { .. })
        ));
        assert!(matches!(
            verify(&request(&headers, ""), now, |_| None::<&str>),
            Err(SignatureError::UnknownAccessKey { .. })
        ));
        assert!(matches!(
            verify(&request(&headers, "extra=1"), now, |_| Some(SECRET)),
            Err(SignatureError::Mismatch { .. })
        ));
    }

    #[test]
    fn enforces_fifteen_minutes_of_clock_skew_both_ways() {
        let headers = get_vanilla();
        let ok = |now| verify(&request(&headers, ""), at(now), |_| Some(SECRET));
        assert!(ok("20150830T125100Z").is_ok());
        match ok("20150830T125101Z") {
            Err(SignatureError::Expired {
                signed, earliest, ..
            }) => {
                assert_eq!(signed, "20150830T123600Z");
                assert_eq!(earliest, "20150830T123601Z");
            }
            other => panic!("{other:?}"),
        }
        assert!(ok("20150830T122100Z").is_ok());
        assert!(matches!(
            ok("20150830T122059Z"),
            Err(SignatureError::NotYetCurrent { .. })
        ));
    }

    #[test]
    fn missing_and_malformed_authorization() {
        let headers = HeaderMap::new();
        assert_eq!(
            verify(&request(&headers, ""), Utc::now(), |_| Some(SECRET)),
            Err(SignatureError::Missing)
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=a/b"),
        );
        headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        assert!(matches!(
            verify(&request(&headers, ""), Utc::now(), |_| Some(SECRET)),
            Err(SignatureError::Incomplete(_))
        ));
    }

    #[test]
    fn presigned_query_form_verifies_and_expires() {
        // Signed with the same algorithm as AWS's presigned-URL example, over this request.
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        let query_without_signature = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host";
        let claim = parse_presigned_query(&decode_pairs(&format!(
            "{query_without_signature}&X-Amz-Signature=00"
        )))
        .unwrap();
        let signature =
            expected_signature(&request(&headers, query_without_signature), &claim, SECRET)
                .unwrap();
        let query = format!("{query_without_signature}&X-Amz-Signature={signature}");
        let check = |now| verify(&request(&headers, &query), at(now), |_| Some(SECRET));
        assert!(check("20150830T123600Z").is_ok());
        assert!(check("20150830T123700Z").is_ok());
        assert!(matches!(
            check("20150830T123701Z"),
            Err(SignatureError::Expired { .. })
        ));
    }

    /// A raw request of AWS's suite: request line, headers (a line starting with white space
    /// continues the header before it, as another value), blank line, body.
    fn suite_request(raw: &str) -> (Method, String, String, HeaderMap, Vec<u8>) {
        let (head, body) = raw.split_once("\n\n").unwrap_or((raw, ""));
        let mut lines = head.lines();
        let request_line = lines.next().unwrap();
        let mut parts = request_line.splitn(2, ' ');
        let method: Method = parts.next().unwrap().parse().unwrap();
        let target = parts.next().unwrap().rsplit_once(" HTTP/").unwrap().0;
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut headers = HeaderMap::new();
        let mut last: Option<http::HeaderName> = None;
        for line in lines {
            if line.starts_with(' ') || line.starts_with('\t') {
                let name = last.clone().unwrap();
                headers.append(name, HeaderValue::from_str(line.trim()).unwrap());
                continue;
            }
            let (name, value) = line.split_once(':').unwrap();
            let name: http::HeaderName = name.parse().unwrap();
            headers.append(name.clone(), HeaderValue::from_str(value.trim()).unwrap());
            last = Some(name);
        }
        (
            method,
            path.to_owned(),
            query.to_owned(),
            headers,
            body.as_bytes().to_vec(),
        )
    }

    #[test]
    fn every_case_of_awss_sigv4_test_suite_verifies() {
        let cases: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../tests/data/aws-sigv4-test-suite.json")).unwrap();
        assert_eq!(cases.len(), 27);
        for case in &cases {
            let name = case["name"].as_str().unwrap();
            let (method, path, query, mut headers, body) =
                suite_request(case["request"].as_str().unwrap());
            headers.insert(
                http::header::AUTHORIZATION,
                HeaderValue::from_str(case["authorization"].as_str().unwrap()).unwrap(),
            );
            let request = SignedRequest {
                method: &method,
                raw_path: &path,
                raw_query: &query,
                headers: &headers,
                body: &body,
            };
            let claim = parse_claim(&request).unwrap_or_else(|error| panic!("{name}: {error}"));
            assert_eq!(
                canonical_request(&request, &claim).unwrap(),
                case["canonical_request"].as_str().unwrap(),
                "{name}"
            );
            let verified = verify(&request, at("20150830T123600Z"), |_| Some(SECRET));
            assert!(verified.is_ok(), "{name}: {verified:?}");
            let tampered = verify(&request, at("20150830T123600Z"), |_| Some("another secret"));
            assert!(tampered.is_err(), "{name}");
        }
    }

    #[test]
    fn the_http_date_header_may_stand_for_x_amz_date() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        headers.insert(
            "date",
            HeaderValue::from_static("Sun, 30 Aug 2015 12:36:00 GMT"),
        );
        let unsigned = SignedRequest {
            method: &Method::GET,
            raw_path: "/",
            raw_query: "",
            headers: &headers,
            body: b"",
        };
        // Signed over the Date header: with no X-Amz-Date, the verifier reads the time from
        // Date, in SigV4's basic form.
        let claim_headers = {
            let mut with_date = headers.clone();
            let date_claim = SignatureClaim {
                access_key_id: "AKIDEXAMPLE".into(),
                date: "20150830".into(),
                region: "us-east-1".into(),
                service: "service".into(),
                signed_headers: vec!["date".into(), "host".into()],
                signature: String::new(),
                amz_date: "20150830T123600Z".into(),
                presigned_expires: None,
                session_token: None,
                presigned_payload: None,
                legacy_expires_at: None,
            };
            let signature = expected_signature(&unsigned, &date_claim, SECRET).unwrap();
            with_date.insert(
                http::header::AUTHORIZATION,
                HeaderValue::from_str(&format!(
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                     SignedHeaders=date;host, Signature={signature}"
                ))
                .unwrap(),
            );
            with_date
        };
        let request = SignedRequest {
            headers: &claim_headers,
            ..unsigned
        };
        assert!(verify(&request, at("20150830T123700Z"), |_| Some(SECRET)).is_ok());
        assert!(matches!(
            verify(&request, at("20150830T130000Z"), |_| Some(SECRET)),
            Err(SignatureError::Expired { .. })
        ));
    }

    #[test]
    fn host_and_every_amz_header_must_be_signed() {
        let mut headers = get_vanilla();
        headers.insert(
            "x-amz-copy-source",
            HeaderValue::from_static("/other/object"),
        );
        let refused = verify(&request(&headers, ""), at("20150830T123600Z"), |_| {
            Some(SECRET)
        });
        assert_eq!(
            refused,
            Err(SignatureError::HeadersNotSigned {
                access_key_id: "AKIDEXAMPLE".into(),
                names: vec!["x-amz-copy-source".into()]
            })
        );
        // Other unsigned headers (a proxy's, the user agent) are not the signature's concern.
        let mut headers = get_vanilla();
        headers.insert("user-agent", HeaderValue::from_static("e2e"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("192.0.2.1"));
        assert!(
            verify(&request(&headers, ""), at("20150830T123600Z"), |_| Some(
                SECRET
            ))
            .is_ok()
        );
    }

    #[test]
    fn an_s3_presigned_url_signs_unsigned_payload_as_awss_example_shows() {
        // AWS's example in "Authenticating Requests: Using Query Parameters": a presigned
        // S3 GET, whose canonical request ends in the literal UNSIGNED-PAYLOAD.
        let mut headers = HeaderMap::new();
        headers.insert(
            "host",
            HeaderValue::from_static("examplebucket.s3.amazonaws.com"),
        );
        let query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
        let request = SignedRequest {
            method: &Method::GET,
            raw_path: "/test.txt",
            raw_query: query,
            headers: &headers,
            body: b"",
        };
        let verified = verify(&request, at("20130524T000100Z"), |_| {
            Some("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
        })
        .unwrap();
        assert_eq!(verified.service, "s3");
        let claim = parse_claim(&request).unwrap();
        assert_eq!(
            claim.declared_payload(&headers),
            Ok(DeclaredPayload::Unsigned),
            "the body of a presigned S3 request is not checked"
        );
    }

    #[test]
    fn authorization_header_reproduces_the_vanilla_signature() {
        let mut headers = get_vanilla();
        let expected = headers.remove("authorization").unwrap();
        let signed = authorization_header(
            &request(&headers, ""),
            "AKIDEXAMPLE",
            SECRET,
            "us-east-1",
            "service",
            &["host", "x-amz-date"],
        )
        .unwrap();
        assert_eq!(
            signed.replace(", ", ","),
            expected.to_str().unwrap().replace(", ", ",")
        );
    }

    #[test]
    fn canonical_uri_encodes_twice_except_for_s3() {
        assert_eq!(canonical_uri("/a%20b/c", "cloudtrail"), "/a%2520b/c");
        assert_eq!(canonical_uri("/a%20b/c", "s3"), "/a%20b/c");
        assert_eq!(canonical_uri("", "cloudtrail"), "/");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    proptest! {
        /// Whatever arrives in Authorization, the date header and the query string, the
        /// verifier answers with a reason, never a panic, and never accepts it.
        #[test]
        fn verification_is_total(
            authorization in "(AWS4-HMAC-SHA256 )?(Credential=[A-Za-z0-9/_-]{0,40})?(, SignedHeaders=[a-z;-]{0,20})?(, Signature=[0-9a-f]{0,64})?",
            date in "[0-9TZ]{0,18}",
            query in "[A-Za-z0-9=&%+-]{0,60}",
        ) {
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_str(&authorization) {
                headers.insert("authorization", value);
            }
            if let Ok(value) = HeaderValue::from_str(&date) {
                headers.insert("x-amz-date", value);
            }
            let request = SignedRequest { method: &Method::POST, raw_path: "/", raw_query: &query, headers: &headers, body: b"{}" };
            prop_assert!(verify(&request, Utc::now(), |_| Some("secret")).is_err());
        }
    }
}
