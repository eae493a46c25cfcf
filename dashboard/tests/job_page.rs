//! The job page (#17 item 7) and the jobs list's sorting (item 8) through the router: the whole spec,
//! the next runs as the schedule engine computes them with DST changes marked, Secret references
//! without values, the exported manifest read back to the same spec, clone, the form's preview, and
//! sorted, stably paged lists.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use chrono::Utc;
use common::*;
use jtp_crds::manifest::{Manifest, parse_documents};
use jtp_crds::preview::{PreviewEntry, upcoming};
use jtp_crds::{EnvVar, JobId, PodTemplate, RunStatus, ScheduledJobSpec};

/// A job with most of what a spec can say.
fn rich_spec() -> ScheduledJobSpec {
    let mut spec = ScheduledJobSpec::daily("09:00")
        .in_zone("Europe/London")
        .script("echo \"on: yes\"\necho at: 09:00\nexit 0")
        .retain(Some("90d"), Some(20))
        .expect_success_within("26h")
        .notify(&["ops"])
        .retry(2, "30s")
        .pause_after(5);
    spec.description = Some("Nightly: on, yes, no, 01:30".into());
    spec.env = vec![EnvVar {
        name: "REPORT".into(),
        value: "nightly".into(),
    }];
    spec.starting_deadline_seconds = Some(300);
    spec.active_deadline_seconds = Some(3600);
    spec.pod_template = Some(PodTemplate(serde_json::json!({
        "spec": { "containers": [{
            "name": "run",
            "env": [{ "name": "TOKEN", "valueFrom": { "secretKeyRef": { "name": "creds", "key": "token" } } }],
            "envFrom": [{ "secretRef": { "name": "more-creds" } }]
        }]}
    })));
    spec
}

