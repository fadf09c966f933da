//! The one token-invalid → refresh → retry: [`CredentialManager::with_fresh_token`], used by
//! every call wxgate makes with an account's access_token on someone's behalf (the ticket
//! fetch, the webhook's late customer-service reply, the API proxy).
//!
//! Guarantees: the call runs with the current access token; when WeChat rejects that token
//! (the caller says how to recognise it, with upstream's one errcode set,
//! [`is_token_invalid_errcode`](crate::upstream::is_token_invalid_errcode)), the guarded
//! refresh runs reporting exactly the token that was used
//! ([`CredentialManager::refresh_access_token`]: a burst of rejected calls costs at most one
//! fetch), and the call runs **at most once more** — never a loop. A caller that cannot repeat
//! its call (a streamed body) still gets the refresh, so its own client's retry works.

use std::future::Future;
use std::sync::Arc;

use secrecy::SecretString;

use super::{Credential, CredentialError, CredentialManager};
use crate::domain::CredentialKind;

/// When the call may run a second time, after its token was rejected and refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Again {
    /// Always once more, with whatever token the refresh answered.
    Always,
    /// Once more only when the refresh answered another token than the rejected one.
    IfTokenChanged,
    /// Never (the call cannot be repeated); the token is refreshed all the same.
    Never,
}

/// Why a rejected call was not run again.
#[derive(Debug)]
pub enum NotRetried {
    /// The guarded refresh failed.
    RefreshFailed(CredentialError),
    /// [`Again::IfTokenChanged`] and the refresh answered the rejected token (the 30 s guard
    /// held and nothing newer exists yet).
    SameToken,
    /// [`Again::Never`]: the token was refreshed, the call not repeated.
    NotRepeatable,
}

/// How [`CredentialManager::with_fresh_token`] ended; `R` is what the call answers.
#[derive(Debug)]
pub enum Fresh<R> {
    /// The call's answer, which did not reject the token.
    First(R),
    /// The token was rejected, refreshed, and the call ran once more: both answers.
    Retried { first: R, second: R },
    /// The token was rejected and the call did not run again: its answer and why.
    NotRetried { first: R, why: NotRetried },
}

impl CredentialManager {
    /// Runs `call` with `account`'s current access token; when `rejected` says its answer is
    /// WeChat refusing that token, runs the guarded refresh (reporting that token) and, as
    /// `again` allows, `call` once more with the refreshed token. Fails only when no token can
    /// be had for the first attempt.
    ///
    /// `call` takes the token by value (not an async closure borrowing it): the futures of
    /// async closures over a borrowed argument cannot be proven `Send` for spawned tasks yet.
    pub async fn with_fresh_token<R, F>(
        &self,
        account: &str,
        again: Again,
        mut call: impl FnMut(SecretString) -> F,
        rejected: impl Fn(&R) -> bool,
    ) -> Result<Fresh<R>, CredentialError>
    where
        F: Future<Output = R>,
    {
        let used: Arc<Credential> = self.get(account, CredentialKind::AccessToken).await?;
        let first = call(SecretString::from(used.value.clone())).await;
        if !rejected(&first) {
            return Ok(Fresh::First(first));
        }
        let fresh = match Box::pin(self.refresh_access_token(account, Some(&used.value))).await {
            Ok(fresh) => fresh,
            Err(e) => {
                return Ok(Fresh::NotRetried {
                    first,
                    why: NotRetried::RefreshFailed(e),
                })
            }
        };
        let why = match again {
            Again::Never => Some(NotRetried::NotRepeatable),
            Again::IfTokenChanged if fresh.value == used.value => Some(NotRetried::SameToken),
            Again::IfTokenChanged | Again::Always => None,
        };
        if let Some(why) = why {
            return Ok(Fresh::NotRetried { first, why });
        }
        let second = call(SecretString::from(fresh.value.clone())).await;
        Ok(Fresh::Retried { first, second })
    }
}
