//! S3 Control: its calls are S3's events (`s3.amazonaws.com`), and the account's public
//! access block is told from a bucket's by name (S3 user guide, "Amazon S3 CloudTrail
//! events").

use super::ServiceRules;

pub struct S3Control;

impl ServiceRules for S3Control {
    fn id(&self) -> &'static str {
        "s3control"
    }

    fn event_source(&self) -> Option<&'static str> {
        Some("s3.amazonaws.com")
    }

    fn renamed_operations(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("GetPublicAccessBlock", "GetAccountPublicAccessBlock"),
            ("PutPublicAccessBlock", "PutAccountPublicAccessBlock"),
            ("DeletePublicAccessBlock", "DeleteAccountPublicAccessBlock"),
        ]
    }
}