#[tokio::test]
async fn the_job_page_shows_the_whole_spec_and_the_next_runs_with_dst_marked() {
    let t = standalone().await;
    // Every Sunday of March at 01:30 in London: the last one is the day the clocks skip 01:30,
    // and whatever the date, the next five runs include it.
    let dst = ScheduledJobSpec::cron("30 1 * 3 sun")
        .in_zone("Europe/London")
        .script("echo dst");
    let id = add_job(&t.store, "default", "march-sundays", &dst).await;
    add_run(&t.store, id, RunStatus::Success, Some(0), "fine").await;
    let page = send(&t.state, get("/jobs/default/march-sundays/details")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let schedule = jtp_crds::validate(
        JobId {
            namespace: "default",
            name: "march-sundays",
        },
        &dst,
    )
    .unwrap();
    let entries = upcoming(&schedule, Utc::now(), 5);
    let mut gap = 0;
    for entry in entries.iter() {
        let PreviewEntry::Run(slot) = entry else {
            continue;
        };
        let local = jtp_dashboard::timefmt::wall(
            slot.at,
            schedule.time_zone(),
            jtp_dashboard::timefmt::Precision::Slot,
        );
        assert!(
            page.body.contains(&format!("{local}</time>")),
            "{local} in {}",
            page.body
        );
        if let Some(note) = slot.dst_note() {
            gap += 1;
            assert!(
                page.body
                    .contains(&format!("<span class=\"dst-note\">{note}</span>")),
                "{note}"
            );
        }
    }
    assert_eq!(gap, 1, "one run at the end of the gap: {entries:?}");
    assert!(
        page.body
            .contains("for 01:30, which the DST change skips: at the end of the gap")
    );
    assert_eq!(page.body.matches("<li>").count(), 5, "five runs");
    // The schedule in words, the script, health, recent runs, where it comes from.
    assert!(page.body.contains("id=\"schedule-words\""), "{}", page.body);
    assert!(page.body.contains("Europe/London"));
    assert!(
        page.body
            .contains("<pre class=\"script\" id=\"script\">echo dst</pre>")
    );
    assert!(
        page.body.contains("1 of 1 recent runs succeeded"),
        "{}",
        page.body
    );
    assert!(page.body.contains("href=\"/runs/"));
    assert!(page.body.contains("data-origin=\"portal\""));
    // The jobs list's name and the panel link to it.
    let list = send(&t.state, get("/")).await;
    assert!(list.body.contains("href=\"/jobs/default/march-sundays/details\""));
    let panel = send(&t.state, get("/jobs/default/march-sundays")).await;
    assert!(panel.body.contains("id=\"job-page\""));
    // Unknown jobs are a 404 page.
    let missing = send(&t.state, get("/jobs/default/nope/details")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn policies_env_and_secret_references_without_values() {
    let t = standalone().await;
    add_job(&t.store, "default", "rich", &rich_spec()).await;
    let page = send(&t.state, get("/jobs/default/rich/details")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for text in [
        "Forbid: a run due while another runs is skipped",
        "300 s: a slot missed by more is skipped",
        "3600 s: a run going longer is stopped (FAILURE)",
        "2 more attempts of a failed run, waiting 30s",
        "after 5 failed runs in a row",
        "runs of the last 90 days, and at least the last 20 runs",
        "(this job&#39;s retention)",
        "26h: overdue without a success for that long",
        "ops, for every event",
        "<code>REPORT</code>",
        "<code>nightly</code>",
        "Secret creds, key token (its value is not shown)",
        "every key of Secret more-creds (values not shown)",
    ] {
        assert!(page.body.contains(text), "{text} in {}", page.body);
    }
}

#[tokio::test]
async fn the_exported_manifest_reads_back_to_the_same_spec() {
    let t = standalone().await;
    let spec = rich_spec();
    add_job(&t.store, "default", "rich", &spec).await;
    let reply = send(&t.state, get("/jobs/default/rich/export.yaml")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(reply.header("content-type").starts_with("application/yaml"));
    let yaml = &reply.body;
    assert!(yaml.contains("apiVersion: jobtrigger.io/v1alpha1"), "{yaml}");
    assert!(yaml.contains("kind: ScheduledJob"));
    assert!(
        yaml.contains("at: '09:00'"),
        "a wall time is quoted for YAML 1.1: {yaml}"
    );
    assert!(!yaml.contains("status"), "no status: {yaml}");
    // Read as the jobs folder and `jtp preview` read manifests, with the API server's checks.
    let docs = parse_documents(yaml).unwrap();
    assert_eq!(docs.len(), 1);
    let Manifest::ScheduledJob(job) = &docs[0] else {
        panic!("not a ScheduledJob: {docs:?}");
    };
    assert_eq!(job.metadata.name.as_deref(), Some("rich"));
    assert_eq!(job.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(job.spec, spec);
    let value: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
    assert_eq!(jtp_crds::admission::unknown_fields(&value), vec![]);
    jtp_crds::admission::validate_object("default", "rich", &job.spec).unwrap();
}

#[tokio::test]
async fn clone_opens_the_form_prefilled_and_keeps_what_the_form_does_not_show() {
    let t = standalone().await;
    let spec = rich_spec();
    add_job(&t.store, "default", "rich", &spec).await;
    let (cookie, _) = browser_session(&t.state).await;
    let form = send(&t.state, get_with_cookie("/jobs/default/rich/clone", &cookie)).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    assert!(form.body.contains("value=\"rich-copy\""), "{}", form.body);
    assert!(form.body.contains("a copy of default/rich"));
    assert!(form.body.contains("action=\"/jobs/default/rich/clone\""));
    assert!(form.body.contains("Europe/London"));
    // The browser posts the form as it is, with the new name.
    let csrf = csrf_of(&form.body);
    let fields = form_fields(&form.body);
    let mut post: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    post.retain(|(k, _)| *k != "csrf");
    post.push(("csrf", &csrf));
    let created = send(&t.state, post_form("/jobs/default/rich/clone", &cookie, &post)).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    assert_eq!(created.header("location"), "/jobs/default/rich-copy");
    let copy = t.store.get_job_by_name("default", "rich-copy").await.unwrap();
    assert_eq!(copy.spec, spec, "the copy has the whole spec");
    // A second clone gets the next free name; a taken name is refused next to the field.
    let again = send(&t.state, get_with_cookie("/jobs/default/rich/clone", &cookie)).await;
    assert!(again.body.contains("value=\"rich-copy-2\""));
    let taken = send(&t.state, post_form("/jobs/default/rich/clone", &cookie, &post)).await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.body);
    assert!(taken.body.contains("id=\"error-name\""));
}

/// Every named input, select and textarea value of a server-rendered form, as a browser would
/// post it (checked boxes and selected options only).
fn form_fields(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let attr = |tag: &str, name: &str| -> Option<String> {
        let marker = format!(" {name}=\"");
        let start = tag.find(&marker)? + marker.len();
        let end = tag[start..].find('"')? + start;
        Some(html_unescape(&tag[start..end]))
    };
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i..];
        let end = rest.find('>').unwrap_or(rest.len());
        let tag = &rest[..end];
        let name = attr(tag, "name");
        if let Some(name) = name.clone()
            && tag.starts_with("<input")
        {
            let kind = attr(tag, "type").unwrap_or_default();
            if kind != "checkbox" || tag.contains(" checked") {
                out.push((name, attr(tag, "value").unwrap_or_default()));
            }
        } else if let Some(name) = name.clone()
            && tag.starts_with("<textarea")
        {
            let close = rest.find("</textarea>").unwrap();
            out.push((name, html_unescape(&rest[end + 1..close])));
        } else if let Some(name) = name
            && tag.starts_with("<select")
        {
            let close = rest.find("</select>").unwrap();
            let options = &rest[..close];
            let chosen = options
                .split("<option")
                .skip(1)
                .find(|o| o.contains(" selected"))
                .or_else(|| options.split("<option").nth(1));
            if let Some(option) = chosen {
                out.push((
                    name,
                    attr(&format!("<option{option}"), "value").unwrap_or_default(),
                ));
            }
        }
        rest = &rest[end.min(rest.len())..];
        if rest.len() <= 1 {
            break;
        }
        rest = &rest[1..];
    }
    out
}

fn html_unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[tokio::test]
async fn the_form_previews_the_next_runs_as_you_type() {
    let t = standalone().await;
    let (cookie, csrf) = browser_session(&t.state).await;
    let new = send(&t.state, get_with_cookie("/jobs/new", &cookie)).await;
    assert!(new.body.contains("id=\"form-next-runs\""));
    assert_eq!(new.body.matches("09:00 HKT</time>").count(), 5, "{}", new.body);
    let mut fields = daily_form(&csrf, "typed", "9:30");
    let preview = send(&t.state, post_form("/jobs/preview", &cookie, &fields)).await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert_eq!(
        preview.body.matches("09:30 HKT</time>").count(),
        5,
        "{}",
        preview.body
    );
    fields.retain(|(k, _)| *k != "daily_at");
    fields.push(("daily_at", "25:00"));
    let bad = send(&t.state, post_form("/jobs/preview", &cookie, &fields)).await;
    assert!(bad.body.contains("id=\"next-runs-problem\""), "{}", bad.body);
    assert!(bad.body.contains("25:00"), "{}", bad.body);
    // Like every form post, it needs the session's CSRF token.
    fields.retain(|(k, _)| *k != "csrf");
    let refused = send(&t.state, post_form("/jobs/preview", &cookie, &fields)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_preview_api_marks_dst_changes_like_jtp_preview() {
    let t = standalone().await;
    let spec = ScheduledJobSpec::daily("02:30")
        .in_zone("America/New_York")
        .script("echo");
    let body = serde_json::json!({
        "name": "spring", "spec": spec, "count": 3, "after": "2027-03-13T12:00:00Z"
    });
    let reply = send(&t.state, json_request("POST", "/api/v1/preview", Some(body))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let answer = reply.json();
    assert_eq!(answer["timeZone"], "America/New_York");
    let runs = answer["runs"].as_array().unwrap();
    assert_eq!(runs[0]["at"], "2027-03-14T07:00:00Z");
    assert_eq!(runs[0]["local"], "2027-03-14 03:00:00 -04:00");
    assert_eq!(
        runs[0]["note"],
        "for 02:30, which the DST change skips: at the end of the gap"
    );
    assert_eq!(runs[1]["at"], "2027-03-15T06:30:00Z");
    assert_eq!(runs[1]["note"], serde_json::Value::Null);
    let bad = serde_json::json!({ "name": "x", "spec": ScheduledJobSpec::daily("9 o'clock") });
    let reply = send(&t.state, json_request("POST", "/api/v1/preview", Some(bad))).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.body);
    assert_eq!(reply.json()["errors"][0]["field"], "spec.schedule.daily.at");
}

/// The rows' job names in the order shown.
fn names(body: &str) -> Vec<String> {
    body.match_indices("data-job=\"default/")
        .map(|(i, m)| {
            let start = i + m.len();
            let end = body[start..].find('"').unwrap() + start;
            body[start..end].to_owned()
        })
        .collect()
}

#[tokio::test]
async fn the_list_sorts_by_each_column_both_ways_with_stable_pages() {
    let t = standalone().await;
    let base = Utc::now() - chrono::Duration::hours(5);
    // Names, last runs and statuses in different orders; two share a last status.
    let jobs = [
        ("delta", Some((1, RunStatus::Success))),
        ("alpha", Some((3, RunStatus::Failure))),
        ("charlie", None),
        ("bravo", Some((2, RunStatus::Success))),
        ("echo", Some((4, RunStatus::Error))),
    ];
    for (name, run) in jobs {
        let id = add_job(&t.store, "default", name, &ScheduledJobSpec::manual()).await;
        if let Some((hours, status)) = run {
            let at = base + chrono::Duration::hours(hours);
            add_run_at(&t.store, id, at, status, None, "x").await;
        }
    }
    let list = |q: &'static str| {
        let state = t.state.clone();
        async move {
            let reply = send(&state, get(q)).await;
            assert_eq!(reply.status, StatusCode::OK, "{q}: {}", reply.body);
            reply.body
        }
    };
    let by_name = list("/?sort=name").await;
    assert_eq!(names(&by_name), ["alpha", "bravo", "charlie", "delta", "echo"]);
    assert!(by_name.contains("aria-sort=\"ascending\"><a class=\"sort\" id=\"sort-name\""));
    assert!(
        by_name.contains("id=\"sort-name\" href=\"/?sort=name&#38;dir=desc\""),
        "{by_name}"
    );
    assert_eq!(
        names(&list("/?sort=name&dir=desc").await),
        ["echo", "delta", "charlie", "bravo", "alpha"]
    );
    // Last run: oldest first; never-run jobs last both ways.
    assert_eq!(
        names(&list("/?sort=last").await),
        ["delta", "bravo", "alpha", "echo", "charlie"]
    );
    assert_eq!(
        names(&list("/?sort=last&dir=desc").await),
        ["echo", "alpha", "bravo", "delta", "charlie"]
    );
    // Status: problems first (ERROR, FAILURE, SUCCESS), ties by name.
    assert_eq!(
        names(&list("/?sort=status").await),
        ["echo", "alpha", "bravo", "delta", "charlie"]
    );
    // Pages of two concatenate to the whole list, in order, with the sort kept in the links.
    let mut paged = Vec::new();
    for page in 1..=3 {
        let body = send(&t.state, get(&format!("/?sort=status&per_page=2&page={page}")))
            .await
            .body;
        if page < 3 {
            assert!(
                body.contains(&format!("sort=status&#38;page={}", page + 1)),
                "{body}"
            );
        }
        paged.extend(names(&body));
    }
    assert_eq!(paged, ["echo", "alpha", "bravo", "delta", "charlie"]);
    // The rows' refresh keeps the order.
    let fragment = list("/fragments/jobs?sort=name&dir=desc").await;
    assert_eq!(names(&fragment), ["echo", "delta", "charlie", "bravo", "alpha"]);
    // The API sorts the same way; a bad value is a 422 naming the parameter.
    let api = send(&t.state, get("/api/v1/jobs?sort=name&dir=desc"))
        .await
        .json();
    assert_eq!(api["items"][0]["name"], "echo");
    let bad = send(&t.state, get("/?sort=size&dir=up")).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("is not a column to sort by"), "{}", bad.body);
    assert!(bad.body.contains("is not a sort direction"));
    let api = send(&t.state, get("/api/v1/jobs?sort=size")).await;
    assert_eq!(api.json()["errors"][0]["field"], "sort");
}

#[tokio::test]
async fn rows_are_focusable_and_a_time_sort_across_zones_says_how_it_reads() {
    let t = standalone().await;
    add_job(&t.store, "default", "hk", &ScheduledJobSpec::daily("09:00")).await;
    add_job(
        &t.store,
        "default",
        "london",
        &ScheduledJobSpec::daily("09:00").in_zone("Europe/London"),
    )
    .await;
    let page = send(&t.state, get("/")).await;
    assert_eq!(page.body.matches("tabindex=\"0\" data-job=").count(), 2);
    assert!(page.body.contains("id=\"zone-note\""));
    assert!(
        !send(&t.state, get("/?sort=name"))
            .await
            .body
            .contains("id=\"zone-note\"")
    );
    let utc = send(&t.state, get_with_cookie("/", "jtp_zone=UTC")).await;
    assert!(!utc.body.contains("id=\"zone-note\""));
}
