//! What the portal is told at start: how users prove who they are in standalone mode, and the rule
//! that keeps an unauthenticated portal on loopback.

use std::net::SocketAddr;

/// How a standalone portal authenticates users. Kubernetes mode ignores this: there every request
/// carries a Kubernetes bearer token, checked with TokenReview.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LocalAuth {
    /// Anyone who can reach the port may do everything (only allowed on loopback).
    #[default]
    Open,
    /// HTTP basic authentication with one user and password (browsers prompt for it).
    Basic { user: String, password: String },
    /// A shared bearer token: `Authorization: Bearer …` for the API, pasted on the login page by browsers.
    Token(String),
}

impl LocalAuth {
    /// True when requests must prove who they are. An empty password or token proves nothing, so
    /// it does not count.
    pub fn requires_credentials(&self) -> bool {
        match self {
            Self::Open => false,
            Self::Basic { user, password } => !user.is_empty() && !password.is_empty(),
            Self::Token(token) => !token.is_empty(),
        }
    }
}

/// Settings of the portal that do not depend on the mode.
#[derive(Clone, Debug)]
pub struct PortalConfig {
    /// Standalone authentication (see [`LocalAuth`]).
    pub local_auth: LocalAuth,
    /// Set by `--allow-non-loopback`: the operator of the portal knows it listens beyond this machine.
    pub allow_non_loopback: bool,
    /// Mark cookies `Secure` (set when the portal is served over HTTPS, e.g. behind an ingress).
    pub secure_cookies: bool,
    /// Jobs per page on the jobs page and the default page size of the API.
    pub page_size: u32,
    /// Runs shown in a job's panel.
    pub runs_in_panel: u32,
    /// The namespace standalone jobs live in (standalone has no namespaces; the store keeps one column).
    pub standalone_namespace: String,
    /// The global retention policy (jobs without `spec.retention`), shown on job pages.
    pub retention: jtp_crds::Retention,
    /// Keys that seal browser sessions ([`crate::session`]); replicas that share them share
    /// sessions. The default is one random key: this process's sessions only.
    pub session_keys: crate::session::SessionKeys,
}

impl Default for PortalConfig {
    fn default() -> Self {
        Self {
            local_auth: LocalAuth::Open,
            allow_non_loopback: false,
            secure_cookies: false,
            page_size: 50,
            runs_in_panel: 50,
            standalone_namespace: DEFAULT_STANDALONE_NAMESPACE.to_owned(),
            retention: jtp_crds::Retention::default(),
            session_keys: crate::session::SessionKeys::random(),
        }
    }
}

/// The namespace column of standalone jobs.
pub const DEFAULT_STANDALONE_NAMESPACE: &str = "default";

/// Refuses addresses a standalone portal must not listen on with this configuration.
///
/// A portal without credentials runs scripts for anyone who can reach it, so it stays on loopback.
/// Listening elsewhere needs both the explicit flag (`allow_non_loopback`) and credentials
/// ([`LocalAuth::Basic`] or [`LocalAuth::Token`]); the error says which is missing.
/// Kubernetes mode authenticates every request with TokenReview and does not call this.
pub fn check_listen_policy(addr: SocketAddr, config: &PortalConfig) -> Result<(), String> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    let mut missing = Vec::new();
    if !config.allow_non_loopback {
        missing.push("the --allow-non-loopback flag");
    }
    if !config.local_auth.requires_credentials() {
        missing.push("credentials (a basic-auth user and password, or a bearer token)");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "refusing to listen on {addr}: a portal reachable beyond this machine needs {}; \
             or listen on 127.0.0.1",
            missing.join(" and ")
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_always_allowed() {
        let config = PortalConfig::default();
        assert!(check_listen_policy("127.0.0.1:8080".parse().unwrap(), &config).is_ok());
        assert!(check_listen_policy("[::1]:8080".parse().unwrap(), &config).is_ok());
    }

    #[test]
    fn elsewhere_needs_flag_and_credentials() {
        let addr: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let mut config = PortalConfig::default();
        let err = check_listen_policy(addr, &config).unwrap_err();
        assert!(
            err.contains("--allow-non-loopback") && err.contains("credentials"),
            "{err}"
        );
        config.allow_non_loopback = true;
        let err = check_listen_policy(addr, &config).unwrap_err();
        assert!(
            !err.contains("--allow-non-loopback") && err.contains("credentials"),
            "{err}"
        );
        config.local_auth = LocalAuth::Token(String::new());
        let err = check_listen_policy(addr, &config).unwrap_err();
        assert!(
            err.contains("credentials"),
            "an empty token counts as none: {err}"
        );
        config.local_auth = LocalAuth::Basic {
            user: "admin".into(),
            password: String::new(),
        };
        let err = check_listen_policy(addr, &config).unwrap_err();
        assert!(
            err.contains("credentials"),
            "an empty password counts as none: {err}"
        );
        config.local_auth = LocalAuth::Token("t0ken".into());
        assert!(check_listen_policy(addr, &config).is_ok());
        config.allow_non_loopback = false;
        let err = check_listen_policy(addr, &config).unwrap_err();
        assert!(
            err.contains("--allow-non-loopback") && !err.contains("credentials"),
            "{err}"
        );
    }
}
