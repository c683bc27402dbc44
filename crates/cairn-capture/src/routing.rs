//! Which service and operation a request is. The table is botocore's service models boiled
//! down to what recognition needs; see `tools/generate_routing_table.py`.

use std::collections::HashMap;

use http::HeaderMap;
use percent_encoding::percent_decode_str;
use serde::Deserialize;

/// The committed routing table, generated from botocore's models.
const TABLE: &str = include_str!("../data/routing-table.json");

pub use cairn_wire::Protocol;

#[derive(Deserialize)]
struct ServiceLine {
    id: String,
    protocol: Protocol,
    #[serde(rename = "signingName")]
    signing_name: String,
    #[serde(rename = "endpointPrefix")]
    endpoint_prefix: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
    #[serde(rename = "targetPrefix")]
    target_prefix: Option<String>,
    operations: Vec<Vec<OperationField>>,
    #[serde(rename = "errorNames", default)]
    error_names: HashMap<String, String>,
    #[serde(rename = "noAuth", default)]
    no_auth: Vec<String>,
}

/// An operation line is `[name]`, or for rest protocols `[name, method, uri, {extra}]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum OperationField {
    Text(String),
    Extra(RouteExtra),
}

#[derive(Deserialize, Default)]
struct RouteExtra {
    #[serde(rename = "requiredQuery", default)]
    required_query: Vec<String>,
    #[serde(rename = "requiredHeaders", default)]
    required_headers: Vec<String>,
    #[serde(default)]
    secondary: bool,
}

impl OperationField {
    fn text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text),
            Self::Extra(_) => None,
        }
    }
}

/// One service as the table describes it.
#[derive(Debug)]
pub struct ServiceModel {
    /// botocore's service name (`cloudtrail`, `elbv2`, `s3`).
    pub id: String,
    pub protocol: Protocol,
    pub signing_name: String,
    pub endpoint_prefix: String,
    pub api_version: String,
    pub target_prefix: Option<String>,
    pub operations: Vec<String>,
    /// Wire error code → the exception name the service's records use, where they differ.
    pub error_names: HashMap<String, String>,
    /// The operations AWS serves without a signature (the model's `authtype: none`).
    pub no_auth: Vec<String>,
    routes: Vec<RestRoute>,
}

impl ServiceModel {
    /// Whether AWS serves `operation` without a signature.
    pub fn serves_unsigned(&self, operation: &str) -> bool {
        self.no_auth.iter().any(|name| name == operation)
    }

