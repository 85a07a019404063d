//! API clients (backend services) and their keys: issuing, verifying with a short cache, scoping.
//! A key is `sgk_` + 43 base64url characters, shown once and stored only as its SHA-256; every
//! change is audited; revocation reaches every instance's cache through `LISTEN samgate_api_keys`.

mod key;
mod manage;
mod principal;
mod verifier;

pub use key::{ApiKey, IssuedKey};
pub use manage::{
    ApiKeyError, ApiKeyRecord, Client, NewClient, create_client, disable_client, find_client,
    issue_key, list_clients, list_keys, revoke_key, set_client_partners,
};
pub use principal::{PartnerScope, Principal};
pub use verifier::{ApiKeyVerifier, KeyRejection, LAST_USED_FLUSH_INTERVAL, VerifierSettings};
