use super::*;

fn counts(pairs: &[(&str, u64)]) -> Baseline {
    Baseline::from_counts(pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect())
}

#[test]
fn verdicts_follow_the_tolerance() {
    let before = counts(&[
        ("same", 1_000_000),
        ("up", 1_000_000),
        ("down", 1_000_000),
        ("gone", 50_000),
    ]);
    let after = counts(&[
        ("same", 1_029_000),
        ("up", 1_031_000),
        ("down", 900_000),
        ("fresh", 70_000),
    ]);
    let rows = compare(&before, &after, 3.0);
    let verdict = |n: &str| rows.iter().find(|r| r.name == n).map(|r| r.verdict);
    assert_eq!(verdict("same"), Some(Verdict::Same));
    assert_eq!(verdict("up"), Some(Verdict::Regressed));
    assert_eq!(verdict("down"), Some(Verdict::Improved));
    assert_eq!(verdict("gone"), Some(Verdict::Missing));
    assert_eq!(verdict("fresh"), Some(Verdict::New));
    assert!(failed(&rows));
    let table = render(&rows, 3.0);
    assert!(table.contains("REGRESSED"), "{table}");
    assert!(table.contains("+3.10%"), "{table}");
}

#[test]
fn a_path_that_ran_nothing_is_not_run_not_passed() {
    let rows = compare(&counts(&[("k", 2_000_000)]), &counts(&[("k", 120)]), 3.0);
    assert_eq!(rows[0].verdict, Verdict::NotRun);
    assert!(!failed(&rows));
    assert!(render(&rows, 3.0).contains("NOT RUN"));
}

#[test]
fn within_tolerance_passes() {
    let rows = compare(
        &counts(&[("k", 1_000_000)]),
        &counts(&[("k", 1_000_001)]),
        3.0,
    );
    assert!(!failed(&rows));
}

#[test]
fn reads_gungraun_json_lines() {
    let line = r#"{"module_path":"gate::kernels::matvec","id":"q4_1_avx2","profiles":[{"tool":"Callgrind","data":{"total":{"metrics":{"Ir":{"values":{"new":123456}}}}}}]}"#;
    let text = format!("noise\n{line}\n");
    let b = Baseline::from_gungraun(Path::new("run.json"), &text).unwrap();
    assert_eq!(b.counts.get("kernels::matvec::q4_1_avx2"), Some(&123_456));
}

#[test]
fn a_run_without_summaries_is_an_error() {
    let err = Baseline::from_gungraun(Path::new("run.json"), "nothing here\n").unwrap_err();
    assert!(err.to_string().contains("no benchmark summaries"), "{err}");
    let err =
        Baseline::from_gungraun(Path::new("run.json"), "{\"module_path\":\"a::b\"}\n").unwrap_err();
    assert!(err.to_string().contains("no callgrind Ir"), "{err}");
}

#[test]
fn baseline_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.json");
    let mut b = counts(&[("a", 1), ("b", 2)]);
    b.about = "x".into();
    b.write(&path).unwrap();
    assert_eq!(Baseline::read(&path).unwrap(), b);
}
