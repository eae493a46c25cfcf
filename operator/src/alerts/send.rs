//! Sending incidents to webhooks: which receivers an incident goes to (the job's
//! `spec.notifications`, else the defaults), the JSON and Slack bodies, and the sender that
//! delivers them with retries and backoff, apart from scheduling (a slow or dead receiver only
//! holds its own send). Receivers are defined by whoever runs the scheduler (`--alert-receiver
//! NAME=json|slack`); their URLs are secrets read at each send, never stored or logged.

use crate::backoff::Backoff;
use chrono::{DateTime, Utc};
use jtp_crds::{AlertOn, RunStatus};
use jtp_store::{
    AlertEvent, AlertKind, Attempt, AttemptOutcome, DeliveryPlan, DueDelivery, Job, RunSummary, Store,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Time between two passes of the sender.
pub const DELIVER_EVERY: Duration = Duration::from_millis(500);
/// How long one send may take before it counts as failed.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts of one delivery before it is given up.
pub const MAX_ATTEMPTS: i64 = 8;
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// The environment variable holding receiver NAME's URL: `JTP_ALERT_URL_` and the name in capitals, `-` as `_`.
pub const URL_ENV_PREFIX: &str = "JTP_ALERT_URL_";

/// The body a receiver takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The documented JSON body (README, "Alerts").
    Json,
    /// `{"text": …}`, as Slack's (and Mattermost's) incoming webhooks take it.
    Slack,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Slack => "slack",
        }
    }
}

/// `--alert-*` flags, the same for `jtp operator` and `jtp standalone`.
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertArgs {
    /// A receiver of alerts, `NAME=json` or `NAME=slack` (repeat the flag; comma-separated in the
    /// variable). Its URL is a secret, read at each send from the file NAME in --alert-url-dir,
    /// else from the variable JTP_ALERT_URL_<NAME> (capitals, `-` as `_`).
    #[arg(long = "alert-receiver", env = "JTP_ALERT_RECEIVERS", value_delimiter = ',')]
    pub receivers: Vec<String>,
    /// Receivers of the jobs whose spec.notifications names none (comma-separated).
    #[arg(
        long = "alert-default-receivers",
        env = "JTP_ALERT_DEFAULT_RECEIVERS",
        value_delimiter = ','
    )]
    pub default_receivers: Vec<String>,
    /// A folder holding one file per receiver, named as the receiver, containing its webhook URL
    /// (a mounted Secret, or a folder only the scheduler's user can read).
    #[arg(long = "alert-url-dir", env = "JTP_ALERT_URL_DIR")]
    pub url_dir: Option<PathBuf>,
}

/// The receivers, checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertConfig {
    pub receivers: BTreeMap<String, Format>,
    pub defaults: Vec<String>,
    pub url_dir: Option<PathBuf>,
}

impl AlertArgs {
    /// The receivers, or a message naming the flag that is wrong. Empty values (unset Helm
    /// values) are left out.
    pub fn config(&self) -> Result<AlertConfig, String> {
        let mut receivers = BTreeMap::new();
        for entry in self.receivers.iter().map(|r| r.trim()).filter(|r| !r.is_empty()) {
            let (name, format) = entry.split_once('=').unwrap_or((entry, ""));
            let format = match format.trim() {
                "json" => Format::Json,
                "slack" => Format::Slack,
                other => {
                    return Err(format!(
                        "--alert-receiver (JTP_ALERT_RECEIVERS): \"{entry}\": write NAME=json or NAME=slack, not \"{other}\""
                    ));
                }
            };
            let name = name.trim();
            if !jtp_crds::alerting::is_receiver_name(name) {
                return Err(format!(
                    "--alert-receiver (JTP_ALERT_RECEIVERS): \"{name}\" is not a receiver name: use lowercase letters, digits and '-'"
                ));
            }
            receivers.insert(name.to_owned(), format);
        }
        let defaults: Vec<String> = self
            .default_receivers
            .iter()
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .collect();
        if let Some(unknown) = defaults.iter().find(|d| !receivers.contains_key(*d)) {
            return Err(format!(
                "--alert-default-receivers (JTP_ALERT_DEFAULT_RECEIVERS): \"{unknown}\" is not defined by --alert-receiver"
            ));
        }
        Ok(AlertConfig {
            receivers,
            defaults,
            url_dir: self.url_dir.clone(),
        })
    }
}

