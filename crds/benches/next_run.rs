//! Benchmark: next-run computations for 100,000 random specs over many zones.
//! Run with `cargo bench -p jtp-crds --bench next_run`; prints the time per computation.

use chrono::{DateTime, Duration, Utc};
use jtp_crds::{CompiledSchedule, IntervalUnit, JobId, ScheduledJobSpec, Weekday, validate};

const JOB: JobId<'static> = JobId {
    namespace: "default",
    name: "bench",
};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use std::hint::black_box;
use std::time::Instant;

const SPECS: usize = 100_000;

fn random_spec(rng: &mut StdRng) -> ScheduledJobSpec {
    let zones = chrono_tz::TZ_VARIANTS;
    let zone = zones.choose(rng).map_or("UTC", |z| z.name());
    let at = format!("{:02}:{:02}", rng.random_range(0..24), rng.random_range(0..60));
    let spec = match rng.random_range(0..6) {
        0 => ScheduledJobSpec::interval(rng.random_range(1..120), IntervalUnit::Minutes),
        1 => ScheduledJobSpec::hourly(rng.random_range(0..60)),
        2 => ScheduledJobSpec::daily(&at),
        3 => {
            let count = rng.random_range(1..4);
            let days: Vec<Weekday> = Weekday::ALL.choose_multiple(rng, count).copied().collect();
            ScheduledJobSpec::weekly(&days, &at)
        }
        4 => ScheduledJobSpec::monthly(rng.random_range(1..32), &at),
        _ => {
            let crons = [
                "*/5 * * * *",
                "0 9 * * 1-5",
                "30 2 * * *",
                "0 0 1 * *",
                "15 */3 * * *",
            ];
            ScheduledJobSpec::cron(crons.choose(rng).copied().unwrap_or("* * * * *"))
        }
    };
    spec.in_zone(zone)
}

fn main() {
    let mut rng = StdRng::seed_from_u64(7);
    let base = DateTime::<Utc>::from_timestamp(1_796_000_000, 0).unwrap_or_default();
    let specs: Vec<ScheduledJobSpec> = (0..SPECS).map(|_| random_spec(&mut rng)).collect();
    let instants: Vec<DateTime<Utc>> = (0..SPECS)
        .map(|_| base + Duration::seconds(rng.random_range(0..400 * 86_400)))
        .collect();

    let started = Instant::now();
    let compiled: Vec<CompiledSchedule> = specs.iter().filter_map(|s| validate(JOB, s).ok()).collect();
    let compile = started.elapsed();
    assert_eq!(compiled.len(), SPECS, "every random spec is valid");

    let started = Instant::now();
    let mut fired = 0usize;
    for (schedule, after) in compiled.iter().zip(&instants) {
        fired += usize::from(black_box(schedule.next_after(*after)).is_some());
    }
    let next = started.elapsed();

    let started = Instant::now();
    for (spec, after) in specs.iter().zip(&instants) {
        let schedule = validate(JOB, spec).ok();
        black_box(schedule.and_then(|s| s.next_after(*after)));
    }
    let both = started.elapsed();

    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / SPECS as f64;
    println!(
        "specs: {SPECS} random (6 forms, {} zones), {fired} with a next run",
        chrono_tz::TZ_VARIANTS.len()
    );
    println!("validate+compile:          {:>7.3} µs per spec", per(compile));
    println!("next_after (compiled):     {:>7.3} µs per computation", per(next));
    println!("validate + next_after:     {:>7.3} µs per computation", per(both));
    // The summary line of scripts/bench: name|figure|peer or limit|ratio|target|ok.
    let ok = if per(both) < 10.0 { "✔" } else { "✘" };
    println!(
        "BENCH|schedule engine: validate + next run, {SPECS} random specs|{:.2} µs ({:.2} µs compiled)|—|—|< 10 µs|{ok}",
        per(both),
        per(next)
    );
}
