//! Database URLs: which backend a URL names, and how to show one without its password.

use std::fmt;

/// The two SQL backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    Postgres,
    Sqlite,
}

impl BackendKind {
    /// Picks the backend from the URL scheme: `postgres://`, `postgresql://`, `sqlite://…`, `sqlite:…`.
    pub fn from_url(url: &str) -> Option<Self> {
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase())?;
        match scheme.as_str() {
            "postgres" | "postgresql" => Some(Self::Postgres),
            "sqlite" => Some(Self::Sqlite),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What replaces a password when a URL is shown.
pub const REDACTED: &str = "********";

/// A database URL that displays without its password (`postgres://jtp:********@host/db`).
#[derive(Clone, PartialEq, Eq)]
pub struct RedactedUrl(String);

impl RedactedUrl {
    pub fn new(url: &str) -> Self {
        Self(redact_url(url))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// The URL with its password (in the user-info part, or a `password=` query parameter) replaced.
/// A URL that does not parse is shown as its scheme alone, since where its password is is unknown.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        let scheme = url.split_once(':').map_or("database", |(s, _)| s);
        return format!("{scheme}:{REDACTED}");
    };
    if parsed.password().is_some() && parsed.set_password(Some(REDACTED)).is_err() {
        return format!("{}:{REDACTED}", parsed.scheme());
    }
    let has_secret_param = parsed.query_pairs().any(|(k, _)| is_secret_param(&k));
    if has_secret_param {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_param(&k) {
                    REDACTED.to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

fn is_secret_param(key: &str) -> bool {
    matches!(
        key.to_ascii_lowercase().as_str(),
        "password" | "passwd" | "sslpassword"
    )
}

/// Removes every occurrence of the URL's password from a message (errors may quote the URL).
pub(crate) fn scrub(message: &str, url: &str) -> String {
    let mut out = message.replace(url, &redact_url(url));
    if let Ok(parsed) = url::Url::parse(url) {
        let secrets = parsed.password().map(str::to_owned).into_iter().chain(
            parsed
                .query_pairs()
                .filter(|(k, _)| is_secret_param(k))
                .map(|(_, v)| v.into_owned()),
        );
        for secret in secrets.filter(|s| !s.is_empty()) {
            out = out.replace(&secret, REDACTED);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_from_scheme() {
        assert_eq!(
            BackendKind::from_url("postgres://a@b/c"),
            Some(BackendKind::Postgres)
        );
        assert_eq!(
            BackendKind::from_url("postgresql://a@b/c"),
            Some(BackendKind::Postgres)
        );
        assert_eq!(
            BackendKind::from_url("sqlite://data/jtp.db"),
            Some(BackendKind::Sqlite)
        );
        assert_eq!(BackendKind::from_url("sqlite:jtp.db"), Some(BackendKind::Sqlite));
        assert_eq!(BackendKind::from_url("mysql://x"), None);
        assert_eq!(BackendKind::from_url("jtp.db"), None);
    }

    #[test]
    fn passwords_are_hidden() {
        let url = "postgres://jtp:s3cret@127.0.0.1:55432/jtp";
        let shown = RedactedUrl::new(url).to_string();
        assert_eq!(shown, "postgres://jtp:********@127.0.0.1:55432/jtp");
        assert!(!format!("{:?}", RedactedUrl::new(url)).contains("s3cret"));
        let query = redact_url("postgres://jtp@host/db?password=s3cret&sslmode=disable");
        assert!(
            !query.contains("s3cret") && query.contains("sslmode=disable"),
            "{query}"
        );
        assert_eq!(redact_url("sqlite://data/jtp.db"), "sqlite://data/jtp.db");
        assert!(!redact_url("postgres://jtp:s3cret@[bad").contains("s3cret"));
        assert_eq!(
            scrub(&format!("cannot open {url}: s3cret"), url),
            format!("cannot open {shown}: {REDACTED}")
        );
    }
}