/// Which incident an event is, as `spec.notifications.events` names them.
pub fn alert_on(event: &AlertEvent) -> AlertOn {
    match event.kind {
        AlertKind::Failure if event.run_status == Some(RunStatus::Error) => AlertOn::Error,
        AlertKind::Failure => AlertOn::Failure,
        AlertKind::Recovery => AlertOn::Recovery,
        AlertKind::Skipped => AlertOn::Skipped,
        AlertKind::Overdue => AlertOn::Overdue,
    }
}

impl AlertConfig {
    /// Where `event` of `job` goes: the job's receivers (else the defaults) when the job wants
    /// this kind of incident; a receiver nobody defined is refused, with why.
    pub fn plans(&self, job: &Job, event: &AlertEvent) -> Vec<DeliveryPlan> {
        let notifications = job.spec.notifications.clone().unwrap_or_default();
        if !notifications.wants(alert_on(event)) {
            return Vec::new();
        }
        let names: Vec<String> = match &notifications.receivers {
            Some(own) => own.iter().map(|r| r.0.clone()).collect(),
            None => self.defaults.clone(),
        };
        names
            .into_iter()
            .map(|receiver| match self.receivers.get(&receiver) {
                Some(format) => DeliveryPlan {
                    receiver,
                    format: format.as_str().to_owned(),
                    refused: None,
                },
                None => DeliveryPlan {
                    refused: Some(format!(
                        "no receiver named \"{receiver}\" is defined (--alert-receiver {receiver}=json|slack)"
                    )),
                    receiver,
                    format: Format::Json.as_str().to_owned(),
                },
            })
            .collect()
    }
}

/// Where receivers' URLs come from: in a cluster, the key named as the receiver in the Secret of
/// `--alert-url-secret` (read through the API, which the chart allows for that one Secret only);
/// else the file named as the receiver in `--alert-url-dir` (a mounted Secret, or a folder only
/// the runner's user reads); else the variable [`url_variable`]. Read at each send, so a rotated
/// URL is used at once; never logged or stored.
pub struct UrlSource {
    pub secret: Option<SecretUrls>,
    pub dir: Option<PathBuf>,
}

/// The Secret holding receivers' URLs, one key per receiver.
pub struct SecretUrls {
    pub api: kube::Api<k8s_openapi::api::core::v1::Secret>,
    pub namespace: String,
    pub name: String,
}

impl UrlSource {
    /// The URL of `receiver`, or why there is none (never the URL itself).
    pub async fn url(&self, receiver: &str) -> Result<String, String> {
        if let Some(secret) = &self.secret {
            let found = secret.api.get_opt(&secret.name).await.map_err(|e| {
                format!(
                    "cannot read the Secret {}/{} of the alert URLs: {}",
                    secret.namespace,
                    secret.name,
                    kube_reason(&e)
                )
            })?;
            let value = found
                .and_then(|s| s.data)
                .and_then(|mut data| data.remove(receiver));
            if let Some(bytes) = value {
                return clean(String::from_utf8_lossy(&bytes.0).into_owned(), receiver);
            }
        }
        if let Some(dir) = &self.dir {
            let path = dir.join(receiver);
            if let Ok(text) = tokio::fs::read_to_string(&path).await {
                return clean(text, receiver);
            }
        }
        let variable = url_variable(receiver);
        std::env::var(&variable)
            .map_err(|_| {
                let secret = self
                    .secret
                    .as_ref()
                    .map(|s| format!("the key {receiver} of the Secret {}/{}, ", s.namespace, s.name))
                    .unwrap_or_default();
                format!(
                    "no URL for receiver \"{receiver}\": put it in {secret}the file {receiver} of --alert-url-dir, or in {variable}"
                )
            })
            .and_then(|text| clean(text, receiver))
    }
}

/// Why a Kubernetes call failed, in the API server's words (which never hold a Secret's data).
fn kube_reason(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}

