//! The members botocore's models mark `sensitive` (on the member or its shape), per
//! operation and end, as `tools/generate_routing_table.py` writes them to
//! `data/sensitive-members.json`. Redaction fails closed from this table: a secret the model
//! marks is hidden even where no hand-kept rule names it (Cognito's tokens and temporary
//! passwords, API Gateway's key values, RDS master passwords, ...). The names are those the
//! wire uses, compared without regard to case with the record's lowerCamelCase names.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use serde::Deserialize;

use crate::map_shapes::End;

const TABLE: &str = include_str!("../data/sensitive-members.json");

#[derive(Deserialize)]
struct ServiceLine {
    id: String,
    operations: HashMap<String, Ends>,
}

#[derive(Deserialize, Default)]
struct Ends {
    #[serde(default)]
    input: Vec<String>,
    #[serde(default)]
    output: Vec<String>,
}

/// Lower-cased sensitive member names: (service, operation) → [input, output].
pub struct SensitiveMembers {
    operations: HashMap<(String, String), [HashSet<String>; 2]>,
}

impl SensitiveMembers {
    pub fn builtin() -> &'static Self {
        static TABLE_PARSED: OnceLock<SensitiveMembers> = OnceLock::new();
        TABLE_PARSED.get_or_init(|| {
            Self::parse(TABLE).expect("the committed sensitive-members table parses")
        })
    }

    fn parse(text: &str) -> Result<Self, serde_json::Error> {
        let mut operations = HashMap::new();
        for line in text.lines().skip(1).filter(|line| !line.is_empty()) {
            let line: ServiceLine = serde_json::from_str(line)?;
            for (operation, ends) in line.operations {
                let lowered = |names: Vec<String>| {
                    names
                        .into_iter()
                        .map(|name| name.to_ascii_lowercase())
                        .collect::<HashSet<_>>()
                };
                operations.insert(
                    (line.id.clone(), operation),
                    [lowered(ends.input), lowered(ends.output)],
                );
            }
        }
        Ok(Self { operations })
    }

    /// Whether the model marks `member` of `operation`'s `end` sensitive.
    pub fn is_sensitive(&self, service_id: &str, operation: &str, end: End, member: &str) -> bool {
        self.operations
            .get(&(service_id.to_owned(), operation.to_owned()))
            .is_some_and(|ends| ends[end as usize].contains(&member.to_ascii_lowercase()))
    }

    /// How many operations have a sensitive member.
    pub fn len(&self) -> usize {
        self.operations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_models_secrets_are_in_the_table() {
        let table = SensitiveMembers::builtin();
        let sensitive =
            |service, operation, end, member| table.is_sensitive(service, operation, end, member);
        assert!(sensitive(
            "cognito-idp",
            "AdminInitiateAuth",
            End::Output,
            "accessToken"
        ));
        assert!(sensitive(
            "cognito-idp",
            "AdminInitiateAuth",
            End::Output,
            "RefreshToken"
        ));
        assert!(sensitive(
            "cognito-idp",
            "AdminCreateUser",
            End::Input,
            "temporaryPassword"
        ));
        assert!(
            !sensitive("apigateway", "CreateApiKey", End::Output, "value"),
            "not marked: `services/apigateway.rs` hides it"
        );
        assert!(sensitive(
            "rds",
            "CreateDBInstance",
            End::Input,
            "MasterUserPassword"
        ));
        assert!(sensitive(
            "secretsmanager",
            "GetSecretValue",
            End::Output,
            "SecretString"
        ));
        assert!(!sensitive(
            "cognito-idp",
            "AdminInitiateAuth",
            End::Input,
            "authFlow"
        ));
        assert!(!sensitive("kms", "CreateKey", End::Input, "description"));
        assert!(table.len() > 1000, "{}", table.len());
    }
}
