//! `jtp preview` through the built binary.

mod common;

fn preview(yaml: &str, args: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("job.yaml");
    std::fs::write(&file, yaml).expect("write manifest");
    let out = common::jtp()
        .arg("preview")
        .arg(&file)
        .args(args)
        .output()
        .expect("run jtp");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const WEEKLY: &str = r#"
apiVersion: jobtrigger.io/v1alpha1
kind: ScheduledJob
metadata: { name: weekly-report }
spec:
  schedule: { weekly: { days: [monday], at: "09:00" } }
  script: { inline: "echo report" }
"#;

const INTERVAL: &str = r#"
apiVersion: jobtrigger.io/v1alpha1
kind: ScheduledJob
metadata: { name: heartbeat }
spec:
  schedule: { interval: { every: 15, unit: minutes } }
  script: { inline: "echo beat" }
"#;

#[test]
fn an_interval_is_previewed_on_its_jobs_phase_to_the_millisecond() {
    let after = "2026-11-30T01:30:00Z";
    let slots = |namespace: &str| {
        let spec = jtp_crds::ScheduledJobSpec::interval(15, jtp_crds::IntervalUnit::Minutes);
        let id = jtp_crds::JobId {
            namespace,
            name: "heartbeat",
        };
        let schedule = jtp_crds::validate(id, &spec).expect("valid");
        let first = schedule
            .next_after(after.parse().expect("instant"))
            .expect("next");
        [first, schedule.next_after(first).expect("next")]
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    };
    // The whole output and its first column (the slots in UTC).
    let run = |yaml: &str| {
        let (ok, stdout, stderr) = preview(yaml, &["--after", after, "--count", "2"]);
        assert!(ok, "{stderr}");
        let utc: Vec<String> = stdout
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect();
        (stdout, utc)
    };
    let (stdout, utc) = run(INTERVAL);
    // Without a namespace, the job is placed as in `default` (default/heartbeat: :10:14.529 past).
    assert_eq!(utc, slots("default"), "{stdout}");
    assert_eq!(utc[0], "2026-11-30T01:40:14.529Z");
    assert!(stdout.contains(" 09:40:14.529 +08:00 Asia/Hong_Kong"), "{stdout}");

    let in_ops = INTERVAL.replace("name: heartbeat }", "name: heartbeat, namespace: ops }");
    let (stdout, utc) = run(&in_ops);
    assert_eq!(utc, slots("ops"), "{stdout}");
    assert_ne!(slots("ops"), slots("default"));
}

#[test]
fn prints_the_next_runs_utc_first_then_the_job_zone() {
    let (ok, stdout, stderr) = preview(WEEKLY, &["--after", "2026-11-30T01:30:00Z", "--count", "2"]);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let first: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(first[0], "2026-12-07T01:00:00Z");
    assert_eq!(
        &first[1..],
        ["2026-12-07", "09:00:00", "+08:00", "Asia/Hong_Kong"]
    );
    assert!(lines[1].starts_with("2026-12-14T01:00:00Z "));
}

#[test]
fn every_example_previews() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&examples).expect("examples/ exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let yaml = std::fs::read_to_string(&path).expect("read example");
            if !yaml.contains("kind: ScheduledJob") {
                continue;
            }
            let (ok, stdout, stderr) = preview(&yaml, &["--after", "2026-11-29T00:00:00Z", "--count", "3"]);
            assert!(ok, "{}: {stderr}", path.display());
            let manual = yaml.contains("manual: {}");
            assert_eq!(stdout.is_empty(), manual, "{}: {stdout}", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 7, "expected an example per schedule form, found {seen}");
}

