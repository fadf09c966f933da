//! The onboarding checklist: the five steps that show an account is wired up right, each
//! turning "reached" by itself when wxgate observes it, with WeChat's errcode, message and hint
//! when it fails.
//!
//! One small record per account (`act:steps:{account}`, five entries) is read, merged and
//! written at flush time. "Reached" is sticky: a later failure is shown beside it (the console
//! compares `reached_at` with `failed_at`), and a success after a failure is recorded again so
//! the step turns green once more. Recording is deduplicated in memory ([`StepMemory`]): a
//! reached step is queued once per process (until a failure), and failures are queued at most
//! once per [`FAILURE_EVERY`] per account and step, so anonymous routes hammering an account
//! cost no store writes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The onboarding steps, in the checklist's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// An access_token was fetched: the AppSecret and the IP whitelist are right.
    TokenFetched,
    /// A verification GET was received and answered: the server URL and Token are right.
    VerifyAnswered,
    /// An encrypted push was decrypted: the EncodingAESKey is right.
    EncryptedPushDecrypted,
    /// A JS-SDK signature was requested from an allowed domain: the JS domain is right.
    JssdkSigned,
    /// A web login completed: the OAuth domain is right.
    LoginCompleted,
}

impl Step {
    pub const ALL: [Step; 5] = [
        Step::TokenFetched,
        Step::VerifyAnswered,
        Step::EncryptedPushDecrypted,
        Step::JssdkSigned,
        Step::LoginCompleted,
    ];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// What was observed of a step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum StepOutcome {
    Reached {
        detail: Option<String>,
    },
    Failed {
        errcode: Option<i64>,
        message: String,
        hint: Option<String>,
    },
}

/// The checklist of one account: one entry per [`Step`], in [`Step::ALL`]'s order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Steps {
    pub entries: Vec<StepState>,
}

/// Where one step stands. `reached_at` is sticky; a failure after it is still shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepState {
    pub step: Step,
    pub reached_at: Option<i64>,
    pub detail: Option<String>,
    pub failed_at: Option<i64>,
    pub errcode: Option<i64>,
    pub message: Option<String>,
    pub hint: Option<String>,
}

impl StepState {
    fn empty(step: Step) -> StepState {
        StepState {
            step,
            reached_at: None,
            detail: None,
            failed_at: None,
            errcode: None,
            message: None,
            hint: None,
        }
    }

    /// Applies one observation made at `at` (unix ms).
    pub(super) fn apply(&mut self, at: i64, outcome: &StepOutcome) {
        match outcome {
            StepOutcome::Reached { detail } => {
                if self.reached_at.is_none_or(|r| r <= at) {
                    self.reached_at = Some(at);
                    if detail.is_some() {
                        self.detail.clone_from(detail);
                    }
                }
            }
            StepOutcome::Failed {
                errcode,
                message,
                hint,
            } => {
                if self.failed_at.is_none_or(|f| f <= at) {
                    self.failed_at = Some(at);
                    self.errcode = *errcode;
                    self.message = Some(message.clone());
                    self.hint.clone_from(hint);
                }
            }
        }
    }
}

impl Steps {
    /// Every step, none observed.
    pub fn empty() -> Steps {
        Steps {
            entries: Step::ALL.iter().map(|s| StepState::empty(*s)).collect(),
        }
    }

    /// The stored record, completed to one entry per step in order (an unreadable one counts
    /// as empty).
    pub(super) fn from_stored(bytes: Option<&[u8]>) -> Steps {
        let stored: Vec<StepState> = bytes
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or_default();
        let mut steps = Steps::empty();
        for s in stored {
            if let Some(slot) = steps.entries.iter_mut().find(|e| e.step == s.step) {
                *slot = s;
            }
        }
        steps
    }

    pub(super) fn apply(&mut self, step: Step, at: i64, outcome: &StepOutcome) {
        if let Some(slot) = self.entries.iter_mut().find(|e| e.step == step) {
            slot.apply(at, outcome);
        }
    }
}

/// Failures of one account and step are queued at most this often.
pub const FAILURE_EVERY: Duration = Duration::from_secs(60);

/// Longest message or hint kept (characters).
const TEXT_MAX: usize = 500;

/// What this process has already queued, so repeated observations cost nothing.
#[derive(Default)]
pub(super) struct StepMemory {
    /// Steps queued as reached (bit per [`Step`]) since their last failure.
    reached: HashMap<Box<str>, u8>,
    /// When a failure of (account, step) was last queued.
    failed: HashMap<(Box<str>, Step), Instant>,
}

