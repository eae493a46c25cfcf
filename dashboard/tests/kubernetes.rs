//! Kubernetes mode against the real control plane: TokenReview, SubjectAccessReview with the
//! user's own rights, and writes to ScheduledJob resources (create, patch, delete, Run Now).
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::kube_env::{KubeEnv, Mirror, bearer};
use common::*;
use jtp_crds::{RUN_NOW_ANNOTATION, RUN_NOW_REQUESTER_ANNOTATION, RunStatus, ScheduledJobSpec};
use jtp_dashboard::{AppState, PortalConfig};
use serde_json::json;
use std::ops::Not;

#[tokio::test]
async fn rights_follow_the_users_own_rbac() {
    let env = KubeEnv::new("dash-rbac").await;
    let ns = env.ns.name().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir, None).await;
    let state = AppState::kubernetes(store.clone(), env.client.clone(), PortalConfig::default());

    env.create_job("nightly", ScheduledJobSpec::daily("09:00")).await;
    let mut mirror = Mirror::new("done");
    mirror.sync(&env.jobs(), &store).await;
    // A row in a namespace nobody here may list.
    add_job(&store, "jtp-elsewhere", "hidden", &ScheduledJobSpec::manual()).await;

    // No token, a bad token.
    let reply = send(&state, get("/api/v1/jobs")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = send(&state, bearer(get("/api/v1/jobs"), "not-a-token")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let page = send(&state, get("/")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.header("location"), "/login");

    // The reader sees the job of its namespace and nothing else.
    let list = send(&state, bearer(get("/api/v1/jobs"), &env.reader)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let list = list.json();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nightly"]);
    let job = send(
        &state,
        bearer(get(&format!("/api/v1/jobs/{ns}/nightly")), &env.reader),
    )
    .await;
    assert_eq!(job.status, StatusCode::OK);
    assert!(
        job.json()["nextRun"]["local"]
            .as_str()
            .unwrap()
            .ends_with("09:00 HKT")
    );
    let hidden = send(
        &state,
        bearer(get("/api/v1/jobs/jtp-elsewhere/hidden"), &env.reader),
    )
    .await;
    assert_eq!(hidden.status, StatusCode::FORBIDDEN);

    // A run of a job the reader may not read is a 404, like a run that does not exist: its
    // namespace is not named.
    let hidden_row = store.get_job_by_name("jtp-elsewhere", "hidden").await.unwrap();
    let hidden_run = add_run(
        &store,
        hidden_row.id,
        RunStatus::Success,
        Some(0),
        "secret output",
    )
    .await;
    let missing_id = hidden_run + 1_000;
    for (path, missing) in [
        (
            format!("/api/v1/runs/{hidden_run}"),
            format!("/api/v1/runs/{missing_id}"),
        ),
        (format!("/runs/{hidden_run}"), format!("/runs/{missing_id}")),
        (
            format!("/api/v1/runs/{hidden_run}/output"),
            format!("/api/v1/runs/{missing_id}/output"),
        ),
    ] {
        let refused = send(&state, bearer(get(&path), &env.reader)).await;
        let absent = send(&state, bearer(get(&missing), &env.reader)).await;
        assert_eq!(refused.status, StatusCode::NOT_FOUND, "{path}: {}", refused.body);
        assert_eq!(absent.status, StatusCode::NOT_FOUND, "{missing}");
        assert!(
            !refused.body.contains("jtp-elsewhere"),
            "{path}: {}",
            refused.body
        );
        assert!(!refused.body.contains("secret output"), "{path}");
        assert_eq!(
            refused.body.replace(&format!("#{hidden_run}"), "#N"),
            absent.body.replace(&format!("#{missing_id}"), "#N"),
            "the refusal reads like a missing run"
        );
    }

    // Run Now needs the "trigger" verb, not "patch": the reader and the editor (who may patch)
    // are refused with a message that says why, and no annotation appears.
    for (who, token) in [("reader", &env.reader), ("editor", &env.editor)] {
        let reply = send(
            &state,
            bearer(
                json_request("POST", &format!("/api/v1/jobs/{ns}/nightly/run"), None),
                token,
            ),
        )
        .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{who}: {}", reply.body);
        let message = reply.json()["error"].as_str().unwrap().to_owned();
        assert!(
            message.contains(&format!("system:serviceaccount:{ns}:{who}")),
            "{message}"
        );
        assert!(
            message.contains("may not run this job now") && message.contains("\"trigger\""),
            "{message}"
        );
    }
    let live = env.jobs().get("nightly").await.unwrap();
    assert!(
        live.metadata
            .annotations
            .unwrap_or_default()
            .contains_key(RUN_NOW_ANNOTATION)
            .not()
    );

    // The runner (get, list, trigger) can: the annotation holds the instant, RFC3339 UTC, and the
    // requester annotation names the user; the runner still may not change the job.
    let reply = send(
        &state,
        bearer(
            json_request("POST", &format!("/api/v1/jobs/{ns}/nightly/run"), None),
            &env.runner,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let requested = reply.json()["requestedAt"].as_str().unwrap().to_owned();
    let live = env.jobs().get("nightly").await.unwrap();
    let annotations = live.metadata.annotations.unwrap();
    let value = annotations.get(RUN_NOW_ANNOTATION).cloned().unwrap();
    assert_eq!(value, requested);
    assert!(chrono::DateTime::parse_from_rfc3339(&value).is_ok() && value.ends_with('Z'));
    let runner_name = format!("system:serviceaccount:{ns}:runner");
    assert_eq!(annotations.get(RUN_NOW_REQUESTER_ANNOTATION), Some(&runner_name));
    // Pause and resume: a merge patch of spec.suspend alone; the reader may not.
    let pause = |token: String, suspend: bool| {
        bearer(
            json_request(
                "PATCH",
                &format!("/api/v1/jobs/{ns}/nightly"),
                Some(serde_json::json!({ "suspend": suspend })),
            ),
            &token,
        )
    };
    for token in [&env.reader, &env.runner] {
        let refused = send(&state, pause(token.clone(), true)).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
        let message = refused.json()["error"].as_str().unwrap().to_owned();
        assert!(message.contains("\"patch\""), "{message}");
    }
    let paused = send(&state, pause(env.editor.clone(), true)).await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.body);
    assert!(env.jobs().get("nightly").await.unwrap().spec.suspend);
    let resumed = send(&state, pause(env.editor.clone(), false)).await;
    assert_eq!(resumed.status, StatusCode::OK, "{}", resumed.body);
    let live = env.jobs().get("nightly").await.unwrap();
    assert!(!live.spec.suspend);
    assert_eq!(
        live.spec.schedule.daily.map(|d| d.at).as_deref(),
        Some("09:00"),
        "nothing else changed"
    );
    // The run appears once the operator has acted (here: the mirror).
    assert_eq!(mirror.sync(&env.jobs(), &store).await, 1);
    let runs = send(
        &state,
        bearer(get(&format!("/api/v1/jobs/{ns}/nightly/runs")), &env.reader),
    )
    .await
    .json();
    assert_eq!(runs["items"][0]["trigger"], "manual");
    assert_eq!(runs["items"][0]["requester"], runner_name.as_str());
    let panel = send(&state, bearer(get(&format!("/jobs/{ns}/nightly")), &env.reader)).await;
    // The run row names who asked: the service account as NS/NAME, its whole name in the title.
    assert!(
        panel.body.contains(&format!(
            "<span class=\"requester\">by {ns}/<wbr>runner <span class=\"requester-kind\">service account</span></span>"
        )) && panel.body.contains(&format!("title=\"manual by {runner_name}\"")),
        "the run row names who asked: {}",
        panel.body
    );

    // The editor may patch but not create or delete.
    let spec = json!({ "schedule": { "daily": { "at": "10:00" } }, "script": { "inline": "echo hi" } });
    let reply = send(
        &state,
        bearer(
            json_request(
                "POST",
                "/api/v1/jobs",
                Some(json!({ "name": "new", "namespace": ns, "spec": spec })),
            ),
            &env.editor,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.json()["error"].as_str().unwrap().contains("\"create\""));
    let reply = send(
        &state,
        bearer(
            json_request("DELETE", &format!("/api/v1/jobs/{ns}/nightly"), None),
            &env.editor,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    // Invalid input is 422 before anything reaches the API server.
    let bad = json!({ "schedule": { "daily": { "at": "25:00" } }, "script": { "inline": "echo" } });
    let reply = send(
        &state,
        bearer(
            json_request(
                "PUT",
                &format!("/api/v1/jobs/{ns}/nightly"),
                Some(json!({ "spec": bad })),
            ),
            &env.editor,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.json()["errors"][0]["field"], "spec.schedule.daily.at");

    // The editor's edit patches the resource; switching the schedule form leaves one form set.
    let weekly = json!({ "spec": { "schedule": { "weekly": { "days": ["monday"], "at": "08:00" } }, "script": { "inline": "echo hi" } } });
    let reply = send(
        &state,
        bearer(
            json_request("PUT", &format!("/api/v1/jobs/{ns}/nightly"), Some(weekly)),
            &env.editor,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let live = env.jobs().get("nightly").await.unwrap();
    assert!(live.spec.schedule.daily.is_none());
    assert_eq!(live.spec.schedule.weekly.unwrap().at, "08:00");

    // The owner creates and deletes.
    let reply = send(
        &state,
        bearer(
            json_request(
                "POST",
                "/api/v1/jobs",
                Some(json!({ "name": "made-by-portal", "namespace": ns, "spec": spec })),
            ),
            &env.owner,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let made = env.jobs().get("made-by-portal").await.unwrap();
    assert_eq!(made.spec.schedule.daily.unwrap().at, "10:00");
    assert_eq!(made.spec.time_zone, "Asia/Hong_Kong");
    let again = send(
        &state,
        bearer(
            json_request(
                "POST",
                "/api/v1/jobs",
                Some(json!({ "name": "made-by-portal", "namespace": ns, "spec": spec })),
            ),
            &env.owner,
        ),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let reply = send(
        &state,
        bearer(
            json_request("DELETE", &format!("/api/v1/jobs/{ns}/made-by-portal"), None),
            &env.owner,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(env.jobs().get_opt("made-by-portal").await.unwrap().is_none());
    let reply = send(
        &state,
        bearer(
            json_request("POST", &format!("/api/v1/jobs/{ns}/nope/run"), None),
            &env.owner,
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    env.ns.cleanup().await;
}

#[tokio::test]
async fn browsers_log_in_with_a_token_and_forms_follow_rbac() {
    let env = KubeEnv::new("dash-login").await;
    let ns = env.ns.name().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir, None).await;
    let state = AppState::kubernetes(store.clone(), env.client.clone(), PortalConfig::default());
    env.create_job("nightly", ScheduledJobSpec::daily("09:00")).await;
    Mirror::new("").sync(&env.jobs(), &store).await;

    let refused = send(&state, post_form("/login", "", &[("token", "garbage")])).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.body.contains("Kubernetes bearer token"));

    let login = send(&state, post_form("/login", "", &[("token", &env.reader)])).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    let cookie = login.session_cookie().unwrap();
    let page = send(&state, get_with_cookie(&format!("/jobs/{ns}/nightly"), &cookie)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains(&format!("system:serviceaccount:{ns}:reader")));
    assert!(page.body.contains(" 09:00 HKT</time>"));
    let csrf = csrf_of(&page.body);
    let reply = send(
        &state,
        post_form(&format!("/jobs/{ns}/nightly/run"), &cookie, &[("csrf", &csrf)]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.body.contains("Not allowed"));
    assert!(reply.body.contains("may not run this job now"), "{}", reply.body);

    let login = send(&state, post_form("/login", "", &[("token", &env.runner)])).await;
    let cookie = login.session_cookie().unwrap();
    let page = send(&state, get_with_cookie(&format!("/jobs/{ns}/nightly"), &cookie)).await;
    let csrf = csrf_of(&page.body);
    let reply = send(
        &state,
        post_form(&format!("/jobs/{ns}/nightly/run"), &cookie, &[("csrf", &csrf)]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let live = env.jobs().get("nightly").await.unwrap();
    assert!(
        live.metadata
            .annotations
            .unwrap()
            .contains_key(RUN_NOW_ANNOTATION)
    );

    env.ns.cleanup().await;
}

/// `request` as if it came from `ip`.
fn from_ip(
    mut request: axum::http::Request<axum::body::Body>,
    ip: &str,
) -> axum::http::Request<axum::body::Body> {
    let addr: std::net::SocketAddr = format!("{ip}:40000").parse().unwrap();
    request.extensions_mut().insert(axum::extract::ConnectInfo(addr));
    request
}

#[tokio::test]
async fn made_up_tokens_cost_at_most_ten_token_reviews_a_minute_per_client() {
    let env = KubeEnv::new("dash-limit").await;
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir, None).await;
    let state = AppState::kubernetes(store, env.client.clone(), PortalConfig::default());
    let list = |token: &str, ip: &str| from_ip(bearer(get("/api/v1/jobs"), token), ip);

    // The reader's token is accepted (and so cached) before the flood.
    assert_eq!(
        send(&state, list(&env.reader, "10.3.3.3")).await.status,
        StatusCode::OK
    );
    for i in 0..10 {
        let reply = send(&state, list(&format!("made-up-{i}"), "10.3.3.3")).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "token {i}");
    }
    let limited = send(&state, list("made-up-10", "10.3.3.3")).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "{}", limited.body);
    assert!(limited.header("retry-after").parse::<u64>().is_ok());
    // A token accepted before still works; a new one waits; other clients are not affected.
    assert_eq!(
        send(&state, list(&env.reader, "10.3.3.3")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&state, list(&env.editor, "10.3.3.3")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        send(&state, list(&env.editor, "10.3.3.4")).await.status,
        StatusCode::OK
    );

    env.ns.cleanup().await;
}

const SECRET: &str = "replica-secret-replica-secret-replica-0001";
const NEXT_SECRET: &str = "rotated-secret-rotated-secret-rotated-0002";

fn portal_with(store: jtp_store::Store, env: &KubeEnv, secrets: &str) -> AppState {
    let config = PortalConfig {
        session_keys: jtp_dashboard::session::SessionKeys::from_secrets(secrets).unwrap(),
        ..PortalConfig::default()
    };
    AppState::kubernetes(store, env.client.clone(), config)
}

#[tokio::test]
async fn two_portal_replicas_on_one_database_share_logins_and_csrf_through_the_session_secret() {
    let env = KubeEnv::new("dash-replicas").await;
    let ns = env.ns.name().to_owned();
    let server = jtp_store::testing::postgres_server_url();
    let (db_name, db_url) = jtp_store::testing::create_database(&server, "replicas").await;
    let store_a = jtp_store::Store::connect(&db_url).await.unwrap();
    let store_b = jtp_store::Store::connect(&db_url).await.unwrap();
    let a = portal_with(store_a.clone(), &env, SECRET);
    let b = portal_with(store_b.clone(), &env, SECRET);
    env.create_job("nightly", ScheduledJobSpec::manual()).await;
    Mirror::new("").sync(&env.jobs(), &store_a).await;

    // Log in on replica A; replica B reads the session, its CSRF token works there, and Run Now
    // goes through B.
    let login = send(&a, post_form("/login", "", &[("token", &env.runner)])).await;
    assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.body);
    let cookie = login.next_cookie("");
    let page = send(&b, get_with_cookie(&format!("/jobs/{ns}/nightly"), &cookie)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let runner = format!("system:serviceaccount:{ns}:runner");
    assert!(page.body.contains(&runner), "B knows who is logged in");
    let csrf = csrf_of(&page.body);
    let run = send(
        &b,
        post_form(&format!("/jobs/{ns}/nightly/run"), &cookie, &[("csrf", &csrf)]),
    )
    .await;
    assert_eq!(run.status, StatusCode::SEE_OTHER, "{}", run.body);
    let annotations = env
        .jobs()
        .get("nightly")
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap();
    assert_eq!(annotations.get(RUN_NOW_REQUESTER_ANNOTATION), Some(&runner));
    // The flash B set is shown by A.
    let cookie = run.next_cookie(&cookie);
    let shown = send(&a, get_with_cookie(&format!("/jobs/{ns}/nightly"), &cookie)).await;
    assert!(
        shown.body.contains("Run Now requested for nightly"),
        "{}",
        shown.body
    );
    // A forged CSRF token is refused on either replica.
    let forged = send(
        &a,
        post_form(&format!("/jobs/{ns}/nightly/run"), &cookie, &[("csrf", "forged")]),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    // A replica with another secret cannot read the session (login again); during a rotation
    // (new secret first, old second) old sessions still work and new ones are sealed anew.
    let stranger = portal_with(store_b.clone(), &env, NEXT_SECRET);
    let refused = send(&stranger, get_with_cookie("/", &cookie)).await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    assert_eq!(refused.header("location"), "/login");
    let rotating = portal_with(store_b.clone(), &env, &format!("{NEXT_SECRET}\n{SECRET}\n"));
    let kept = send(
        &rotating,
        get_with_cookie(&format!("/jobs/{ns}/nightly"), &cookie),
    )
    .await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.body);
    let login = send(&rotating, post_form("/login", "", &[("token", &env.reader)])).await;
    let new_cookie = login.next_cookie("");
    assert_eq!(
        send(&stranger, get_with_cookie("/", &new_cookie)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&a, get_with_cookie("/", &new_cookie)).await.status,
        StatusCode::SEE_OTHER
    );

    store_a.close().await;
    store_b.close().await;
    jtp_store::testing::drop_database(&server, &db_name).await;
    env.ns.cleanup().await;
}

/// A ValidatingAdmissionPolicy (and its binding) that refuses every write of ScheduledJobs in
/// `namespace` by a user whose name ends with `:{who}`, naming the user it saw.
async fn refuse_writes_by(client: &kube::Client, namespace: &str, who: &str) -> String {
    use kube::api::{DynamicObject, PostParams};
    use kube::discovery::ApiResource;
    let name = format!("{namespace}-refuse-{who}");
    let policy_resource = ApiResource {
        group: "admissionregistration.k8s.io".into(),
        version: "v1".into(),
        api_version: "admissionregistration.k8s.io/v1".into(),
        kind: "ValidatingAdmissionPolicy".into(),
        plural: "validatingadmissionpolicies".into(),
    };
    let binding_resource = ApiResource {
        kind: "ValidatingAdmissionPolicyBinding".into(),
        plural: "validatingadmissionpolicybindings".into(),
        ..policy_resource.clone()
    };
    let policy: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": { "name": name },
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": { "resourceRules": [{
                "apiGroups": ["jobtrigger.io"], "apiVersions": ["*"],
                "operations": ["CREATE", "UPDATE", "DELETE"], "resources": ["scheduledjobs"]
            }] },
            "validations": [{
                "expression": format!("!request.userInfo.username.endsWith(':{who}')"),
                "messageExpression": "'admission saw ' + request.userInfo.username"
            }]
        }
    }))
    .unwrap();
    let binding: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": { "name": name },
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": { "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": namespace } } }
        }
    }))
    .unwrap();
    let pp = PostParams::default();
    kube::Api::<DynamicObject>::all_with(client.clone(), &policy_resource)
        .create(&pp, &policy)
        .await
        .unwrap();
    kube::Api::<DynamicObject>::all_with(client.clone(), &binding_resource)
        .create(&pp, &binding)
        .await
        .unwrap();
    name
}

async fn remove_policy(client: &kube::Client, name: &str) {
    for plural in ["validatingadmissionpolicybindings", "validatingadmissionpolicies"] {
        let resource = kube::discovery::ApiResource {
            group: "admissionregistration.k8s.io".into(),
            version: "v1".into(),
            api_version: "admissionregistration.k8s.io/v1".into(),
            kind: String::new(),
            plural: plural.into(),
        };
        let _ = kube::Api::<kube::api::DynamicObject>::all_with(client.clone(), &resource)
            .delete(name, &Default::default())
            .await;
    }
}

#[tokio::test]
async fn the_portal_writes_as_the_user_so_the_api_server_authorizes_and_admits_the_user() {
    let env = KubeEnv::new("dash-as-user").await;
    let ns = env.ns.name().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir, None).await;
    let state = AppState::kubernetes(store.clone(), env.client.clone(), PortalConfig::default());
    env.create_job("nightly", ScheduledJobSpec::daily("09:00")).await;
    Mirror::new("").sync(&env.jobs(), &store).await;
    let pause = |token: &str, suspend: bool| {
        bearer(
            json_request(
                "PATCH",
                &format!("/api/v1/jobs/{ns}/nightly"),
                Some(json!({ "suspend": suspend })),
            ),
            token,
        )
    };

    // Admission sees the user, not the portal: a policy that refuses the editor refuses the
    // portal's write for the editor, and names the editor.
    let policy = refuse_writes_by(&env.client, &ns, "editor").await;
    let editor = format!("system:serviceaccount:{ns}:editor");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let refused = loop {
        // The API server starts enforcing a new policy within a second or so.
        let reply = send(&state, pause(&env.editor, true)).await;
        if reply.status != StatusCode::OK || std::time::Instant::now() > deadline {
            break reply;
        }
        send(&state, pause(&env.owner, false)).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    // A policy's denial is the API server's 422, which the portal shows as the API server's word.
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    let message = refused.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("the API server refused") && message.contains(&format!("admission saw {editor}")),
        "{message}"
    );
    // The owner is not refused by that policy.
    let paused = send(&state, pause(&env.owner, true)).await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.body);
    remove_policy(&env.client, &policy).await;

    // The API server's own RBAC decides too: the owner's right to patch is withdrawn while the
    // portal still has the owner's "allowed" cached; the write, made as the owner, is refused by
    // the API server itself.
    kube::Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(env.client.clone(), &ns)
        .delete("sj-owner", &Default::default())
        .await
        .unwrap();
    let owner = format!("system:serviceaccount:{ns}:owner");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let refused = loop {
        let reply = send(&state, pause(&env.owner, false)).await;
        if reply.status != StatusCode::OK || std::time::Instant::now() > deadline {
            break reply;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let message = refused.json()["error"].as_str().unwrap().to_owned();
    assert!(
        message.contains("the API server refused it") && message.contains(&owner),
        "the API server names the user it refused: {message}"
    );
    assert!(
        env.jobs().get("nightly").await.unwrap().spec.suspend,
        "nothing changed"
    );

    env.ns.cleanup().await;
}

/// The text of a live answer's segments.
fn live_text(answer: &serde_json::Value) -> String {
    answer["segments"]
        .as_array()
        .map(|s| s.iter().filter_map(|p| p["text"].as_str()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_running_runs_page_follows_its_pods_log_on_the_node_until_the_run_ends() {
    use k8s_openapi::api::batch::v1::Job;
    use kube::api::PostParams;
    let env = KubeEnv::new("dash-live").await;
    let ns = env.ns.name().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir, None).await;
    let state = AppState::kubernetes(store.clone(), env.client.clone(), PortalConfig::default());
    env.create_job("live", ScheduledJobSpec::manual()).await;
    Mirror::new("").sync(&env.jobs(), &store).await;
    let job_id = store.get_job_by_name(&ns, "live").await.unwrap().id;

    // The Job of a run in flight, as the operator makes it: a real pod on the node writes one
    // line, waits, writes another.
    let jobs: kube::Api<Job> = kube::Api::namespaced(env.client.clone(), &ns);
    let job: Job = serde_json::from_value(json!({
        "metadata": { "name": "live-manual-1" },
        "spec": { "backoffLimit": 0, "template": { "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": jtp_crds::pod::RUN_CONTAINER, "image": "busybox:1.36",
                "command": ["sh", "-c", "echo first line; sleep 15; echo second line"]
            }]
        }}}
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let now = chrono::Utc::now();
    let run = store
        .record_attempt_start(
            &jtp_store::RunStart {
                job_id,
                trigger: jtp_crds::Trigger::Manual,
                scheduled_for: now,
                started_at: now,
                k8s_job_name: Some(format!("{ns}/live-manual-1")),
                runner: None,
                requester: None,
                parameters: Default::default(),
            },
            1,
        )
        .await
        .unwrap();

    // The reader polls as the page does: the first line arrives while the run goes on.
    let url = |offset: u64| format!("/api/v1/runs/{run}/live?offset={offset}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let (mut text, mut offset) = (String::new(), 0);
    while !text.contains("first line") {
        assert!(
            std::time::Instant::now() < deadline,
            "no live output from the pod; so far {text:?}"
        );
        let answer = send(&state, bearer(get(&url(offset)), &env.reader)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let answer = answer.json();
        assert_eq!(answer["status"], "RUNNING");
        assert_eq!(answer["live"], true, "{answer}");
        text.push_str(&live_text(&answer));
        offset = answer["offset"].as_u64().unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(!text.contains("second line"), "{text:?}");
    // The page shows what came so far and where to ask for more.
    let page = send(&state, bearer(get(&format!("/runs/{run}")), &env.reader)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("first line"), "{}", page.body);
    assert!(
        page.body
            .contains(&format!("data-live=\"/api/v1/runs/{run}/live\""))
    );

    // Then the rest, from the offset it had: nothing twice.
    while !text.contains("second line") {
        assert!(
            std::time::Instant::now() < deadline,
            "the second line never came; so far {text:?}"
        );
        let answer = send(&state, bearer(get(&url(offset)), &env.reader)).await.json();
        text.push_str(&live_text(&answer));
        offset = answer["offset"].as_u64().unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(text, "first line\nsecond line\n");

    // Recorded as ended: the page shows the stored output, and no longer follows.
    store
        .record_attempt_finish(
            run,
            &jtp_store::RunFinish {
                status: RunStatus::Success,
                exit_code: Some(0),
                output: b"first line\nsecond line\n",
                finished_at: chrono::Utc::now(),
            },
            jtp_store::FinishEffects::default(),
        )
        .await
        .unwrap();
    let answer = send(&state, bearer(get(&url(offset)), &env.reader)).await.json();
    assert_eq!(answer["live"], false);
    assert_eq!(answer["status"], "SUCCESS");
    // Someone who may not read the job gets nothing of it.
    let stranger = send(&state, get(&url(0))).await;
    assert_eq!(stranger.status, StatusCode::UNAUTHORIZED);
}