#[test]
fn an_invalid_manifest_says_what_to_fix_and_fails() {
    let bad = WEEKLY.replace("09:00", "9am") + "  timeZone: Asia/HongKong\n";
    let (ok, _, stderr) = preview(&bad, &[]);
    assert!(!ok);
    assert!(
        stderr.contains("spec.schedule.weekly.at") && stderr.contains("HH:MM"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean Asia/Hong_Kong?"), "{stderr}");
}

#[test]
fn a_file_without_a_scheduled_job_fails() {
    let (ok, _, stderr) = preview("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", &[]);
    assert!(!ok);
    assert!(stderr.contains("no ScheduledJob"), "{stderr}");
}

const NEW_YORK_HOURLY: &str = r#"
apiVersion: jobtrigger.io/v1alpha1
kind: ScheduledJob
metadata: { name: sync }
spec:
  schedule: { hourly: { minute: 30 } }
  timeZone: America/New_York
  script: { inline: "echo sync" }
"#;

#[test]
fn dst_changes_are_shown_beside_the_runs_they_touch() {
    // 2026-11-01 01:30 happens twice in New York: an hourly job runs in both passes by default.
    let (ok, stdout, stderr) = preview(
        NEW_YORK_HOURLY,
        &["--after", "2026-11-01T04:45:00Z", "--count", "3"],
    );
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        "2026-11-01T05:30:00Z  2026-11-01 01:30:00 -04:00 America/New_York  # first pass of the repeated 01:30\n\
         2026-11-01T06:30:00Z  2026-11-01 01:30:00 -05:00 America/New_York  # second pass of the repeated 01:30\n\
         2026-11-01T07:30:00Z  2026-11-01 02:30:00 -05:00 America/New_York\n"
    );
    // 2027-03-14 02:30 does not exist: skipped by default, and the preview says so where it would be.
    let (ok, stdout, stderr) = preview(
        NEW_YORK_HOURLY,
        &["--after", "2027-03-14T06:00:00Z", "--count", "2"],
    );
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        "2027-03-14T06:30:00Z  2027-03-14 01:30:00 -05:00 America/New_York\n\
         # 2027-03-14 02:30 does not exist (the clocks skip it) and is not run: daylightSaving.skippedTime is Skip\n\
         2027-03-14T07:30:00Z  2027-03-14 03:30:00 -04:00 America/New_York\n"
    );
    // A job that chooses the end of the gap runs at 03:00 for 02:30, and the line says why; one that
    // chooses the second pass shows the first pass as not run.
    let chosen = NEW_YORK_HOURLY.replace(
        "  timeZone: America/New_York\n",
        "  timeZone: America/New_York\n  daylightSaving: { repeatedTime: Second, skippedTime: EndOfGap }\n",
    );
    let (ok, stdout, stderr) = preview(&chosen, &["--after", "2027-03-14T06:00:00Z", "--count", "3"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(
            "2027-03-14T07:00:00Z  2027-03-14 03:00:00 -04:00 America/New_York  # for 02:30, which the DST change skips: at the end of the gap\n"
        ),
        "{stdout}"
    );
    let (ok, stdout, stderr) = preview(&chosen, &["--after", "2026-11-01T04:45:00Z", "--count", "2"]);
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        "# 2026-11-01 01:30 (first pass of a repeated time) not run: daylightSaving.repeatedTime is Second\n\
         2026-11-01T06:30:00Z  2026-11-01 01:30:00 -05:00 America/New_York  # second pass of the repeated 01:30\n\
         2026-11-01T07:30:00Z  2026-11-01 02:30:00 -05:00 America/New_York\n"
    );
}

#[test]
fn an_unknown_field_is_refused_with_its_path_and_the_field_meant() {
    let typo = WEEKLY.replace("  script:", "  timezone: Europe/London\n  script:");
    let (ok, _, stderr) = preview(&typo, &[]);
    assert!(!ok);
    assert!(
        stderr.contains("spec.timezone: unknown field, did you mean timeZone?"),
        "{stderr}"
    );
    let (ok, _, stderr) = preview(&WEEKLY.replace("weekly-report", "weekly..report"), &[]);
    assert!(!ok);
    assert!(stderr.contains("metadata.name"), "{stderr}");
}
