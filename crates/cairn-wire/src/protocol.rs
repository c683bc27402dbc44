//! The wire protocols botocore models, as the routing table names them. A service's protocol
//! decides how its requests carry members and how its errors must look to its clients.

use serde::Deserialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
pub enum Protocol {
    /// AWS JSON 1.0 and 1.1: `POST /`, `X-Amz-Target`, `__type` errors.
    #[serde(rename = "json")]
    Json,
    /// AWS query (IAM, STS, SNS, ...): form bodies, `<ErrorResponse>` errors.
    #[serde(rename = "query")]
    Query,
    /// EC2's query dialect: `<Response><Errors>` errors.
    #[serde(rename = "ec2")]
    Ec2,
    #[serde(rename = "rest-json")]
    RestJson,
    /// S3, Route 53, CloudFront: `<Error>` documents.
    #[serde(rename = "rest-xml")]
    RestXml,
    #[serde(rename = "smithy-rpc-v2-cbor")]
    SmithyRpcV2Cbor,
}

impl Protocol {
    /// Whether the protocol's errors are XML documents.
    pub fn speaks_xml(self) -> bool {
        matches!(self, Self::Query | Self::Ec2 | Self::RestXml)
    }
}
