//! The overview: every account (and platform) with one health line, filtered and paged.
//!
//! Health comes from the credential manager's memory ([`CredentialManager::health`]), so
//! judging 10 000 accounts costs no store call; only the page shown (at most [`PAGE_SIZE`]
//! rows) reads its last pushes, in one `get_many`. The registry's snapshot is already ordered
//! by name, so paging is a filter and a skip.
//!
//! [`CredentialManager::health`]: crate::credentials::CredentialManager::health

use crate::credentials::{Health, HealthLine};
use crate::gateway::Gateway;
use crate::registry::record::{AccountView, Source};
use crate::store::StoreError;

/// Rows per page.
pub const PAGE_SIZE: usize = 50;

/// What the operator asked to see.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// A part of the name or the appid, any case; empty for all.
    pub text: String,
    /// Only accounts in this health.
    pub health: Option<Health>,
    /// 1-based.
    pub page: usize,
}

/// One account's line.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub appid: String,
    pub kind: &'static str,
    pub source: String,
    pub health: HealthLine,
    /// Unix ms of the newest push received.
    pub last_push: Option<i64>,
}

/// One page of the overview.
#[derive(Debug, Clone)]
pub struct Overview {
    pub rows: Vec<Row>,
    /// Accounts matching the filter.
    pub matching: usize,
    /// Every account served.
    pub total: usize,
    /// Accounts per health word (all accounts, before the filter), in [`Health`]'s order.
    pub by_health: [(Health, usize); 4],
    pub page: usize,
    pub pages: usize,
}

/// A source in words.
pub fn source_label(source: &Source) -> String {
    match source {
        Source::Config => "config file".to_owned(),
        Source::Database => "database".to_owned(),
        Source::Component(c) => format!("platform {c}"),
    }
}

fn idle_line() -> HealthLine {
    HealthLine {
        health: Health::Idle,
        last_error: None,
        expires_in: None,
    }
}

/// The page of accounts `filter` asks for.
pub async fn overview(gateway: &Gateway, filter: &Filter) -> Result<Overview, StoreError> {
    let snapshot = gateway.registry.snapshot();
    let needle = filter.text.trim().to_lowercase();
    let mut by_health = [
        (Health::Idle, 0),
        (Health::Valid, 0),
        (Health::Expiring, 0),
        (Health::Failing, 0),
    ];
    let page = filter.page.max(1);
    let skip = (page - 1).saturating_mul(PAGE_SIZE);
    let mut matching = 0;
    let mut rows = Vec::new();
    for (name, entry) in &snapshot.entries {
        let line = gateway.creds.health(name).unwrap_or_else(idle_line);
        if let Some(slot) = by_health.iter_mut().find(|(h, _)| *h == line.health) {
            slot.1 += 1;
        }
        if filter.health.is_some_and(|h| h != line.health) {
            continue;
        }
        if !needle.is_empty()
            && !name.to_lowercase().contains(&needle)
            && !entry.account.appid.to_lowercase().contains(&needle)
        {
            continue;
        }
        matching += 1;
        if matching > skip && rows.len() < PAGE_SIZE {
            rows.push(Row {
                name: name.clone(),
                appid: entry.account.appid.clone(),
                kind: AccountView::new(&entry.account, &entry.settings, entry.source.clone(), None)
                    .kind,
                source: source_label(&entry.source),
                health: line,
                last_push: None,
            });
        }
    }
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    let pushes = gateway.activity.last_pushes(&names).await?;
    for (row, at) in rows.iter_mut().zip(pushes) {
        row.last_push = at;
    }
    Ok(Overview {
        rows,
        matching,
        total: snapshot.entries.len(),
        by_health,
        page,
        pages: matching.div_ceil(PAGE_SIZE).max(1),
    })
}

/// A third-party platform's line.
#[derive(Debug, Clone)]
pub struct PlatformRow {
    pub name: String,
    pub appid: String,
    /// Of its component_access_token.
    pub health: HealthLine,
    /// Authorizers by status (`authorized`, `revoked`, `refresh_token_invalid`).
    pub authorizers: Vec<(String, i64)>,
}

/// Every platform of the config file.
pub async fn platforms(gateway: &Gateway) -> Vec<PlatformRow> {
    let snapshot = gateway.registry.snapshot();
    let mut out = Vec::new();
    for c in &snapshot.components {
        let authorizers = gateway
            .authorizers
            .count_authorizers(&c.name)
            .await
            .unwrap_or_default();
        out.push(PlatformRow {
            name: c.name.clone(),
            appid: c.appid.clone(),
            health: gateway
                .creds
                .health(&c.credentials.name)
                .unwrap_or_else(idle_line),
            authorizers,
        });
    }
    out
}
