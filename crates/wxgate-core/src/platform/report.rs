//! What the business API and `/metrics` say of a platform: its component_access_token, its
//! authorizers (paged, every status), its status (ticket age, token, authorizers by status),
//! and the per-platform gauges.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::{component, PlatformError};
use crate::credentials::{Credential, CredentialStatus};
use crate::domain::{unix_now, AuthorizerStatus, CredentialKind};
use crate::gateway::Gateway;
use crate::metrics::Gauge;
use crate::registry::StoredAuthorizer;
use crate::users::MAX_LIST_LIMIT;

/// Page size when the caller gives none.
pub const DEFAULT_LIMIT: u32 = 50;

/// The platform's component_access_token (fetched when none is valid).
pub async fn access_token(gateway: &Gateway, name: &str) -> Result<Arc<Credential>, PlatformError> {
    let component = component(gateway, name)?;
    Ok(gateway
        .creds
        .get(&component.credentials.name, CredentialKind::AccessToken)
        .await?)
}

/// One authorizer as the API answers it.
#[derive(Debug, Clone, Serialize)]
pub struct AuthorizerView {
    pub appid: String,
    pub nick_name: String,
    pub principal_name: String,
    pub status: String,
    pub func_info: Value,
    pub authorized_at: i64,
    pub updated_at: i64,
}

impl From<StoredAuthorizer> for AuthorizerView {
    fn from(row: StoredAuthorizer) -> Self {
        AuthorizerView {
            func_info: serde_json::from_str(&row.func_info).unwrap_or(Value::Array(Vec::new())),
            appid: row.appid,
            nick_name: row.nick_name,
            principal_name: row.principal_name,
            status: row.status,
            authorized_at: row.authorized_at,
            updated_at: row.updated_at,
        }
    }
}

/// A page of authorizers and the appid to continue after (`None` on the last page).
#[derive(Debug, Clone, Serialize)]
pub struct AuthorizerPage {
    pub authorizers: Vec<AuthorizerView>,
    pub next: Option<String>,
}

/// Up to `limit` (clamped to `1..=1000`) authorizers after the appid `after`, by appid.
pub async fn authorizers(
    gateway: &Gateway,
    name: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<AuthorizerPage, PlatformError> {
    let component = component(gateway, name)?;
    let limit = limit.clamp(1, MAX_LIST_LIMIT) as usize;
    let mut rows = gateway
        .authorizers
        .list_authorizers(
            &component.name,
            after,
            i64::try_from(limit + 1).unwrap_or(1001),
        )
        .await?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more {
        rows.last().map(|r| r.appid.clone())
    } else {
        None
    };
    Ok(AuthorizerPage {
        authorizers: rows.into_iter().map(AuthorizerView::from).collect(),
        next,
    })
}

/// The ticket as the status answers it (never its value).
#[derive(Debug, Clone, Serialize)]
pub struct TicketStatus {
    pub present: bool,
    /// Seconds since WeChat issued it.
    pub age_s: Option<i64>,
    /// Younger than 12 h: a component token can be fetched with it.
    pub usable: bool,
    pub received_at: Option<i64>,
}

/// `GET /api/v1/components/{c}/status`.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentStatus {
    pub component: String,
    pub appid: String,
    pub ticket: TicketStatus,
    pub component_access_token: Option<CredentialStatus>,
    /// Authorizers by status (every status named, 0 when none).
    pub authorizers: BTreeMap<&'static str, i64>,
}

/// The platform's status: ticket age, token status, authorizers by status.
pub async fn status(gateway: &Gateway, name: &str) -> Result<ComponentStatus, PlatformError> {
    let component = component(gateway, name)?;
    let now = unix_now();
    let ticket = gateway.creds.stored_ticket(&component.name).await?;
    let ticket = TicketStatus {
        present: ticket.is_some(),
        age_s: ticket.as_ref().map(|t| now.saturating_sub(t.create_time)),
        usable: ticket.as_ref().is_some_and(|t| t.is_usable_at(now)),
        received_at: ticket.as_ref().map(|t| t.received_at),
    };
    let token = gateway
        .creds
        .status(&component.credentials.name)
        .await?
        .into_iter()
        .find(|s| s.credential == CredentialKind::AccessToken.as_str());
    Ok(ComponentStatus {
        appid: component.appid.clone(),
        authorizers: counts(gateway, &component.name).await?,
        component: component.name.clone(),
        ticket,
        component_access_token: token,
    })
}

async fn counts(
    gateway: &Gateway,
    component: &str,
) -> Result<BTreeMap<&'static str, i64>, PlatformError> {
    let mut out: BTreeMap<&'static str, i64> = AuthorizerStatus::ALL
        .iter()
        .map(|s| (s.as_str(), 0))
        .collect();
    for (status, n) in gateway.authorizers.count_authorizers(component).await? {
        if let Some(s) = AuthorizerStatus::parse(&status) {
            out.insert(s.as_str(), n);
        }
    }
    Ok(out)
}

/// The per-platform gauges of `/metrics`: ticket age and authorizers by status. A platform
/// whose figures cannot be read is left out (and logged).
pub async fn gauges(gateway: &Gateway) -> Vec<Gauge> {
    let now = unix_now();
    let mut out = Vec::new();
    for component in gateway.registry.snapshot().components.iter() {
        let label = || vec![("component", component.name.clone())];
        if let Ok(Some(ticket)) = gateway.creds.stored_ticket(&component.name).await {
            out.push(Gauge {
                name: "wxgate_component_ticket_age_seconds",
                help: "Seconds since WeChat issued the newest component_verify_ticket (unusable from 43200)",
                labels: label(),
                value: now.saturating_sub(ticket.create_time) as f64,
            });
        }
        match counts(gateway, &component.name).await {
            Ok(counts) => {
                for (status, n) in counts {
                    let mut labels = label();
                    labels.push(("status", status.to_owned()));
                    out.push(Gauge {
                        name: "wxgate_component_authorizers",
                        help: "Authorizers of the platform by status",
                        labels,
                        value: n as f64,
                    });
                }
            }
            Err(e) => {
                tracing::warn!(component = %component.name, error = %e, "cannot count the platform's authorizers")
            }
        }
    }
    out
}
