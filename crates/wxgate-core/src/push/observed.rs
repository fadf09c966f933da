//! What the push service tells the activity recorder ([`crate::activity`]) for the admin
//! console: the onboarding steps "verification answered" and "encrypted push decrypted"
//! (reached or failing) and each push accepted, with who answered it. Recording is in memory
//! and deduplicated there, so an anonymous caller cannot make it write anything per request.

use wxgate_proto::Reply;

use super::inbound::{Inbound, Mode, Protection};
use super::PushError;
use crate::activity::{Answered, PushSeen, Step, StepOutcome};
use crate::config::Account;
use crate::domain::unix_now_ms;
use crate::gateway::Gateway;

/// A URL verification answered, or refused for its signature.
pub(super) fn verification<T>(gateway: &Gateway, account: &Account, result: &Result<T, PushError>) {
    let outcome = match result {
        Ok(_) => StepOutcome::Reached { detail: None },
        Err(PushError::InvalidSignature(_)) => StepOutcome::Failed {
            errcode: None,
            message: "the Token in WeChat's console differs from this account's token".into(),
            hint: Some(
                "copy the Token of 设置与开发 → 基本配置 → 服务器配置 into the account's `token` \
                 (or the other way round)"
                    .into(),
            ),
        },
        Err(_) => return,
    };
    gateway
        .activity
        .step(&account.name, Step::VerifyAnswered, outcome);
}

/// An encrypted push opened, or one whose ciphertext could not be decrypted.
pub(super) fn opened(
    gateway: &Gateway,
    account: &Account,
    protection: Protection,
    result: &Result<Inbound, PushError>,
) {
    if !matches!(protection, Protection::Aes) {
        return;
    }
    let outcome = match result {
        Ok(inbound) if matches!(inbound.mode, Mode::Encrypted(_)) => {
            StepOutcome::Reached { detail: None }
        }
        Err(PushError::InvalidMessage(m)) if m.contains("cannot be decrypted") => {
            StepOutcome::Failed {
                errcode: None,
                message: "the EncodingAESKey differs: a push could not be decrypted".into(),
                hint: Some(
                    "copy the EncodingAESKey of 设置与开发 → 基本配置 → 服务器配置 into the \
                     account's `encoding_aes_key`"
                        .into(),
                ),
            }
        }
        _ => return,
    };
    gateway
        .activity
        .step(&account.name, Step::EncryptedPushDecrypted, outcome);
}

/// A push accepted and answered.
pub(super) fn answered(gateway: &Gateway, account: &Account, inbound: &Inbound, by: Answered) {
    let m = &inbound.message;
    let kind = match m.event() {
        Some(event) => format!("event:{}", event.trim().to_ascii_lowercase()),
        None => m.msg_type().to_ascii_lowercase(),
    };
    let content = gateway
        .activity
        .keeps_message_content()
        .then(|| m.text().map(str::to_owned))
        .flatten();
    gateway.activity.push(
        &account.name,
        PushSeen {
            at: unix_now_ms(),
            kind,
            answered_by: by,
            encrypted: matches!(inbound.mode, Mode::Encrypted(_)),
            content,
        },
    );
}

/// Who answered, by the reply a rule or the webhook gave.
pub(super) fn by(reply: Option<&Reply>, rule: bool) -> Answered {
    match (reply, rule) {
        (Some(_), true) => Answered::Rule,
        (Some(_), false) => Answered::Webhook,
        (None, _) => Answered::Nothing,
    }
}
