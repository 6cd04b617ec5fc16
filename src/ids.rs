//! Newtype ids. Each is a string on the wire and in the database (UUIDv7 for ids we mint, so
//! they sort by creation time), and a distinct type in the code.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// A new time-ordered id.
            pub fn generate() -> Self {
                Self(format!(concat!($prefix, "_{}"), uuid::Uuid::now_v7().simple()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
    };
}

id_type!(
    /// A tenant: every row and every API request belongs to exactly one.
    TenantId, "ten"
);
id_type!(
    /// An API key's id (not the secret).
    ApiKeyId, "key"
);
id_type!(
    /// A call, whatever its transport.
    CallId, "call"
);
