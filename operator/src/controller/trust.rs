//! Who may run as whom: the namespaces a ScheduledJob may start pods in and the ServiceAccounts
//! those pods may run as. The right to create or patch a ScheduledJob is the right to run pods in
//! its namespace (as with a CronJob); these rules keep it from being more than that:
//! - never as the operator's or the portal's own ServiceAccount (their tokens can create Jobs, or
//!   write ScheduledJobs, in every watched namespace);
//! - by default never in the operator's own namespace or `kube-system`;
//! - as a ServiceAccount other than `default` only when that account opts in with
//!   [`ALLOW_ANNOTATION`], which takes the right to edit ServiceAccounts (a namespace admin's).
//!
//! [`Trust::check`] is pure; [`Trust::admit`] looks the ServiceAccount up first.

use jtp_crds::FieldError;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::{Api, Client};
use std::collections::BTreeSet;

use super::{Error, OperatorArgs, Result};

/// Annotation by which a ServiceAccount agrees to run ScheduledJobs' pods (value `"true"`).
pub const ALLOW_ANNOTATION: &str = "jobtrigger.io/allow-scheduled-jobs";
/// The ServiceAccount a pod gets when it names none; it needs no opt-in.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// Namespaces refused when `--refused-namespaces` is not given.
pub const DEFAULT_REFUSED_NAMESPACES: &str = "kube-system";

/// The rules, from the operator's flags.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    refused_namespaces: BTreeSet<String>,
    /// `(namespace, name)` of the accounts no run may use, opted in or not.
    protected: BTreeSet<(String, String)>,
}

