//! IAM-style roles and their trust policies: who may assume a role.
//!
//! A trust policy is the role's `AssumeRolePolicyDocument`, kept as the JSON a user writes.
//! Cairn evaluates the parts that decide trust without an IAM policy engine: `Effect`,
//! `Principal` (`AWS` ARNs, account IDs, `*`) and `Action`. Explicit Deny wins. A statement
//! with a `Condition`, `NotPrincipal` or `NotAction` cannot be decided here, so an Allow
//! with one grants nothing and a Deny with one denies: an unknown rule never widens trust.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::Principal;

/// Sessions last one hour unless the role allows longer.
pub const DEFAULT_MAX_SESSION_DURATION_SECS: u32 = 3600;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub account_id: String,
    pub role_name: String,
    /// The stable role ID AWS shows in `principalId` (`AROA…`).
    pub role_id: String,
    pub trust_policy: Value,
    #[serde(default = "default_max_session_duration")]
    pub max_session_duration_secs: u32,
}

fn default_max_session_duration() -> u32 {
    DEFAULT_MAX_SESSION_DURATION_SECS
}

impl Role {
    pub fn arn(&self) -> String {
        format!("arn:aws:iam::{}:role/{}", self.account_id, self.role_name)
    }

    /// Whether `caller` may assume this role.
    pub fn trusts(&self, caller: &Principal) -> bool {
        let statements = match self.trust_policy.get("Statement") {
            Some(Value::Array(statements)) => statements.iter().collect::<Vec<_>>(),
            Some(statement @ Value::Object(_)) => vec![statement],
            _ => return false,
        };
        let mut allowed = false;
        for statement in statements {
            let undecidable = ["Condition", "NotPrincipal", "NotAction"]
                .iter()
                .any(|key| statement.get(key).is_some());
            let effect = statement.get("Effect").and_then(Value::as_str);
            let applies = || {
                names_assume_role(statement.get("Action"))
                    && names_caller(statement.get("Principal"), caller)
            };
            match effect {
                Some("Deny") if undecidable || applies() => return false,
                Some("Allow") if !undecidable && applies() => allowed = true,
                _ => {}
            }
        }
        allowed
    }
}

/// A role declared in the config file (`[[roles]]`). The trust policy may be written as JSON
/// text or as a TOML table.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct DeclaredRole {
    /// Defaults to the account of the first user.
    #[serde(default)]
    pub account_id: Option<String>,
    pub role_name: String,
    #[serde(deserialize_with = "policy_document")]
    pub trust_policy: Value,
    #[serde(default)]
    pub max_session_duration_secs: Option<u32>,
}

fn policy_document<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(text) => serde_json::from_str(&text).map_err(serde::de::Error::custom),
        other => Ok(other),
    }
}

fn names_assume_role(action: Option<&Value>) -> bool {
    let matches = |pattern: &str| {
        let pattern = pattern.to_ascii_lowercase();
        match pattern.strip_suffix('*') {
            Some(prefix) => "sts:assumerole".starts_with(prefix),
            None => pattern == "sts:assumerole",
        }
    };
    match action {
        Some(Value::String(action)) => matches(action),
        Some(Value::Array(actions)) => actions.iter().filter_map(Value::as_str).any(matches),
        _ => false,
    }
}

fn names_caller(principal: Option<&Value>, caller: &Principal) -> bool {
    let aws = match principal {
        Some(Value::String(star)) => return star == "*",
        Some(Value::Object(members)) => members.get("AWS"),
        _ => None,
    };
    let names: Vec<&str> = match aws {
        Some(Value::String(name)) => vec![name.as_str()],
        Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).collect(),
        _ => return false,
    };
    let root = format!("arn:aws:iam::{}:root", caller.account_id);
    let role_arn = caller.role_arn();
    names.iter().any(|name| {
        *name == "*"
            || *name == caller.account_id
            || *name == root
            || *name == caller.arn
            || role_arn.as_deref() == Some(*name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PrincipalKind;
    use serde_json::json;

    fn user(account: &str, name: &str) -> Principal {
        Principal {
            account_id: account.into(),
            arn: format!("arn:aws:iam::{account}:user/{name}"),
            principal_id: "AIDAEXAMPLE".into(),
            access_key_id: "AKIAEXAMPLE".into(),
            kind: PrincipalKind::User {
                user_name: name.into(),
                session: None,
            },
        }
    }

    fn role(policy: Value) -> Role {
        Role {
            account_id: "111122223333".into(),
            role_name: "deployer".into(),
            role_id: "AROAEXAMPLE".into(),
            trust_policy: policy,
            max_session_duration_secs: 3600,
        }
    }

    #[test]
    fn trust_follows_principal_action_and_explicit_deny() {
        let alice = user("111122223333", "alice");
        let mallory = user("999988887777", "mallory");
        let account = role(json!({"Statement": [{"Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "sts:AssumeRole"}]}));
        assert!(account.trusts(&alice));
        assert!(!account.trusts(&mallory));
        let one_user = role(json!({"Statement": {"Effect": "Allow",
            "Principal": {"AWS": ["arn:aws:iam::999988887777:user/mallory"]}, "Action": ["sts:*"]}}));
        assert!(one_user.trusts(&mallory));
        assert!(!one_user.trusts(&alice));
        let wrong_action = role(json!({"Statement": [{"Effect": "Allow", "Principal": "*",
            "Action": "sts:AssumeRoleWithSAML"}]}));
        assert!(!wrong_action.trusts(&alice));
        let denied = role(json!({"Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "*"},
            {"Effect": "Deny", "Principal": {"AWS": "111122223333"}, "Action": "sts:AssumeRole"}]}));
        assert!(!denied.trusts(&alice));
        assert!(denied.trusts(&mallory));
    }

    #[test]
    fn undecidable_statements_never_widen_trust() {
        let alice = user("111122223333", "alice");
        let conditional_allow = role(json!({"Statement": [{"Effect": "Allow", "Principal": "*",
            "Action": "sts:AssumeRole", "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}}]}));
        assert!(!conditional_allow.trusts(&alice));
        let conditional_deny = role(json!({"Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"},
            {"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole",
             "Condition": {"StringEquals": {"aws:username": "bob"}}}]}));
        assert!(!conditional_deny.trusts(&alice));
        assert!(!role(json!("not a policy")).trusts(&alice));
    }
}
