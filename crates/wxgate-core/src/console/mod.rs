//! The admin console's service (the pages live in the HTTP layer, `http/console/`): signed-in
//! sessions kept in the store, the overview of every account judged from memory and paged, and
//! the onboarding of a new Official Account with a generated Token and EncodingAESKey.
//!
//! It exists beside [`crate::admin`] (whose writes it reuses) because a browser needs what a
//! script with a Bearer key does not: a session cookie that can be revoked, a CSRF token, and
//! pages that stay fast at 10 000 accounts.

pub mod onboard;
pub mod overview;
pub mod sessions;
pub mod settings;

use crate::admin::AdminError;
use crate::store::StoreError;

/// Why a console request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The presented key is not one of `admin.keys`.
    #[error("that is not an admin key of this gateway")]
    WrongKey,
    /// An account of that name exists already (onboarding never replaces one).
    #[error("an account named {0:?} exists already")]
    Exists(String),
    /// A field of a console form is not valid.
    #[error("{field}: {message}")]
    InvalidField {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
}