impl Trust {
    /// The refused namespaces (plus the operator's own unless `--allow-own-namespace`) and the
    /// protected accounts (`namespace/name`); a protected entry without a `/` is an error.
    pub fn from_args(args: &OperatorArgs) -> Result<Self> {
        let mut refused_namespaces: BTreeSet<String> = args
            .refused_namespaces
            .iter()
            .map(|ns| ns.trim().to_owned())
            .filter(|ns| !ns.is_empty())
            .collect();
        if let Some(own) = args
            .own_namespace
            .as_deref()
            .filter(|_| !args.allow_own_namespace)
        {
            refused_namespaces.insert(own.to_owned());
        }
        let mut protected = BTreeSet::new();
        for entry in args.protected_service_accounts.iter().map(|e| e.trim()) {
            if entry.is_empty() {
                continue;
            }
            match entry.split_once('/') {
                Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                    protected.insert((ns.to_owned(), name.to_owned()));
                }
                _ => return Err(Error::Trust(entry.to_owned())),
            }
        }
        tracing::info!(
            refused_namespaces = ?refused_namespaces,
            protected_service_accounts = ?protected,
            "who may run as whom: no run in the refused namespaces, none as the protected accounts, \
             other accounts than default only with {ALLOW_ANNOTATION}=true"
        );
        Ok(Self {
            refused_namespaces,
            protected,
        })
    }

    /// Why a run of a job in `namespace` may not run as `service_account` (the spec's, `None` for
    /// `default`), given the account as read (`None`: it does not exist); `None` when it may.
    pub fn check(
        &self,
        namespace: &str,
        service_account: Option<&str>,
        account: Option<&ServiceAccount>,
    ) -> Option<FieldError> {
        if self.refused_namespaces.contains(namespace) {
            return Some(FieldError::new(
                "metadata.namespace",
                format!(
                    "the operator does not run ScheduledJobs in namespace {namespace} (refused: {}); \
                     create the ScheduledJob in another namespace",
                    self.refused_namespaces
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let name = service_account.unwrap_or(DEFAULT_SERVICE_ACCOUNT);
        let field = "spec.serviceAccountName";
        if self.protected.contains(&(namespace.to_owned(), name.to_owned())) {
            return Some(FieldError::new(
                field,
                format!(
                    "ServiceAccount {namespace}/{name} belongs to Job Trigger Portal itself and never runs \
                     a ScheduledJob; use an account of the job's own"
                ),
            ));
        }
        if name == DEFAULT_SERVICE_ACCOUNT {
            return None;
        }
        let Some(account) = account else {
            return Some(FieldError::new(
                field,
                format!("ServiceAccount {name} does not exist in namespace {namespace}"),
            ));
        };
        let opted_in = account
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ALLOW_ANNOTATION))
            .is_some_and(|v| v == "true");
        (!opted_in).then(|| {
            FieldError::new(
                field,
                format!(
                    "ServiceAccount {name} has not agreed to run ScheduledJobs: a namespace admin allows it \
                     with `kubectl annotate serviceaccount {name} -n {namespace} {ALLOW_ANNOTATION}=true`"
                ),
            )
        })
    }

    /// [`check`](Self::check) after reading the ServiceAccount (only when the answer depends on
    /// it); an API error other than "not found" is an error, retried with backoff.
    pub async fn admit(
        &self,
        client: &Client,
        namespace: &str,
        service_account: Option<&str>,
    ) -> Result<Option<FieldError>> {
        let account = if self.decided_without_account(namespace, service_account) {
            None
        } else {
            let name = service_account.unwrap_or(DEFAULT_SERVICE_ACCOUNT);
            let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
            api.get_opt(name).await.map_err(Error::Kube)?
        };
        Ok(self.check(namespace, service_account, account.as_ref()))
    }

    /// True when the account's own annotations cannot change the answer.
    fn decided_without_account(&self, namespace: &str, service_account: Option<&str>) -> bool {
        let name = service_account.unwrap_or(DEFAULT_SERVICE_ACCOUNT);
        name == DEFAULT_SERVICE_ACCOUNT
            || self.refused_namespaces.contains(namespace)
            || self.protected.contains(&(namespace.to_owned(), name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trust(tweak: impl FnOnce(&mut OperatorArgs)) -> Trust {
        let mut args = OperatorArgs::defaults();
        args.own_namespace = Some("jtp".into());
        args.protected_service_accounts = vec!["jtp/jtp-operator".into(), "jtp/jtp-portal".into()];
        tweak(&mut args);
        Trust::from_args(&args).expect("valid flags")
    }

    fn account(annotations: &[(&str, &str)]) -> ServiceAccount {
        let mut sa = ServiceAccount::default();
        sa.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        sa
    }

    #[test]
    fn the_default_account_runs_outside_the_refused_namespaces() {
        let t = trust(|_| {});
        assert_eq!(t.check("team-a", None, None), None);
        assert_eq!(t.check("team-a", Some("default"), None), None);
        for ns in ["kube-system", "jtp"] {
            let refused = t.check(ns, None, None).expect("refused");
            assert_eq!(refused.field, "metadata.namespace");
            assert!(refused.message.contains(ns), "{refused}");
        }
    }

    #[test]
    fn another_account_runs_only_when_it_opted_in() {
        let t = trust(|_| {});
        let missing = t.check("team-a", Some("runner"), None).expect("refused");
        assert!(missing.message.contains("does not exist"), "{missing}");
        let silent = t
            .check("team-a", Some("runner"), Some(&account(&[])))
            .expect("refused");
        assert_eq!(silent.field, "spec.serviceAccountName");
        assert!(silent.message.contains(ALLOW_ANNOTATION), "{silent}");
        assert!(
            t.check(
                "team-a",
                Some("runner"),
                Some(&account(&[(ALLOW_ANNOTATION, "yes")]))
            )
            .is_some(),
            "only \"true\" opts in"
        );
        assert_eq!(
            t.check(
                "team-a",
                Some("runner"),
                Some(&account(&[(ALLOW_ANNOTATION, "true")]))
            ),
            None
        );
    }

    #[test]
    fn the_operators_and_portals_accounts_are_never_used_even_opted_in() {
        let t = trust(|a| a.allow_own_namespace = true);
        let opted_in = account(&[(ALLOW_ANNOTATION, "true")]);
        assert_eq!(
            t.check("jtp", None, None),
            None,
            "own namespace allowed by the flag"
        );
        for name in ["jtp-operator", "jtp-portal"] {
            let refused = t.check("jtp", Some(name), Some(&opted_in)).expect("refused");
            assert!(refused.message.contains("never runs"), "{refused}");
        }
        let protected_default = trust(|a| a.protected_service_accounts = vec!["team-a/default".into()]);
        assert!(protected_default.check("team-a", None, None).is_some());
    }

    #[test]
    fn a_protected_account_needs_its_namespace() {
        let mut args = OperatorArgs::defaults();
        args.protected_service_accounts = vec!["jtp-operator".into()];
        let err = Trust::from_args(&args).expect_err("no namespace");
        assert!(err.to_string().contains("jtp-operator"), "{err}");
    }
}
