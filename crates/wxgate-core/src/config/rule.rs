//! Passive-reply rules from the configuration, compiled once at load (building a rule is its
//! validation: the same regex and reply are never compiled a second time).
//!
//! A rule selects pushes by `event` (optionally narrowed by `event_key`), by `keyword` (the
//! whole text of a text message) or by `regex` (searched in the text of a text message); rules
//! are tried in configuration order and the first that matches answers. Matching is pure and
//! cheap: no allocation, regexes compiled at start.

use regex::Regex;
use wxgate_proto::{Message, Reply};

use super::{invalid, ConfigError, RuleSettings};

enum Matcher {
    /// `event` compared ASCII-case-insensitively (WeChat sends `subscribe` but `CLICK`);
    /// `event_key` exactly, also accepting the scene of a QR-code subscribe without its
    /// `qrscene_` prefix.
    Event {
        event: String,
        event_key: Option<String>,
    },
    /// The text, without surrounding whitespace, equals the keyword exactly.
    Keyword(String),
    /// The regex matches somewhere in the text (anchor it with `^…$` for a whole match).
    Regex(Regex),
}

/// One compiled rule.
pub struct Rule {
    matcher: Matcher,
    pub reply: Reply,
}

impl Rule {
    /// Compiles a configured rule. Error keys are relative to the rule (`""` for the rule
    /// itself, `regex`, `reply`, `event_key`); the caller puts them under `accounts[i].rules[j]`.
    pub fn from_settings(r: &RuleSettings) -> Result<Rule, ConfigError> {
        let selectors = [&r.event, &r.keyword, &r.regex]
            .iter()
            .filter(|s| s.is_some())
            .count();
        if selectors != 1 {
            return Err(invalid(
                "",
                "a rule needs exactly one of `event`, `keyword` or `regex`",
            ));
        }
        if r.event_key.is_some() && r.event.is_none() {
            return Err(invalid("event_key", "only allowed together with `event`"));
        }
        let matcher = match (&r.event, &r.keyword, &r.regex) {
            (_, _, Some(re)) => {
                Matcher::Regex(Regex::new(re).map_err(|e| invalid("regex", e.to_string()))?)
            }
            (_, Some(k), _) => Matcher::Keyword(k.clone()),
            (Some(event), _, _) => Matcher::Event {
                event: event.clone(),
                event_key: r.event_key.clone(),
            },
            (None, None, None) => return Err(invalid("", "a rule needs a selector")),
        };
        let reply: Reply =
            serde_json::from_value(r.reply.clone()).map_err(|e| invalid("reply", e.to_string()))?;
        Ok(Rule { matcher, reply })
    }

    /// Whether this rule answers `message`.
    pub fn matches(&self, message: &Message) -> bool {
        match &self.matcher {
            Matcher::Event { event, event_key } => {
                if !message.msg_type().eq_ignore_ascii_case("event") {
                    return false;
                }
                let Some(sent) = message.event() else {
                    return false;
                };
                if !sent.trim().eq_ignore_ascii_case(event) {
                    return false;
                }
                match event_key {
                    None => true,
                    Some(wanted) => {
                        let key = message.event_key().unwrap_or("").trim();
                        key == wanted || key.strip_prefix("qrscene_") == Some(wanted.as_str())
                    }
                }
            }
            Matcher::Keyword(k) => message.text().is_some_and(|t| t.trim() == k),
            Matcher::Regex(re) => message.text().is_some_and(|t| re.is_match(t)),
        }
    }
}

/// The reply of the first rule that matches, in configuration order.
pub fn first_match<'a>(rules: &'a [Rule], message: &Message) -> Option<&'a Reply> {
    rules.iter().find(|r| r.matches(message)).map(|r| &r.reply)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rule(toml_src: &str) -> Rule {
        let r: RuleSettings = toml::from_str(toml_src).unwrap();
        Rule::from_settings(&r).unwrap()
    }

    fn msg(body: &str) -> Message {
        Message::parse(
            format!(
                "<xml><ToUserName>gh_1</ToUserName><FromUserName>o1</FromUserName>\
                 <CreateTime>1</CreateTime>{body}</xml>"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn event_rules_match_case_insensitively_and_by_key_or_qr_scene() {
        let click = rule(
            "event = \"click\"\nevent_key = \"K1\"\nreply = { type = \"text\", content = \"x\" }",
        );
        assert!(click.matches(&msg(
            "<MsgType>event</MsgType><Event>CLICK</Event><EventKey>K1</EventKey>"
        )));
        assert!(!click.matches(&msg(
            "<MsgType>event</MsgType><Event>CLICK</Event><EventKey>K2</EventKey>"
        )));
        let scene = rule("event = \"subscribe\"\nevent_key = \"42\"\nreply = { type = \"text\", content = \"x\" }");
        assert!(scene.matches(&msg(
            "<MsgType>event</MsgType><Event>subscribe</Event><EventKey>qrscene_42</EventKey>"
        )));
        assert!(!scene.matches(&msg("<MsgType>event</MsgType><Event>subscribe</Event>")));
    }

    #[test]
    fn keyword_is_exact_and_regex_searches_text_only() {
        let kw = rule("keyword = \"help\"\nreply = { type = \"text\", content = \"x\" }");
        assert!(kw.matches(&msg(
            "<MsgType>text</MsgType><Content> help </Content><MsgId>1</MsgId>"
        )));
        assert!(!kw.matches(&msg(
            "<MsgType>text</MsgType><Content>helpme</Content><MsgId>1</MsgId>"
        )));
        let re = rule("regex = \"^order \\\\d+$\"\nreply = { type = \"text\", content = \"x\" }");
        assert!(re.matches(&msg(
            "<MsgType>text</MsgType><Content>order 12</Content><MsgId>1</MsgId>"
        )));
        assert!(!re.matches(&msg("<MsgType>event</MsgType><Event>order 12</Event>")));
    }
}
