//! IAM Roles Anywhere hides its tags' keys and values (real CreateProfile records).

use super::{Redaction, ServiceRules};

pub struct RolesAnywhere;

impl ServiceRules for RolesAnywhere {
    fn id(&self) -> &'static str {
        "rolesanywhere"
    }

    fn redactions(&self) -> &'static [(&'static str, Redaction)] {
        &[("key", Redaction::Hide), ("value", Redaction::Hide)]
    }
}
