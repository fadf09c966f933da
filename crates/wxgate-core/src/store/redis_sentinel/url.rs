//! The `redis+sentinel://` form of `storage.url`, read into the sentinels' addresses, the master
//! name and what the data nodes are logged into with.
//!
//! ```text
//! redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]…]/MASTER[/DB]
//! ```
//!
//! The general URL parser cannot read a list of hosts (`h1:26379,h2:26379` is not a port), so
//! this is a small parser of its own. The user and password (percent-encoded) are those of the
//! data nodes — the primary and its replicas; the sentinels are asked without authentication.
//! The port defaults to 26379 (Sentinel's), the database to 0. `rediss+sentinel://` (TLS) is
//! refused with a sentence saying so: this build talks to Redis without TLS (as for
//! `rediss://`). Error messages never repeat the user-info part, so no password reaches a log.

use std::fmt;

use percent_encoding::percent_decode_str;

use crate::store::StoreError;

/// The scheme this module reads.
pub(crate) const SCHEME: &str = "redis+sentinel://";
/// The TLS form, recognised only to be refused clearly.
pub(crate) const TLS_SCHEME: &str = "rediss+sentinel://";
/// Sentinel's own port, used when a host has none.
const DEFAULT_PORT: u16 = 26379;
/// What a valid URL looks like, for error messages.
const FORM: &str = "expected redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT…]/MASTER[/DB]";

/// A parsed `redis+sentinel://` URL.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SentinelUrl {
    /// The sentinels, in the order given (asked in that order).
    pub sentinels: Vec<(String, u16)>,
    /// The master name the sentinels monitor (`sentinel monitor NAME …`).
    pub master: String,
    /// The database selected on the data nodes.
    pub db: i64,
    /// ACL user of the data nodes.
    pub username: Option<String>,
    /// Password of the data nodes.
    pub password: Option<String>,
}

impl fmt::Debug for SentinelUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentinelUrl")
            .field("sentinels", &self.sentinels)
            .field("master", &self.master)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl SentinelUrl {
    /// `h1:26379, h2:26379` — for messages.
    pub(crate) fn sentinel_list(&self) -> String {
        let hosts: Vec<String> = self.sentinels.iter().map(|(h, p)| show(h, *p)).collect();
        hosts.join(", ")
    }
}

/// `host:port`, with brackets around an IPv6 address.
pub(crate) fn show(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn invalid(why: impl fmt::Display) -> StoreError {
    StoreError::InvalidUrl(format!("redis+sentinel: {why}; {FORM}"))
}

/// Reads `url`; see the module documentation for the form.
pub(crate) fn parse(url: &str) -> Result<SentinelUrl, StoreError> {
    if url.starts_with(TLS_SCHEME) {
        return Err(StoreError::InvalidUrl(
            "rediss+sentinel:// (TLS) is not supported: this build of wxgate talks to Redis \
             without TLS, as with rediss://; use redis+sentinel:// on a trusted network"
                .to_owned(),
        ));
    }
    let rest = url
        .strip_prefix(SCHEME)
        .ok_or_else(|| invalid("the scheme must be redis+sentinel://"))?;
    // The user-info part ends at the last `@` (host lists, master names and databases have
    // none), so a password with an unencoded `/` or `@` is still cut off whole.
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((userinfo, rest)) => (Some(userinfo), rest),
        None => (None, rest),
    };
    if rest.contains(['?', '#']) {
        return Err(invalid("query parameters and fragments are not supported"));
    }
    let (hosts, path) = rest
        .split_once('/')
        .ok_or_else(|| invalid("the master name is missing"))?;
    let (username, password) = match userinfo {
        Some(userinfo) => credentials(userinfo)?,
        None => (None, None),
    };
    let sentinels = hosts
        .split(',')
        .map(host_port)
        .collect::<Result<Vec<_>, _>>()?;
    let (master, db) = match path.split_once('/') {
        Some((master, db)) => (master, db),
        None => (path, ""),
    };
    if master.is_empty() {
        return Err(invalid("the master name is missing"));
    }
    let master = percent_decode_str(master)
        .decode_utf8()
        .map_err(|_| invalid("the master name is not UTF-8"))?;
    if master.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("the master name contains spaces"));
    }
    let db = if db.is_empty() {
        0
    } else {
        db.parse::<i64>()
            .ok()
            .filter(|d| *d >= 0)
            .ok_or_else(|| invalid(format!("database {db:?} is not a number 0, 1, 2…")))?
    };
    Ok(SentinelUrl {
        sentinels,
        master: master.into_owned(),
        db,
        username,
        password,
    })
}

