//! cairn-model owns the CloudTrail record and the nouns around it: the record itself (every
//! field up to eventVersion 1.11, every `userIdentity` type), lookup attributes, event
//! categories, and the projection of a record onto the fields the event history indexes.
//!
//! It does no IO and knows nothing of HTTP, storage or wire protocols. The record is
//! lossless: a field Cairn does not know is kept and written back unchanged, and a field that
//! is `null` stays `null` (AWS distinguishes `"responseElements": null` from an absent field).

mod clock;
mod field;
mod indexed;
mod lookup;
mod record;
mod state;
mod time;
pub mod trail;
mod view;

pub use clock::{Clock, FixedClock, IdGen, SystemClock, TimeOrderedIds};
pub use field::Field;
pub use indexed::{EventCategory, IndexedEvent, ResourceRef};
pub use lookup::{LookupAttribute, LookupAttributeKey, UnknownAttributeKey};
pub use record::{
    Addendum, CloudTrailRecord, InScopeOf, InsightDetails, OnBehalfOf, RecordError, Resource,
    SessionAttributes, SessionContext, SessionIssuer, TlsDetails, UserIdentity, UserIdentityType,
    WebIdFederationData,
};
pub use state::{Precondition, StateChange};
pub use time::{
    format_event_time, format_legacy_recorded_date, format_recorded_date, parse_event_time,
    EventTimeError,
};