/// The variable holding receiver `name`'s URL in standalone mode.
pub fn url_variable(name: &str) -> String {
    format!("{URL_ENV_PREFIX}{}", name.to_ascii_uppercase().replace('-', "_"))
}

fn clean(text: String, receiver: &str) -> Result<String, String> {
    let url = text.trim().to_owned();
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url)
    } else {
        Err(format!(
            "the URL of receiver \"{receiver}\" does not start with http:// or https://"
        ))
    }
}

/// The waits between attempts: 1 s, 2 s, 4 s… up to [`MAX_BACKOFF`].
const RETRY: Backoff = Backoff::new(Duration::from_secs(1), MAX_BACKOFF);

/// Wait before attempt `attempt + 1`: 1 s, 2 s, 4 s… up to [`MAX_BACKOFF`].
pub fn backoff(attempt: i64) -> Duration {
    RETRY.delay(u32::try_from(attempt.max(0)).unwrap_or(u32::MAX))
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The incident in one line.
pub fn summary(event: &AlertEvent, job: &Job, run: Option<&RunSummary>) -> String {
    let who = format!("{}/{}", job.namespace, job.name);
    let ended = |r: &RunSummary| match r.exit_code {
        Some(code) => format!("run {} ended {} (exit code {code})", r.id, r.status),
        None => format!("run {} ended {}", r.id, r.status),
    };
    match event.kind {
        AlertKind::Failure => match run {
            Some(r) => format!("[jtp] {who} is failing: {}", ended(r)),
            None => format!("[jtp] {who} is failing"),
        },
        AlertKind::Recovery if event.failures > 0 => format!(
            "[jtp] {who} recovered: it succeeded after {} failed run{} in a row",
            event.failures,
            if event.failures == 1 { "" } else { "s" }
        ),
        AlertKind::Recovery => format!("[jtp] {who} recovered: {}", event.detail),
        AlertKind::Skipped => format!("[jtp] {who} skipped a slot: {}", event.detail),
        AlertKind::Overdue => format!("[jtp] {who} is overdue: {}", event.detail),
    }
}

/// The body of one delivery (see the README's "Alerts" for the JSON fields).
pub fn body(format: Format, event: &AlertEvent, job: &Job, run: Option<&RunSummary>) -> Value {
    let text = summary(event, job, run);
    match format {
        Format::Slack => json!({ "text": text }),
        Format::Json => json!({
            "version": 1,
            "kind": event.kind.as_str(),
            "summary": text,
            "job": { "namespace": job.namespace, "name": job.name },
            "occurredAt": rfc3339(event.occurred_at),
            "failures": event.failures,
            "detail": event.detail,
            "run": run.map(|r| json!({
                "id": r.id,
                "status": r.status.as_str(),
                "exitCode": r.exit_code,
                "trigger": r.trigger.as_str(),
                "scheduledFor": rfc3339(r.scheduled_for),
                "startedAt": rfc3339(r.run_time),
                "finishedAt": r.finished_at.map(rfc3339),
            })),
        }),
    }
}

/// The sender: every [`DELIVER_EVERY`] creates the deliveries of new incidents and starts the
/// due ones, each in its own task (bounded by [`SEND_TIMEOUT`]), until dropped. `store` gives the
/// store for each turn (`None` skips it).
pub async fn deliver_forever<S, F>(store: S, config: Arc<AlertConfig>, urls: Arc<UrlSource>)
where
    S: Fn() -> F + Send,
    F: std::future::Future<Output = Option<Store>> + Send,
{
    let client = match reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e.without_url(), "cannot build the HTTP client: no alert is sent");
            return;
        }
    };
    loop {
        if let Some(store) = store().await
            && let Err(e) = deliver_once(&store, &config, &urls, &client).await
        {
            tracing::warn!(error = %e, "alert delivery pass failed; will try again");
        }
        tokio::time::sleep(DELIVER_EVERY).await;
    }
}

/// Lease of a claimed delivery: longer than a send may take.
fn lease() -> chrono::Duration {
    chrono::Duration::from_std(SEND_TIMEOUT * 3).unwrap_or(chrono::Duration::seconds(30))
}