/// `USER:PASSWORD`, `:PASSWORD` or `USER`, each percent-decoded. Errors never quote it.
#[allow(clippy::type_complexity)]
fn credentials(userinfo: &str) -> Result<(Option<String>, Option<String>), StoreError> {
    let decode = |part: &str, what: &str| {
        percent_decode_str(part)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| invalid(format!("the {what} is not UTF-8 once percent-decoded")))
    };
    let (user, password) = match userinfo.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (userinfo, None),
    };
    let user = (!user.is_empty())
        .then(|| decode(user, "user name"))
        .transpose()?;
    let password = password
        .filter(|p| !p.is_empty())
        .map(|p| decode(p, "password"))
        .transpose()?;
    Ok((user, password))
}

/// One sentinel: `host`, `host:port`, `[v6]` or `[v6]:port`.
fn host_port(item: &str) -> Result<(String, u16), StoreError> {
    if item.is_empty() {
        return Err(invalid(
            "a sentinel host is empty (two commas, or none before the /)",
        ));
    }
    let (host, port) = if let Some(v6) = item.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| invalid(format!("{item:?} misses its closing ]")))?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(invalid(format!("{item:?}: expected :PORT after ]"))),
            },
        }
    } else {
        match item.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (item, None),
        }
    };
    if host.is_empty()
        || host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "/@[]".contains(c))
    {
        return Err(invalid(format!("{item:?} is not a host name")));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| invalid(format!("{item:?}: the port must be 1 to 65535")))?,
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn message(url: &str) -> String {
        match parse(url) {
            Err(StoreError::InvalidUrl(m)) => m,
            other => panic!("{url}: expected InvalidUrl, got {other:?}"),
        }
    }

    #[test]
    fn the_forms_it_reads() {
        let u = parse("redis+sentinel://h1:26380,10.0.0.2,[::1]:26381/mymaster").unwrap();
        assert_eq!(
            u.sentinels,
            vec![
                ("h1".to_owned(), 26380),
                ("10.0.0.2".to_owned(), 26379),
                ("::1".to_owned(), 26381)
            ]
        );
        assert_eq!((u.master.as_str(), u.db), ("mymaster", 0));
        assert_eq!((&u.username, &u.password), (&None, &None));
        assert_eq!(u.sentinel_list(), "h1:26380, 10.0.0.2:26379, [::1]:26381");

        let u = parse("redis+sentinel://:p%40ss:w@h1:1/m/3").unwrap();
        assert_eq!(u.password.as_deref(), Some("p@ss:w"));
        assert_eq!((u.username, u.db), (None, 3));
        let u = parse("redis+sentinel://:a/b@c@h1/m").unwrap();
        assert_eq!(u.password.as_deref(), Some("a/b@c"));
        let u = parse("redis+sentinel://app:pw@h1/m/").unwrap();
        assert_eq!(
            (u.username.as_deref(), u.password.as_deref()),
            (Some("app"), Some("pw"))
        );
        assert_eq!(u.db, 0);
        // The password is not shown by Debug.
        assert!(!format!("{u:?}").contains("pw\""), "{u:?}");
    }

    #[test]
    fn bad_forms_say_what_is_wrong_without_the_password() {
        let cases = [
            (
                "redis+sentinel://:hunter2@h1:26379",
                "master name is missing",
            ),
            (
                "redis+sentinel://:hunter2@h1:26379/",
                "master name is missing",
            ),
            ("redis+sentinel://:hunter2@h1:26379,,h2/m", "host is empty"),
            ("redis+sentinel://:hunter2@/m", "host is empty"),
            (
                "redis+sentinel://:hunter2@h1:99999/m",
                "port must be 1 to 65535",
            ),
            (
                "redis+sentinel://:hunter2@h1:0/m",
                "port must be 1 to 65535",
            ),
            (
                "redis+sentinel://:hunter2@h1:x/m",
                "port must be 1 to 65535",
            ),
            ("redis+sentinel://:hunter2@[::1/m", "closing ]"),
            ("redis+sentinel://:hunter2@h1/m/x", "is not a number"),
            ("redis+sentinel://:hunter2@h1/m/-1", "is not a number"),
            ("redis+sentinel://:hunter2@h1/m/0/1", "is not a number"),
            ("redis+sentinel://:hunter2@h1/m?db=1", "query parameters"),
            (
                "redis+sentinel://:hun/ter2@h1:26379",
                "master name is missing",
            ),
            (
                "redis+sentinel://:hun/ter2@h1:x/m",
                "port must be 1 to 65535",
            ),
            ("redis+sentinel://:hunter2@h 1/m", "is not a host name"),
            ("redis+sentinel://:hunt%ffer2@h1/m", "password is not UTF-8"),
            ("rediss+sentinel://:hunter2@h1/m", "TLS"),
        ];
        for (url, expected) in cases {
            let said = message(url);
            assert!(said.contains(expected), "{url}: {said}");
            assert!(!said.contains("hunter2"), "{url}: {said}");
            assert!(!said.contains("hunt"), "{url}: {said}");
            assert!(!said.contains("ter2"), "{url}: {said}");
        }
    }
}
