//! The validation function: every rule the schema has, plus what a schema cannot check.

use jtp_crds::{IntervalUnit, JobId, Schedule, ScheduledJobSpec, Script, validate};

fn errors(spec: &ScheduledJobSpec) -> Vec<String> {
    let job = JobId {
        namespace: "default",
        name: "job",
    };
    match validate(job, spec) {
        Ok(_) => Vec::new(),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

fn rejected(spec: ScheduledJobSpec, field: &str, words: &str) {
    let errors = errors(&spec);
    assert!(
        errors.iter().any(|e| e.starts_with(field) && e.contains(words)),
        "expected an error on {field} saying {words:?}, got {errors:?}"
    );
}

#[test]
fn valid_specs_pass() {
    for spec in [
        ScheduledJobSpec::daily("00:00"),
        ScheduledJobSpec::daily("23:59"),
        ScheduledJobSpec::hourly(0),
        ScheduledJobSpec::interval(10, IntervalUnit::Seconds),
        ScheduledJobSpec::cron("0 9 * * mon-fri").in_zone("Europe/London"),
        ScheduledJobSpec::manual().in_zone("UTC"),
    ] {
        assert_eq!(errors(&spec), Vec::<String>::new());
    }
}

#[test]
fn unknown_time_zone_names_the_fix() {
    rejected(
        ScheduledJobSpec::daily("09:00").in_zone("Asia/HongKong"),
        "spec.timeZone",
        "did you mean Asia/Hong_Kong?",
    );
    rejected(
        ScheduledJobSpec::daily("09:00").in_zone("Mars/Olympus"),
        "spec.timeZone",
        "IANA name",
    );
}

#[test]
fn bad_times_and_ranges() {
    rejected(
        ScheduledJobSpec::daily("24:00"),
        "spec.schedule.daily.at",
        "HH:MM",
    );
    rejected(ScheduledJobSpec::daily("9:00"), "spec.schedule.daily.at", "HH:MM");
    rejected(
        ScheduledJobSpec::daily("09:60"),
        "spec.schedule.daily.at",
        "HH:MM",
    );
    rejected(
        ScheduledJobSpec::hourly(60),
        "spec.schedule.hourly.minute",
        "0 to 59",
    );
    rejected(
        ScheduledJobSpec::monthly(0, "09:00"),
        "spec.schedule.monthly.day",
        "1 to 31",
    );
    rejected(
        ScheduledJobSpec::monthly(32, "09:00"),
        "spec.schedule.monthly.day",
        "1 to 31",
    );
    rejected(
        ScheduledJobSpec::interval(9, IntervalUnit::Seconds),
        "spec.schedule.interval",
        "at least 10 seconds",
    );
    rejected(
        ScheduledJobSpec::interval(0, IntervalUnit::Minutes),
        "spec.schedule.interval",
        "at least 10 seconds",
    );
    rejected(
        ScheduledJobSpec::weekly(&[], "09:00"),
        "spec.schedule.weekly.days",
        "at least one weekday",
    );
}

#[test]
fn cron_must_be_five_valid_fields() {
    rejected(
        ScheduledJobSpec::cron("0 0 9 * * *"),
        "spec.schedule.cron",
        "write 5",
    );
    rejected(ScheduledJobSpec::cron("* * *"), "spec.schedule.cron", "write 5");
    rejected(
        ScheduledJobSpec::cron("61 * * * *"),
        "spec.schedule.cron",
        "invalid",
    );
}

#[test]
fn exactly_one_schedule_form_and_one_script() {
    rejected(
        ScheduledJobSpec::with_schedule(Schedule::default()),
        "spec.schedule",
        "exactly one schedule form",
    );
    let mut two = ScheduledJobSpec::daily("09:00");
    two.schedule.hourly = ScheduledJobSpec::hourly(5).schedule.hourly;
    rejected(two, "spec.schedule", "exactly one schedule form");
    let mut no_script = ScheduledJobSpec::daily("09:00");
    no_script.script = Script::default();
    rejected(no_script, "spec.script", "exactly one of");
}

#[test]
fn all_problems_are_reported_at_once() {
    let mut spec = ScheduledJobSpec::daily("25:00").in_zone("Nowhere");
    spec.script = Script::default();
    assert_eq!(errors(&spec).len(), 3, "{:?}", errors(&spec));
}

#[test]
fn a_description_over_the_crds_1024_characters_is_refused() {
    let mut spec = ScheduledJobSpec::daily("09:00");
    spec.description = Some("é".repeat(1024));
    assert_eq!(
        errors(&spec),
        Vec::<String>::new(),
        "1024 characters (2048 bytes) fit"
    );
    spec.description = Some("x".repeat(1025));
    rejected(spec, "spec.description", "at most 1024 characters");
}

#[test]
fn an_inline_script_too_large_for_one_argument_is_refused_up_front() {
    let mut spec = ScheduledJobSpec::daily("09:00");
    spec.script.inline = Some(format!(
        "echo {}",
        "x".repeat(jtp_crds::validate::MAX_ARGUMENT_BYTES)
    ));
    rejected(
        spec,
        "spec.script.inline",
        "put it in a ConfigMap or a script file",
    );
}

#[test]
fn a_config_map_key_that_is_a_path_is_refused() {
    let mut spec = ScheduledJobSpec::daily("09:00");
    spec.script = Script {
        config_map: Some(jtp_crds::ConfigMapScript {
            name: "scripts".into(),
            key: "../../x.sh".into(),
        }),
        ..Script::default()
    };
    rejected(spec, "spec.script.configMap.key", "not a valid ConfigMap key");
}

#[test]
fn a_pod_template_is_held_to_what_a_run_pod_may_be() {
    let with_template = |template: serde_json::Value| {
        let mut spec = ScheduledJobSpec::daily("09:00");
        spec.pod_template = Some(serde_json::from_value(template).expect("a PodTemplateSpec"));
        spec
    };
    assert_eq!(
        errors(&with_template(serde_json::json!({
            "spec": { "containers": [{ "name": "run", "env": [{ "name": "A", "valueFrom": { "secretKeyRef": { "name": "s", "key": "k" } } }] }] }
        }))),
        Vec::<String>::new()
    );
    rejected(
        with_template(serde_json::json!({ "spec": { "containers": [{ "name": "run", "command": ["x"] }] } })),
        "spec.podTemplate.spec.containers[0].command",
        "move it to spec.script.command",
    );
    rejected(
        with_template(serde_json::json!({ "spec": { "serviceAccountName": "admin" } })),
        "spec.podTemplate.spec.serviceAccountName",
        "spec.serviceAccountName",
    );
    rejected(
        with_template(serde_json::json!({ "spec": { "restartPolicy": "Always" } })),
        "spec.podTemplate.spec.restartPolicy",
        "use Never or OnFailure",
    );
    rejected(
        with_template(serde_json::json!({ "spec": {
            "containers": [{ "name": "side", "image": "a" }],
            "initContainers": [{ "name": "side", "image": "b" }]
        } })),
        "spec.podTemplate.spec.initContainers[0].name",
        "used twice",
    );
    // The PodSpec is kept without a schema: a wrong type is refused here, at its path.
    rejected(
        with_template(serde_json::json!({ "spec": { "containers": [{ "name": "run", "env": "A=1" }] } })),
        "spec.podTemplate.spec.containers[0].env",
        "invalid type: string \"A=1\", expected a sequence",
    );
    // A misspelt field would otherwise vanish: it is refused by its path.
    rejected(
        with_template(serde_json::json!({ "spec": {
            "nodeSelecter": { "disk": "ssd" },
            "containers": [{ "name": "run", "envFrom": [{ "secretRef": { "name": "s", "optionl": true } }] }]
        } })),
        "spec.podTemplate.spec.nodeSelecter",
        "unknown field \"nodeSelecter\"",
    );
    rejected(
        with_template(serde_json::json!({ "spec": {
            "containers": [{ "name": "run", "envFrom": [{ "secretRef": { "name": "s", "optionl": true } }] }]
        } })),
        "spec.podTemplate.spec.containers[0].envFrom[0].secretRef.optionl",
        "unknown field",
    );
    rejected(
        with_template(serde_json::json!({ "spec": { "containers": [{ "name": "side" }] } })),
        "spec.podTemplate.spec.containers[0].image",
        "needs an image",
    );
}

#[test]
fn retention_is_checked_with_its_field_path() {
    assert_eq!(
        errors(&ScheduledJobSpec::daily("09:00").retain(Some("90d"), Some(20))),
        Vec::<String>::new()
    );
    assert_eq!(
        errors(&ScheduledJobSpec::daily("09:00").retain(None, None)),
        Vec::<String>::new()
    );
    rejected(
        ScheduledJobSpec::daily("09:00").retain(Some("90 days"), None),
        "spec.retention.maxAge",
        "write a number and a unit",
    );
    rejected(
        ScheduledJobSpec::daily("09:00").retain(Some("0d"), None),
        "spec.retention.maxAge",
        "zero",
    );
    rejected(
        ScheduledJobSpec::daily("09:00").retain(None, Some(0)),
        "spec.retention.keepLast",
        "at least 1",
    );
}

#[test]
fn the_crd_schema_refuses_a_bad_retention_at_apply() {
    let crd: serde_json::Value = serde_yaml::from_str(&jtp_crds::crd_yaml()).expect("the CRD reads");
    let retention = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["retention"]["properties"];
    assert_eq!(retention["maxAge"]["pattern"], jtp_crds::DURATION_PATTERN);
    assert_eq!(retention["keepLast"]["minimum"], 1.0);
}

#[test]
fn the_dead_mans_switch_and_notifications_are_checked_with_their_field_paths() {
    assert_eq!(
        errors(
            &ScheduledJobSpec::daily("09:00")
                .expect_success_within("26h")
                .notify(&["ops", "on-call"])
        ),
        Vec::<String>::new()
    );
    rejected(
        ScheduledJobSpec::daily("09:00").expect_success_within("26 hours"),
        "spec.expectSuccessWithin",
        "write a number and a unit",
    );
    rejected(
        ScheduledJobSpec::daily("09:00").notify(&["Ops Team"]),
        "spec.notifications.receivers[0]",
        "not a receiver name",
    );
    let crd: serde_json::Value = serde_yaml::from_str(&jtp_crds::crd_yaml()).expect("the CRD reads");
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    assert_eq!(spec["expectSuccessWithin"]["pattern"], jtp_crds::DURATION_PATTERN);
    assert_eq!(
        spec["notifications"]["properties"]["receivers"]["items"]["pattern"],
        jtp_crds::alerting::RECEIVER_PATTERN
    );
}

#[test]
fn retries_and_pause_are_checked_with_their_field_paths() {
    assert_eq!(
        errors(&ScheduledJobSpec::daily("09:00").retry(3, "30s").pause_after(5)),
        Vec::<String>::new()
    );
    rejected(
        ScheduledJobSpec::daily("09:00").retry(11, "30s"),
        "spec.retries.limit",
        "at most 10",
    );
    rejected(
        ScheduledJobSpec::daily("09:00").retry(1, "30 seconds"),
        "spec.retries.backoff.delay",
        "write a number and a unit",
    );
    rejected(
        ScheduledJobSpec::daily("09:00").pause_after(0),
        "spec.pauseAfterConsecutiveFailures",
        "at least 1",
    );
}

#[test]
fn the_crd_schema_refuses_bad_retries_at_apply() {
    let crd: serde_json::Value = serde_yaml::from_str(&jtp_crds::crd_yaml()).expect("the CRD reads");
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    let retries = &spec["retries"]["properties"];
    assert_eq!(retries["limit"]["maximum"], 10.0);
    assert_eq!(
        retries["backoff"]["properties"]["delay"]["pattern"],
        jtp_crds::DURATION_PATTERN
    );
    assert_eq!(
        retries["backoff"]["properties"]["strategy"]["enum"],
        serde_json::json!(["Fixed", "Exponential"])
    );
    assert_eq!(spec["pauseAfterConsecutiveFailures"]["minimum"], 1.0);
}