async fn deliver_once(
    store: &Store,
    config: &Arc<AlertConfig>,
    urls: &Arc<UrlSource>,
    client: &reqwest::Client,
) -> jtp_store::Result<()> {
    let now = Utc::now();
    for event in store.undispatched_alerts(100).await? {
        let job = store.get_job(event.job_id).await?;
        let plans = config.plans(&job, &event);
        store.dispatch_alert(event.id, &plans, now).await?;
    }
    for due in store.claim_due_deliveries(now, lease(), 32).await? {
        tokio::spawn(send(store.clone(), client.clone(), Arc::clone(urls), due));
    }
    Ok(())
}

/// One attempt of one delivery, recorded whatever happens.
async fn send(store: Store, client: reqwest::Client, urls: Arc<UrlSource>, due: DueDelivery) {
    let started_at = Utc::now();
    let clock = Instant::now();
    let attempt = due.delivery.attempts + 1;
    let run = match due.event.run_id {
        Some(id) => store.get_run(id).await.ok().map(|r| r.summary),
        None => None,
    };
    let format = if due.delivery.format == "slack" {
        Format::Slack
    } else {
        Format::Json
    };
    let payload = body(format, &due.event, &due.job, run.as_ref());
    let result: Result<i64, (Option<i64>, String)> = match urls.url(&due.delivery.receiver).await {
        Err(why) => Err((None, why)),
        Ok(url) => match client.post(url).json(&payload).send().await {
            Ok(response) if response.status().is_success() => Ok(i64::from(response.status().as_u16())),
            Ok(response) => {
                let status = response.status();
                Err((
                    Some(i64::from(status.as_u16())),
                    format!("the receiver answered {status}"),
                ))
            }
            Err(e) if e.is_timeout() => Err((None, format!("no answer within {} s", SEND_TIMEOUT.as_secs()))),
            Err(e) => Err((None, e.without_url().to_string())),
        },
    };
    let duration_ms = i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX);
    let (http_status, error, outcome) = match result {
        Ok(status) => (Some(status), None, AttemptOutcome::Delivered),
        Err((status, why)) => {
            let outcome = if attempt >= MAX_ATTEMPTS {
                AttemptOutcome::GaveUp
            } else {
                let wait =
                    chrono::Duration::from_std(backoff(attempt)).unwrap_or(chrono::Duration::seconds(1));
                AttemptOutcome::RetryAt(Utc::now() + wait)
            };
            tracing::warn!(
                job = %format!("{}/{}", due.job.namespace, due.job.name),
                receiver = %due.delivery.receiver,
                attempt,
                error = %why,
                "alert not delivered"
            );
            (status, Some(why), outcome)
        }
    };
    let record = Attempt {
        delivery_id: due.delivery.id,
        attempt,
        started_at,
        duration_ms,
        http_status,
        error,
    };
    if let Err(e) = store.record_attempt(&record, outcome).await {
        tracing::warn!(error = %e, "cannot record an alert attempt; the delivery is tried again when its lease ends");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receivers_are_read_and_bad_flags_named() {
        let args = AlertArgs {
            receivers: vec!["ops=slack".into(), " on-call=json".into(), String::new()],
            default_receivers: vec!["ops".into()],
            url_dir: None,
        };
        let config = args.config().expect("valid");
        assert_eq!(config.receivers.get("ops"), Some(&Format::Slack));
        assert_eq!(config.receivers.get("on-call"), Some(&Format::Json));
        let bad = AlertArgs {
            receivers: vec!["ops=xml".into()],
            ..AlertArgs::default()
        };
        assert!(
            bad.config()
                .expect_err("refused")
                .contains("write NAME=json or NAME=slack")
        );
        let unknown = AlertArgs {
            receivers: vec!["ops=json".into()],
            default_receivers: vec!["pager".into()],
            url_dir: None,
        };
        assert!(
            unknown
                .config()
                .expect_err("refused")
                .contains("\"pager\" is not defined")
        );
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let waits: Vec<u64> = (1..=10).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
    }

    #[test]
    fn the_variable_of_a_receiver() {
        assert_eq!(url_variable("on-call"), "JTP_ALERT_URL_ON_CALL");
    }
}