impl StepMemory {
    /// Whether this observation is worth queueing; remembers it when it is.
    pub(super) fn admit(&mut self, account: &str, step: Step, outcome: &StepOutcome) -> bool {
        match outcome {
            StepOutcome::Reached { .. } => {
                // Looked up by `&str` first: a step already reached (every JS-SDK signature
                // after the first, say) allocates nothing.
                match self.reached.get_mut(account) {
                    Some(bits) if *bits & step.bit() != 0 => false,
                    Some(bits) => {
                        *bits |= step.bit();
                        true
                    }
                    None => {
                        self.reached.insert(account.into(), step.bit());
                        true
                    }
                }
            }
            StepOutcome::Failed { .. } => {
                let now = Instant::now();
                let key = (Box::<str>::from(account), step);
                if self
                    .failed
                    .get(&key)
                    .is_some_and(|last| now.duration_since(*last) < FAILURE_EVERY)
                {
                    return false;
                }
                self.failed.insert(key, now);
                if let Some(bits) = self.reached.get_mut(account) {
                    *bits &= !step.bit();
                }
                true
            }
        }
    }

    /// Whether `step` of `account` is already queued as reached by this process.
    pub(super) fn already_reached(&self, account: &str, step: Step) -> bool {
        self.reached
            .get(account)
            .is_some_and(|bits| bits & step.bit() != 0)
    }

    /// Drops failure marks older than [`FAILURE_EVERY`] (they no longer limit anything).
    pub(super) fn prune(&mut self) {
        let now = Instant::now();
        self.failed
            .retain(|_, last| now.duration_since(*last) < FAILURE_EVERY);
    }

    pub(super) fn forget(&mut self, account: &str) {
        self.reached.remove(account);
        self.failed.retain(|(a, _), _| &**a != account);
    }
}

/// Bounds the texts of an outcome.
pub(super) fn bounded(outcome: StepOutcome) -> StepOutcome {
    match outcome {
        StepOutcome::Reached { detail } => StepOutcome::Reached {
            detail: detail.map(|d| truncate(&d, TEXT_MAX)),
        },
        StepOutcome::Failed {
            errcode,
            message,
            hint,
        } => StepOutcome::Failed {
            errcode,
            message: truncate(&message, TEXT_MAX),
            hint: hint.map(|h| truncate(&h, TEXT_MAX)),
        },
    }
}

/// The first `max` characters of `s`.
pub(super) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((end, _)) => s[..end].to_owned(),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reached_step_is_admitted_once_until_it_fails() {
        let mut memory = StepMemory::default();
        let reached = StepOutcome::Reached { detail: None };
        assert!(!memory.already_reached("a", Step::JssdkSigned));
        assert!(memory.admit("a", Step::JssdkSigned, &reached));
        assert!(memory.already_reached("a", Step::JssdkSigned));
        assert!(!memory.already_reached("a", Step::LoginCompleted));
        assert!(!memory.already_reached("b", Step::JssdkSigned));
        assert!(!memory.admit("a", Step::JssdkSigned, &reached));
        assert!(memory.admit("a", Step::LoginCompleted, &reached));
        let failed = StepOutcome::Failed {
            errcode: None,
            message: "refused".into(),
            hint: None,
        };
        assert!(memory.admit("a", Step::JssdkSigned, &failed));
        assert!(!memory.already_reached("a", Step::JssdkSigned));
        assert!(memory.admit("a", Step::JssdkSigned, &reached));
    }

    #[test]
    fn reached_is_sticky_and_a_later_failure_is_shown_beside_it() {
        let mut steps = Steps::empty();
        steps.apply(
            Step::VerifyAnswered,
            10,
            &StepOutcome::Reached { detail: None },
        );
        steps.apply(
            Step::VerifyAnswered,
            20,
            &StepOutcome::Failed {
                errcode: None,
                message: "bad".into(),
                hint: None,
            },
        );
        let e = &steps.entries[1];
        assert_eq!((e.reached_at, e.failed_at), (Some(10), Some(20)));
        assert_eq!(e.message.as_deref(), Some("bad"));
    }

    #[test]
    fn memory_admits_a_reached_step_once_and_again_after_a_failure() {
        let mut m = StepMemory::default();
        let ok = StepOutcome::Reached { detail: None };
        let bad = StepOutcome::Failed {
            errcode: Some(40125),
            message: "m".into(),
            hint: None,
        };
        assert!(m.admit("a", Step::TokenFetched, &ok));
        assert!(!m.admit("a", Step::TokenFetched, &ok));
        assert!(m.admit("b", Step::TokenFetched, &ok));
        assert!(m.admit("a", Step::TokenFetched, &bad));
        assert!(!m.admit("a", Step::TokenFetched, &bad), "rate-limited");
        assert!(m.admit("a", Step::TokenFetched, &ok));
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("中文字符", 2), "中文");
        assert_eq!(truncate("ab", 5), "ab");
    }
}
