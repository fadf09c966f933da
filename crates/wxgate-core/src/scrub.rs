//! Keeping secrets out of messages and logs: the one place that turns a URL that may hold a
//! password or a key, or an HTTP client error that may quote such a URL, into text fit for a log.
//!
//! Why one place: the storage and database URLs carry passwords (`redis://:pw@host`,
//! `postgres://user:pw@host`, `?password=`), webhook URLs often carry a key in their query
//! (`?key=…`), and WeChat API URLs carry the access_token or the AppSecret in theirs; reqwest
//! renders the request URL into its errors. Every such URL and every reqwest error is shown only
//! through [`redact_url`], [`scrub`] and [`reqwest_error`].
//!
//! Guarantees: [`redact_url`] never returns the password of the user-info part nor any query
//! value; [`scrub`] removes from a text every form (raw, percent-decoded) of those values; and
//! [`reqwest_error`] drops the URL and scrubs the causes with it.

/// What replaces a hidden value.
const HIDDEN: &str = "***";

/// `url` with its password and every query value replaced by `***`, for messages and logs
/// (`redis://:***@host:6379/0`, `https://hook.example/in?key=***`). The scheme, host, port, user
/// name, path and query keys stay, so an operator can still tell which URL it is. A URL with a
/// list of hosts (`redis+sentinel://:pw@h1:26379,h2:26379/m`), which the URL parser refuses, is
/// shown the same way by hand; other unparseable URLs are reduced to their scheme, since they
/// might still contain a secret.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        if let Some(shown) = redact_host_list(url) {
            return shown;
        }
        return match url.split_once(':') {
            Some((scheme, _)) => format!("{scheme}:<unparseable>"),
            None => "<unparseable>".to_owned(),
        };
    };
    if parsed.password().is_some() {
        // Only fails for URLs that cannot have credentials, which have no password.
        let _ = parsed.set_password(Some(HIDDEN));
    }
    if parsed.query().is_some() {
        let keys: Vec<String> = parsed.query_pairs().map(|(k, _)| k.into_owned()).collect();
        if keys.is_empty() {
            parsed.set_query(None);
        } else {
            parsed
                .query_pairs_mut()
                .clear()
                .extend_pairs(keys.iter().map(|k| (k.as_str(), HIDDEN)));
        }
    }
    if parsed.fragment().is_some() {
        parsed.set_fragment(None);
    }
    parsed.to_string()
}

/// `scheme://`, the user info and the rest of a URL the URL parser refuses; the user info ends
/// at the last `@`.
fn loose_parts(url: &str) -> Option<(&str, Option<&str>, &str)> {
    let start = url.find("://")? + 3;
    let rest = &url[start..];
    Some(match rest.rsplit_once('@') {
        Some((userinfo, rest)) => (&url[..start], Some(userinfo), rest),
        None => (&url[..start], None, rest),
    })
}

/// [`redact_url`] for `scheme://[USER[:PASSWORD]@]H1[:P1],H2[:P2]…/PATH`: the password and
/// whatever follows a `?` or `#` hidden. `None` when `url` is not of that form.
fn redact_host_list(url: &str) -> Option<String> {
    let (scheme, userinfo, rest) = loose_parts(url)?;
    let hosts = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if !hosts.contains(',') {
        return None;
    }
    let user = match userinfo.map(|u| u.split_once(':')) {
        Some(Some((user, _))) => format!("{user}:{HIDDEN}@"),
        Some(None) => format!("{}@", userinfo.unwrap_or_default()),
        None => String::new(),
    };
    let rest = match rest.split_once(['?', '#']) {
        Some((before, _)) => format!("{before}?{HIDDEN}"),
        None => rest.to_owned(),
    };
    Some(format!("{scheme}{user}{rest}"))
}

/// The secrets of `url`: its password and its query values, each raw and percent-decoded,
/// longest first (so a secret that contains another is removed whole). Values shorter than 3
/// characters (`db=0`, `a=1`) are not treated as secrets: replacing them would garble messages.
fn secrets_of(url: &str) -> Vec<String> {
    let Ok(parsed) = url::Url::parse(url) else {
        // A list of hosts, or otherwise unparseable: the password is still known.
        let password = loose_parts(url)
            .and_then(|(_, userinfo, _)| userinfo?.split_once(':'))
            .map(|(_, password)| password);
        let mut secrets: Vec<String> = password.into_iter().map(str::to_owned).collect();
        if let Some(Ok(decoded)) =
            password.map(|p| percent_encoding::percent_decode_str(p).decode_utf8())
        {
            secrets.push(decoded.into_owned());
        }
        secrets.retain(|s| s.chars().count() >= 3);
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        return secrets;
    };
    let mut secrets: Vec<String> = Vec::new();
    if let Some(password) = parsed.password() {
        secrets.push(password.to_owned());
        if let Ok(decoded) = percent_encoding::percent_decode_str(password).decode_utf8() {
            secrets.push(decoded.into_owned());
        }
    }
    if let Some(query) = parsed.query() {
        for pair in query.split('&') {
            let raw = pair.split_once('=').map_or("", |(_, v)| v);
            secrets.push(raw.to_owned());
        }
    }
    for (_, value) in parsed.query_pairs() {
        secrets.push(value.into_owned());
    }
    secrets.retain(|s| s.chars().count() >= 3);
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    secrets
}

