//! A third-party platform (开放平台 第三方平台), validated: its own credentials and key, the
//! allowlist of post-authorization pages, and the settings its authorized accounts inherit.
//!
//! An authorizer is an ordinary [`Account`] named by its appid, built here from the platform's
//! inherited settings ([`Component::authorizer`]): so pushes, JS-SDK, web login and the proxy
//! serve it with the code they use for every account. The platform itself appears to the
//! credential manager as one more account ([`Component::credentials`], named
//! `component:<name>`, which no account name can be) whose token is the
//! component_access_token.

use std::sync::Arc;

use secrecy::SecretString;
use wxgate_proto::KeyRing;

use super::{Account, AccountSettings, Accounts, ComponentSettings, TokenSource};
use crate::domain::AuthorizerStatus;

/// What the validation of a whole configuration builds.
#[derive(Debug, Default, Clone)]
pub struct Validated {
    pub accounts: Accounts,
    pub components: Vec<Arc<Component>>,
}

/// One third-party platform (see the module documentation).
pub struct Component {
    pub name: String,
    /// component_appid.
    pub appid: String,
    /// component_appsecret.
    pub secret: SecretString,
    pub token: SecretString,
    pub keyring: KeyRing,
    pub auth_redirects: Vec<String>,
    /// The platform as the credential manager sees it (its token: component_access_token).
    pub credentials: Arc<Account>,
    /// The settings authorizers inherit, built once (named after the platform).
    template: Account,
    /// The settings behind `template`, shared by every authorizer's registry entry.
    template_settings: Arc<AccountSettings>,
}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Component")
            .field("name", &self.name)
            .field("appid", &self.appid)
            .finish_non_exhaustive()
    }
}

impl Component {
    /// Keeps what the validation built (see `validate::components`).
    pub(super) fn new(
        c: &ComponentSettings,
        keyring: KeyRing,
        template: Account,
        template_settings: AccountSettings,
    ) -> Component {
        let credentials = Account {
            name: Self::credential_name(&c.name),
            token_source: TokenSource::Component {
                component: c.name.clone(),
            },
            ..template.clone()
        };
        Component {
            name: c.name.clone(),
            appid: c.appid.clone(),
            secret: c.secret.clone(),
            token: c.token.clone(),
            keyring,
            auth_redirects: c.auth_redirects.clone(),
            credentials: Arc::new(credentials),
            template,
            template_settings: Arc::new(template_settings),
        }
    }

    /// The credential manager's name for the platform `name`: `component:<name>` (a `:` is in
    /// no account name, so it can never be asked for under `/api/v1/accounts`).
    pub fn credential_name(name: &str) -> String {
        format!("component:{name}")
    }

    /// The account of the authorizer `appid` of this platform, in `status`: named by its appid,
    /// with the platform's Token, key and inherited settings.
    pub fn authorizer(&self, appid: &str, status: AuthorizerStatus) -> Account {
        Account {
            name: appid.to_owned(),
            appid: appid.to_owned(),
            secret: SecretString::from(String::new()),
            token_source: TokenSource::Authorizer {
                component: self.name.clone(),
                component_appid: self.appid.clone(),
                status,
            },
            ..self.template.clone()
        }
    }

    /// The settings every authorizer shows in the admin API (the platform's inherited ones, one
    /// copy for all; the view takes name, appid and secret from the authorizer's [`Account`]).
    pub fn authorizer_settings(&self) -> Arc<AccountSettings> {
        Arc::clone(&self.template_settings)
    }
}
