use std::sync::atomic::{AtomicUsize, Ordering};

use tektra_kernels::Pool;

#[test]
fn every_chunk_runs_once_across_many_ops() {
    let pool = Pool::new(3).unwrap();
    let hits: Vec<AtomicUsize> = (0..1000).map(|_| AtomicUsize::new(0)).collect();
    for _ in 0..50 {
        pool.run(|team| {
            for n in [1, 7, 1000, 0, 3] {
                team.for_each(n, |i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
            }
        })
        .unwrap();
    }
    // Chunk i ran once per op whose count exceeds i, 50 times.
    for (i, h) in hits.iter().enumerate() {
        let per_step = [1, 7, 1000, 0, 3].iter().filter(|&&n| n > i).count();
        assert_eq!(h.load(Ordering::Relaxed), 50 * per_step, "chunk {i}");
    }
}

#[test]
fn a_panic_in_a_step_is_an_error_and_the_pool_still_works() {
    let pool = Pool::new(2).unwrap();
    let err = pool
        .run(|team| {
            team.for_each(4, |i| {
                if i == 2 {
                    panic!("chunk two");
                }
            });
            team.barrier();
        })
        .unwrap_err();
    assert!(err.to_string().contains("panicked"), "{err}");
    let count = AtomicUsize::new(0);
    pool.run(|team| {
        team.for_each(10, |_| {
            count.fetch_add(1, Ordering::Relaxed);
        })
    })
    .unwrap();
    assert_eq!(count.load(Ordering::Relaxed), 10);
}