/// Removes every form of `url`'s password and query values (see [`redact_url`]) from
/// `message`, and the URL itself if it is quoted whole: for error texts of drivers and clients
/// that may quote their connection string or request URL.
pub fn scrub(message: String, url: &str) -> String {
    let message = if url.is_empty() {
        message
    } else {
        message.replace(url, &redact_url(url))
    };
    secrets_of(url).iter().fold(message, |message, secret| {
        message.replace(secret.as_str(), HIDDEN)
    })
}

/// A reqwest error as a sentence — its message, then each distinct cause — without the request
/// URL, and with anything of that URL's password or query that a cause repeats removed.
pub fn reqwest_error(e: reqwest::Error) -> String {
    use std::error::Error as _;
    let url = e.url().map(|u| u.as_str().to_owned());
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = cause.source();
    }
    match url {
        Some(url) => scrub(msg, &url),
        None => msg,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls_lose_their_password_and_query_values() {
        let shown = redact_url("postgres://alice:s%3Dcr3t@db.example.com:5432/wx?sslmode=require");
        assert_eq!(
            shown,
            "postgres://alice:***@db.example.com:5432/wx?sslmode=***"
        );
        assert_eq!(
            redact_url("redis://:hunter2secret@127.0.0.1:1/0"),
            "redis://:***@127.0.0.1:1/0"
        );
        assert_eq!(
            redact_url("https://hook.example/in?key=webhooksecret&x=1#frag"),
            "https://hook.example/in?key=***&x=***"
        );
        assert_eq!(redact_url("sqlite://wxgate.db"), "sqlite://wxgate.db");
        assert_eq!(redact_url("postgres://a:b@[bad"), "postgres:<unparseable>");
        assert_eq!(
            redact_url("redis+sentinel://:s%40cr3t@h1:26379,h2:26379/mymaster/1"),
            "redis+sentinel://:***@h1:26379,h2:26379/mymaster/1"
        );
        assert_eq!(
            redact_url("redis+sentinel://app:p/w@d@h1:1,h2:2/m?x=secretvalue"),
            "redis+sentinel://app:***@h1:1,h2:2/m?***"
        );
        assert_eq!(redact_url("no scheme"), "<unparseable>");
    }

    #[test]
    fn messages_lose_every_form_of_the_secrets() {
        let url = "postgres://alice:s%3Dcr3t@db.example.com:5432/wx";
        assert_eq!(
            scrub("bad s=cr3t and s%3Dcr3t".to_owned(), url),
            "bad *** and ***"
        );
        let q = "postgres://db/wx?user=a&password=hunter2";
        assert_eq!(scrub("x hunter2 y".to_owned(), q), "x *** y");
        let hook = "http://127.0.0.1:9/hook?key=web%20hook";
        let said = scrub(format!("error sending request for url ({hook})"), hook);
        assert!(!said.contains("web"), "{said}");
        assert_eq!(scrub("unrelated".to_owned(), "not a url"), "unrelated");
        let hosts = "redis+sentinel://:s%40cr3t@h1:26379,h2:26379/m";
        assert_eq!(
            scrub(format!("bad s@cr3t, s%40cr3t in {hosts}"), hosts),
            "bad ***, *** in redis+sentinel://:***@h1:26379,h2:26379/m"
        );
    }

    #[tokio::test]
    async fn reqwest_errors_name_neither_the_url_nor_its_secrets() {
        let client = reqwest::Client::new();
        let url = "http://user:topsecretpw@127.0.0.1:1/hook?key=webhooksecret";
        let e = client.get(url).send().await.unwrap_err();
        let said = reqwest_error(e);
        for secret in ["topsecretpw", "webhooksecret", "/hook"] {
            assert!(!said.contains(secret), "{said}");
        }
        assert!(!said.is_empty());
    }
}
