use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{Event, Stage, State, Tracker};

fn recording(interval: Duration) -> (Tracker, Arc<Mutex<Vec<Event>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let tracker = Tracker::with_interval(
        Stage::Downloading,
        Arc::new(move |e: &Event| sink.lock().unwrap().push(e.clone())),
        interval,
    );
    (tracker, seen)
}

#[test]
fn byte_updates_are_rate_limited_but_states_are_not() {
    let (tracker, seen) = recording(Duration::from_secs(3600));
    let file = tracker.file("a.bin", Some(1000));
    file.set_state(State::Downloading);
    for _ in 0..100 {
        file.advance(10);
    }
    file.finish();
    let seen = seen.lock().unwrap();
    let states: Vec<State> = seen.iter().map(|e| e.state).collect();
    // queued, downloading, done: the 100 byte updates fell inside one interval.
    assert_eq!(states, [State::Queued, State::Downloading, State::Done]);
    assert_eq!(seen[2].bytes_done, 1000);
    assert_eq!(seen[2].aggregate.files_done, 1);
}

#[test]
fn nothing_is_reported_after_a_terminal_state() {
    let (tracker, seen) = recording(Duration::ZERO);
    let file = tracker.file("a.bin", Some(10));
    file.fail("disk full");
    file.advance(5);
    file.finish();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].state, State::Failed);
    assert_eq!(seen[1].message.as_deref(), Some("disk full"));
}

#[test]
fn aggregate_sums_files_and_knows_when_a_total_is_missing() {
    let (tracker, seen) = recording(Duration::ZERO);
    let a = tracker.file("a", Some(100));
    let b = tracker.file("b", Some(50));
    a.set_done(40); // a resumed partial: counted as done, not as moved
    b.advance(50);
    b.finish();
    let agg = tracker.aggregate();
    assert_eq!(agg.bytes_done, 90);
    assert_eq!(agg.bytes_total, Some(150));
    assert_eq!((agg.files_done, agg.files_total), (1, 2));
    let _c = tracker.file("c", None);
    assert_eq!(tracker.aggregate().bytes_total, None);
    assert!(seen.lock().unwrap().iter().all(|e| e.file.is_some()));
}

#[test]
fn rate_and_eta_follow_moved_bytes() {
    let (tracker, seen) = recording(Duration::ZERO);
    let file = tracker.file("a", Some(1_000_000));
    file.set_state(State::Downloading);
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(30));
        file.advance(10_000);
    }
    let seen = seen.lock().unwrap();
    let last = seen.last().unwrap();
    // 100 kB in about 300 ms: a rate of the right order, and an ETA to match.
    assert!(
        last.rate > 100_000.0 && last.rate < 1_000_000.0,
        "{}",
        last.rate
    );
    let eta = last.eta_secs.unwrap();
    assert!(eta > 0.5 && eta < 20.0, "{eta}");
}

#[test]
fn events_round_trip_through_json() {
    let (tracker, seen) = recording(Duration::ZERO);
    tracker.begin_stage(Stage::Loading, Some("model.gguf".into()));
    let file = tracker.file("model.gguf", Some(64));
    file.set_tensors_total(2);
    file.advance_tensor(32);
    for event in seen.lock().unwrap().iter() {
        let line = serde_json::to_string(event).unwrap();
        let back: Event = serde_json::from_str(&line).unwrap();
        assert_eq!(&back, event);
    }
    let last = seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(last.stage, Stage::Loading);
    assert_eq!((last.tensors_done, last.tensors_total), (Some(1), Some(2)));
}
