//! IAM: a new access key's secret and a login profile's password are left out of its
//! records entirely (real CreateAccessKey and CreateLoginProfile records), where other
//! services hide such members. Its records name errors by their exception (the model's
//! `errorNames`, in the routing table).

use super::{Redaction, ServiceRules};

pub struct Iam;

impl ServiceRules for Iam {
    fn id(&self) -> &'static str {
        "iam"
    }

    fn redactions(&self) -> &'static [(&'static str, Redaction)] {
        &[
            ("secretAccessKey", Redaction::Omit),
            ("password", Redaction::Omit),
        ]
    }
}
