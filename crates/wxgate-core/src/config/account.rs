//! The validated account: what every service uses instead of the raw [`AccountSettings`].
//!
//! An [`Account`] is built in one pass from an [`AccountSettings`] value alone (no file
//! context, so the same constructor serves accounts loaded from elsewhere), and holds every
//! value in its ready-to-use form: the EncodingAESKey [`KeyRing`], compiled [`Rule`]s, parsed
//! [`DomainPattern`]s, the webhook target with its timeout. It is shared as `Arc<Account>`;
//! `Debug` shows only the name and AppID (it holds the AppSecret, Token and AES keys).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use wxgate_proto::KeyRing;

use super::rule::Rule;
use super::{AccountSettings, ConfigError, DomainPattern};
use crate::domain::{AccountKind, AuthorizerStatus, DataFormat, TokenApi};

/// Where an account's webhook lives and how it is signed.
#[derive(Clone)]
pub struct WebhookTarget {
    pub url: String,
    pub secret: SecretString,
    /// How long WeChat's push waits for the answer (`webhook.timeout_ms`).
    pub timeout: Duration,
}

/// How an account's access token is obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// With the AppSecret (`cgi-bin/stable_token` or `cgi-bin/token`, see `token_api`).
    AppSecret,
    /// The component_access_token of the third-party platform `component`
    /// (`cgi-bin/component/api_component_token`, needs a component_verify_ticket). Only the
    /// credential manager sees such an account; it is never served under `/api/v1/accounts`.
    Component { component: String },
    /// An account that authorized the platform `component`: its token comes from
    /// `cgi-bin/component/api_authorizer_token` with its refresh token.
    Authorizer {
        component: String,
        component_appid: String,
        status: AuthorizerStatus,
    },
}

/// One Official Account, validated (see the module documentation).
#[derive(Clone)]
pub struct Account {
    pub name: String,
    pub appid: String,
    pub secret: SecretString,
    /// The server Token of message push; `None` = push disabled for this account.
    pub token: Option<SecretString>,
    /// `None` when the account has no `encoding_aes_key` (plaintext mode only).
    pub keyring: Option<Box<KeyRing>>,
    pub token_api: TokenApi,
    /// Empty = every host may be signed.
    pub js_domains: Vec<DomainPattern>,
    pub oauth_redirects: Vec<String>,
    pub webhook: Option<Box<WebhookTarget>>,
    pub proxy_allow: Vec<String>,
    pub verify_files: BTreeMap<String, String>,
    /// Passive-reply rules in configuration order (shared by a platform's authorizers).
    pub rules: Arc<[Rule]>,
    /// With a key: plaintext pushes are still accepted.
    pub accept_plaintext: bool,
    pub token_source: TokenSource,
    /// An Official Account or a mini program.
    pub kind: AccountKind,
    /// XML or JSON pushes.
    pub data_format: DataFormat,
}

impl Account {
    /// The appid a WXBizMsgCrypt ciphertext for this account names: its own, or for an
    /// authorizer of a third-party platform, the platform's (WeChat encrypts with the
    /// platform's key).
    pub fn receive_id(&self) -> &str {
        match &self.token_source {
            TokenSource::Authorizer {
                component_appid, ..
            } => component_appid,
            _ => &self.appid,
        }
    }

    /// For an authorizer: its platform's name.
    pub fn component(&self) -> Option<&str> {
        match &self.token_source {
            TokenSource::Authorizer { component, .. } => Some(component),
            _ => None,
        }
    }
}

/// An area of wxgate that an account's kind does not have: the JS-SDK, web login and the
/// tickets are for Official Accounts, a mini program has none of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{area} is for Official Accounts; account {account:?} is a mini program \
     (kind = \"miniprogram\"), which has none"
)]
pub struct NotSupported {
    pub account: String,
    pub area: &'static str,
}

impl Account {
    /// `Ok` for an Official Account; for a mini program, why `area` is not offered.
    pub fn require_official(&self, area: &'static str) -> Result<(), NotSupported> {
        match self.kind {
            AccountKind::Official => Ok(()),
            AccountKind::Miniprogram => Err(NotSupported {
                account: self.name.clone(),
                area,
            }),
        }
    }
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .field("appid", &self.appid)
            .finish_non_exhaustive()
    }
}

impl TryFrom<&AccountSettings> for Account {
    type Error = ConfigError;

    /// Validates `a` and builds the account; error keys are relative to the account
    /// (`appid`, `rules[0].regex`, …).
    fn try_from(a: &AccountSettings) -> Result<Account, ConfigError> {
        super::validate::accounts::build(a)
    }
}

/// Every account by name, in configuration order; cheap to look up (no allocation).
#[derive(Debug, Default, Clone)]
pub struct Accounts {
    by_name: HashMap<String, Arc<Account>>,
    in_order: Vec<Arc<Account>>,
}

impl Accounts {
    /// Keeps `accounts` (names already checked to be unique).
    pub fn new(accounts: Vec<Account>) -> Accounts {
        let in_order: Vec<Arc<Account>> = accounts.into_iter().map(Arc::new).collect();
        let by_name = in_order
            .iter()
            .map(|a| (a.name.clone(), Arc::clone(a)))
            .collect();
        Accounts { by_name, in_order }
    }

    /// Keeps accounts already shared (names already checked to be unique).
    pub fn from_shared(in_order: Vec<Arc<Account>>) -> Accounts {
        let by_name = in_order
            .iter()
            .map(|a| (a.name.clone(), Arc::clone(a)))
            .collect();
        Accounts { by_name, in_order }
    }

    /// The account called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Account>> {
        self.by_name.get(name)
    }

    /// Every account, in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Account>> {
        self.in_order.iter()
    }

    pub fn len(&self) -> usize {
        self.in_order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.in_order.is_empty()
    }
}
