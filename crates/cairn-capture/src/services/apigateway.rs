//! API Gateway: an API key's value is the credential callers present, yet the model does not
//! mark it sensitive, so this rule hides it (CreateApiKey's, GetApiKey's and GetApiKeys'
//! answers, an import's, a patch's).

use super::{Redaction, ServiceRules};

pub struct ApiGateway;

impl ServiceRules for ApiGateway {
    fn id(&self) -> &'static str {
        "apigateway"
    }

    fn redactions(&self) -> &'static [(&'static str, Redaction)] {
        &[("value", Redaction::Hide)]
    }
}