    fn has_operation(&self, name: &str) -> Option<&str> {
        self.operations
            .iter()
            .find(|operation| operation.as_str() == name)
            .map(String::as_str)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{Bucket}`: one segment, named as the operation's input member's location name.
    Label(String),
    /// `{Key+}`: one segment or more.
    Greedy(String),
}

/// A rest operation's `requestUri`, split for matching: `/{Bucket}/{Key+}?uploads`.
#[derive(Debug, PartialEq, Eq)]
struct RestRoute {
    operation: usize,
    method: String,
    segments: Vec<Segment>,
    /// Query keys the template requires, with the value when it names one (`?x-id=GetObject`).
    required_query: Vec<(String, Option<String>)>,
    /// Headers the operation requires where they alone tell it from another one
    /// (`x-amz-copy-source`: CopyObject, not PutObject). Lowercase.
    required_headers: Vec<String>,
    /// `/agents/{agentId}/` and `/agents/{agentId}` are different operations.
    trailing_slash: bool,
    /// Served on another endpoint; loses ties.
    secondary: bool,
}

impl RestRoute {
    fn parse(operation: usize, method: &str, request_uri: &str) -> Self {
        let (path, query) = request_uri.split_once('?').unwrap_or((request_uri, ""));
        let segments = path
            .split('/')
            .filter(|segment| !segment.is_empty())
            .map(|segment| {
                if segment.starts_with('{') && segment.ends_with("+}") {
                    Segment::Greedy(segment[1..segment.len() - 2].to_owned())
                } else if segment.starts_with('{') && segment.ends_with('}') {
                    Segment::Label(segment[1..segment.len() - 1].to_owned())
                } else {
                    Segment::Literal(segment.to_owned())
                }
            })
            .collect();
        let required_query = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((key, value)) => (key.to_owned(), Some(value.to_owned())),
                None => (pair.to_owned(), None),
            })
            .collect();
        Self {
            operation,
            method: method.to_owned(),
            segments,
            required_query,
            required_headers: Vec::new(),
            secondary: false,
            trailing_slash: path.len() > 1 && path.ends_with('/'),
        }
    }

    /// The values of the template's labels in a path this route matched (decoded segments).
    fn labels(&self, path_segments: &[String]) -> Vec<(String, String)> {
        let mut labels = Vec::new();
        let mut position = 0;
        for (index, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Literal(_) => position += 1,
                Segment::Label(name) => {
                    if let Some(value) = path_segments.get(position) {
                        labels.push((name.clone(), value.clone()));
                    }
                    position += 1;
                }
                Segment::Greedy(name) => {
                    let remaining_fixed = self.segments.len() - index - 1;
                    let end = path_segments.len().saturating_sub(remaining_fixed);
                    if let Some(taken) = path_segments.get(position..end) {
                        labels.push((name.clone(), taken.join("/")));
                    }
                    position = end;
                }
            }
        }
        labels
    }

    /// How specific a match is, when it matches: literal segments first, then query keys
    /// the template requires, then required headers, then fixed-length over greedy.
    fn score(
        &self,
        method: &str,
        path_segments: &[String],
        trailing_slash: bool,
        query: &[(String, String)],
        headers: Option<&HeaderMap>,
    ) -> Option<(usize, usize, usize, usize, usize)> {
        if self.method != method || self.trailing_slash != trailing_slash {
            return None;
        }
        let has_header = |name: &String| headers.is_some_and(|headers| headers.contains_key(name));
        if !self.required_headers.iter().all(has_header) {
            return None;
        }
        for (key, value) in &self.required_query {
            let present = query
                .iter()
                .any(|(k, v)| k == key && value.as_ref().is_none_or(|value| v == value));
            if !present {
                return None;
            }
        }
        let mut literals = 0;
        let mut position = 0;
        for (index, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Literal(literal) => {
                    if path_segments.get(position) != Some(literal) {
                        return None;
                    }
                    literals += 1;
                    position += 1;
                }
                Segment::Label(_) => {
                    if path_segments
                        .get(position)
                        .is_none_or(|segment| segment.is_empty())
                    {
                        return None;
                    }
                    position += 1;
                }
                Segment::Greedy(_) => {
                    // A greedy label takes at least one segment and everything up to the
                    // literals that follow it.
                    let remaining_fixed = self.segments.len() - index - 1;
                    if path_segments.len() < position + 1 + remaining_fixed {
                        return None;
                    }
                    position = path_segments.len() - remaining_fixed;
                }
            }
        }
        if position != path_segments.len() {
            return None;
        }
        let fixed = usize::from(
            !self
                .segments
                .iter()
                .any(|segment| matches!(segment, Segment::Greedy(_))),
        );
        Some((
            literals,
            self.required_query.len(),
            self.required_headers.len(),
            fixed,
            usize::from(!self.secondary),
        ))
    }
}

/// What a request shows about itself, already parsed at the edge.
#[derive(Debug, Default)]
pub struct Call<'a> {
    /// The service its SigV4 credential scope names.
    pub signing_name: Option<&'a str>,
    pub method: &'a str,
    /// The path as sent (percent-encoded).
    pub raw_path: &'a str,
    /// Query parameters, decoded.
    pub query: &'a [(String, String)],
    pub target: Option<&'a str>,
    /// Parameters of a form-encoded body (query and ec2 protocols), decoded.
    pub form: &'a [(String, String)],
    pub headers: Option<&'a HeaderMap>,
}

/// A recognised call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recognized<'t> {
    pub service: &'t ServiceModel,
    pub operation: &'t str,
    /// The URI template matched, for rest protocols.
    route: Option<&'t RestRoute>,
}

impl Recognized<'_> {
    /// `[("Bucket", "b"), ("Key", "a/b.txt")]` for an S3 GetObject on `/b/a/b.txt`: the path
    /// labels of a rest call, named as in the service model. Empty for other protocols.
    pub fn path_labels(&self, raw_path: &str) -> Vec<(String, String)> {
        self.route
            .map_or_else(Vec::new, |route| route.labels(&decoded_segments(raw_path)))
    }
}

fn decoded_segments(raw_path: &str) -> Vec<String> {
    raw_path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(|segment| percent_decode_str(segment).decode_utf8_lossy().into_owned())
        .collect()
}

impl PartialEq for ServiceModel {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for ServiceModel {}

pub struct RoutingTable {
    botocore_version: String,
    services: Vec<ServiceModel>,
    by_signing_name: HashMap<String, Vec<usize>>,
    by_target_prefix: HashMap<String, Vec<usize>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the routing table is malformed: {0}")]
pub struct TableError(String);

impl RoutingTable {
    /// The table generated from the botocore models Cairn was built with.
    pub fn builtin() -> &'static RoutingTable {
        static TABLE_ONCE: std::sync::OnceLock<RoutingTable> = std::sync::OnceLock::new();
        TABLE_ONCE
            .get_or_init(|| RoutingTable::parse(TABLE).expect("the committed routing table parses"))
    }

    pub fn parse(text: &str) -> Result<Self, TableError> {
        let mut lines = text.lines();
        let header: serde_json::Value = serde_json::from_str(lines.next().unwrap_or(""))
            .map_err(|error| TableError(error.to_string()))?;
        let mut services = Vec::new();
        for line in lines.filter(|line| !line.is_empty()) {
            let parsed: ServiceLine =
                serde_json::from_str(line).map_err(|error| TableError(error.to_string()))?;
            let rest = matches!(parsed.protocol, Protocol::RestJson | Protocol::RestXml);
            let mut operations = Vec::with_capacity(parsed.operations.len());
            let mut routes = Vec::new();
            for (index, operation) in parsed.operations.into_iter().enumerate() {
                let name = operation
                    .first()
                    .and_then(OperationField::text)
                    .map(str::to_owned)
                    .ok_or_else(|| TableError(format!("{}: empty operation", parsed.id)))?;
                if rest {
                    let method = operation.get(1).and_then(OperationField::text);
                    let uri = operation.get(2).and_then(OperationField::text);
                    let (Some(method), Some(uri)) = (method, uri) else {
                        return Err(TableError(format!(
                            "{}.{name}: no method or URI",
                            parsed.id
                        )));
                    };
                    let mut route = RestRoute::parse(index, method, uri);
                    // A fourth element lists required query-string members.
                    if let Some(OperationField::Extra(extra)) = operation.get(3) {
                        for key in &extra.required_query {
                            if !route.required_query.iter().any(|(known, _)| known == key) {
                                route.required_query.push((key.clone(), None));
                            }
                        }
                        route.required_headers = extra
                            .required_headers
                            .iter()
                            .map(|name| name.to_ascii_lowercase())
                            .collect();
                        route.secondary = extra.secondary;
                    }
                    routes.push(route);
                }
                operations.push(name);
            }
            services.push(ServiceModel {
                id: parsed.id,
                protocol: parsed.protocol,
                signing_name: parsed.signing_name,
                endpoint_prefix: parsed.endpoint_prefix,
                api_version: parsed.api_version,
                target_prefix: parsed.target_prefix,
                operations,
                error_names: parsed.error_names,
                no_auth: parsed.no_auth,
                routes,
            });
        }
        let mut by_signing_name: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_target_prefix: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, service) in services.iter().enumerate() {
            by_signing_name
                .entry(service.signing_name.clone())
                .or_default()
                .push(index);
            if let Some(prefix) = &service.target_prefix {
                by_target_prefix
                    .entry(prefix.clone())
                    .or_default()
                    .push(index);
            }
        }
        Ok(Self {
            botocore_version: header["botocore"].as_str().unwrap_or("").to_owned(),
            services,
            by_signing_name,
            by_target_prefix,
        })
    }

    pub fn botocore_version(&self) -> &str {
        &self.botocore_version
    }

    pub fn services(&self) -> &[ServiceModel] {
        &self.services
    }

    pub fn service(&self, id: &str) -> Option<&ServiceModel> {
        self.services.iter().find(|service| service.id == id)
    }

    /// The service and operation `call` is, when the table knows it.
    pub fn recognize(&self, call: &Call<'_>) -> Option<Recognized<'_>> {
        let candidates: Vec<&ServiceModel> = match call
            .signing_name
            .and_then(|name| self.by_signing_name.get(name))
        {
            Some(indexes) => indexes.iter().map(|&index| &self.services[index]).collect(),
            None => self.services.iter().collect(),
        };
        if let Some(target) = call.target {
            let (prefix, operation) = target.rsplit_once('.')?;
            let found: Vec<Recognized<'_>> = self
                .by_target_prefix
                .get(prefix)?
                .iter()
                .map(|&index| &self.services[index])
                .filter_map(|service| {
                    Some(Recognized {
                        service,
                        operation: service.has_operation(operation)?,
                        route: None,
                    })
                })
                .collect();
            // A target prefix is (nearly) unique; if two services share one, the one signed
            // for wins.
            return found
                .iter()
                .find(|found| Some(found.service.signing_name.as_str()) == call.signing_name)
                .or(found.first())
                .copied();
        }
        let parameter = |name: &str| {
            call.form
                .iter()
                .chain(call.query)
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        if let Some(action) = parameter("Action") {
            let version = parameter("Version");
            let mut matches = candidates
                .iter()
                .filter(|service| matches!(service.protocol, Protocol::Query | Protocol::Ec2))
                .filter_map(|service| {
                    Some(Recognized {
                        service,
                        operation: service.has_operation(action)?,
                        route: None,
                    })
                });
            let first = matches.next()?;
            // Services sharing a signing name (ELB v1 and v2, RDS and its siblings) are told
            // apart by the API version the request names.
            return Some(
                std::iter::once(first)
                    .chain(matches)
                    .find(|found| Some(found.service.api_version.as_str()) == version)
                    .unwrap_or(first),
            );
        }
        let trailing_slash = call.raw_path.len() > 1 && call.raw_path.ends_with('/');
        let path_segments = decoded_segments(call.raw_path);
        let as_str: Vec<&str> = path_segments.iter().map(String::as_str).collect();
        if let ["service", _, "operation", operation] = as_str.as_slice() {
            if let Some(found) = candidates
                .iter()
                .filter(|service| service.protocol == Protocol::SmithyRpcV2Cbor)
                .find_map(|service| {
                    Some(Recognized {
                        service,
                        operation: service.has_operation(operation)?,
                        route: None,
                    })
                })
            {
                return Some(found);
            }
        }
        candidates
            .iter()
            .flat_map(|service| service.routes.iter().map(move |route| (*service, route)))
            .filter_map(|(service, route)| {
                route
                    .score(
                        call.method,
                        &path_segments,
                        trailing_slash,
                        call.query,
                        call.headers,
                    )
                    .map(|score| (score, service, route))
            })
            .max_by_key(|(score, _, _)| *score)
            .map(|(_, service, route)| Recognized {
                service,
                operation: &service.operations[route.operation],
                route: Some(route),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> &'static RoutingTable {
        RoutingTable::builtin()
    }

    fn rest(
        signing_name: &str,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Option<(String, String)> {
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let call = Call {
            signing_name: Some(signing_name),
            method,
            raw_path: path,
            query: &query,
            ..Call::default()
        };
        table()
            .recognize(&call)
            .map(|found| (found.service.id.clone(), found.operation.to_owned()))
    }

    fn pair(service: &str, operation: &str) -> Option<(String, String)> {
        Some((service.to_owned(), operation.to_owned()))
    }

    #[test]
    fn the_table_covers_every_botocore_service() {
        assert!(table().services().len() >= 400);
        assert!(!table().botocore_version().is_empty());
        let cloudtrail = table().service("cloudtrail").unwrap();
        assert_eq!(
            crate::services::event_source(cloudtrail),
            "cloudtrail.amazonaws.com"
        );
        assert_eq!(cloudtrail.operations.len(), 60);
    }

    #[test]
    fn json_protocols_by_target() {
        let call = |signing_name, target| {
            let call = Call {
                signing_name: Some(signing_name),
                method: "POST",
                raw_path: "/",
                target: Some(target),
                ..Call::default()
            };
            table()
                .recognize(&call)
                .map(|found| (found.service.id.clone(), found.operation.to_owned()))
        };
        assert_eq!(
            call(
                "cloudtrail",
                "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents"
            ),
            pair("cloudtrail", "LookupEvents")
        );
        assert_eq!(
            call("kms", "TrentService.DisableKey"),
            pair("kms", "DisableKey")
        );
        assert_eq!(
            call("secretsmanager", "secretsmanager.CreateSecret"),
            pair("secretsmanager", "CreateSecret")
        );
        assert_eq!(
            call("ssm", "AmazonSSM.DeleteDocument"),
            pair("ssm", "DeleteDocument")
        );
        assert_eq!(
            call("dynamodb", "DynamoDBStreams_20120810.GetRecords"),
            pair("dynamodbstreams", "GetRecords")
        );
        assert_eq!(
            call("dynamodb", "DynamoDB_20120810.GetItem"),
            pair("dynamodb", "GetItem")
        );
        assert_eq!(call("kms", "TrentService.NoSuchThing"), None);
    }

    #[test]
    fn query_protocols_by_action_and_version() {
        let call = |signing_name, form: &[(&str, &str)]| {
            let form: Vec<(String, String)> = form
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let call = Call {
                signing_name: Some(signing_name),
                method: "POST",
                raw_path: "/",
                form: &form,
                ..Call::default()
            };
            table()
                .recognize(&call)
                .map(|found| (found.service.id.clone(), found.operation.to_owned()))
        };
        assert_eq!(
            call(
                "sts",
                &[("Action", "AssumeRole"), ("Version", "2011-06-15")]
            ),
            pair("sts", "AssumeRole")
        );
        assert_eq!(
            call(
                "ec2",
                &[("Action", "RunInstances"), ("Version", "2016-11-15")]
            ),
            pair("ec2", "RunInstances")
        );
        assert_eq!(
            call(
                "elasticloadbalancing",
                &[("Action", "CreateLoadBalancer"), ("Version", "2015-12-01")]
            ),
            pair("elbv2", "CreateLoadBalancer")
        );
        assert_eq!(
            call(
                "elasticloadbalancing",
                &[("Action", "CreateLoadBalancer"), ("Version", "2012-06-01")]
            ),
            pair("elb", "CreateLoadBalancer")
        );
    }

    #[test]
    fn rest_protocols_pick_the_most_specific_template() {
        assert_eq!(
            rest("s3", "GET", "/bucket/a/b/c.txt", &[]),
            pair("s3", "GetObject")
        );
        assert_eq!(
            rest("s3", "GET", "/bucket/a/b/c.txt", &[("uploadId", "u1")]),
            pair("s3", "ListParts")
        );
        assert_eq!(rest("s3", "GET", "/bucket", &[]), pair("s3", "ListObjects"));
        assert_eq!(
            rest("s3", "GET", "/bucket", &[("list-type", "2")]),
            pair("s3", "ListObjectsV2")
        );
        assert_eq!(
            rest("s3", "PUT", "/bucket", &[("acl", "")]),
            pair("s3", "PutBucketAcl")
        );
        assert_eq!(rest("s3", "GET", "/", &[]), pair("s3", "ListBuckets"));
        assert_eq!(
            rest("s3", "POST", "/bucket/key", &[("uploads", "")]),
            pair("s3", "CreateMultipartUpload")
        );
        assert_eq!(
            rest(
                "lambda",
                "POST",
                "/2015-03-31/functions/my-function/invocations",
                &[]
            ),
            pair("lambda", "Invoke")
        );
        assert_eq!(
            rest("lambda", "GET", "/2015-03-31/functions/my-function", &[]),
            pair("lambda", "GetFunction")
        );
        assert_eq!(rest("lambda", "PATCH", "/nowhere", &[]), None);
    }

    #[test]
    fn path_labels_are_read_from_the_matched_template() {
        let labels = |signing_name: &str, method: &str, path: &str| {
            let call = Call {
                signing_name: Some(signing_name),
                method,
                raw_path: path,
                ..Call::default()
            };
            table()
                .recognize(&call)
                .map(|found| found.path_labels(path))
                .unwrap_or_default()
        };
        let pair = |name: &str, value: &str| (name.to_owned(), value.to_owned());
        assert_eq!(
            labels("s3", "GET", "/bucket/logs/2026/a%20b.txt"),
            [pair("Bucket", "bucket"), pair("Key", "logs/2026/a b.txt")]
        );
        assert_eq!(
            labels("lambda", "GET", "/2015-03-31/functions/my-function"),
            [pair("FunctionName", "my-function")]
        );
        assert!(labels("s3", "GET", "/").is_empty());
    }

    #[test]
    fn a_required_header_tells_copies_from_uploads() {
        let recognize = |query: &[(String, String)], headers: &HeaderMap| {
            table()
                .recognize(&Call {
                    signing_name: Some("s3"),
                    method: "PUT",
                    raw_path: "/bucket/key",
                    query,
                    headers: Some(headers),
                    ..Call::default()
                })
                .map(|found| found.operation.to_owned())
        };
        let mut copying = HeaderMap::new();
        copying.insert("x-amz-copy-source", "/src/key".parse().unwrap());
        let part = [
            ("partNumber".to_owned(), "1".to_owned()),
            ("uploadId".to_owned(), "u1".to_owned()),
        ];
        let plain = HeaderMap::new();
        assert_eq!(recognize(&[], &plain).as_deref(), Some("PutObject"));
        assert_eq!(recognize(&[], &copying).as_deref(), Some("CopyObject"));
        assert_eq!(recognize(&part, &plain).as_deref(), Some("UploadPart"));
        assert_eq!(
            recognize(&part, &copying).as_deref(),
            Some("UploadPartCopy")
        );
    }
}
