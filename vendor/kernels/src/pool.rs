//! A thread team for whole forward steps.
//!
//! `Pool::run(f)` runs `f(&team)` on the caller and on every worker at
//! once; inside, ops split their work into chunks that threads claim from
//! one atomic counter (so a thread the noisy VM slows down simply claims
//! fewer), and each op ends at a barrier. One step is one wake-up of the
//! workers instead of one hand-off per op. Workers spin briefly between
//! steps (generation sends them back to back), then sleep.

use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::KernelError;

/// How long an idle worker spins before it sleeps.
const IDLE_SPIN: Duration = Duration::from_micros(300);
/// Spins at a barrier between yields of the time slice.
const BARRIER_SPINS: u32 = 2000;

type Job<'a> = &'a (dyn Fn(&Team) + Sync);

struct Shared {
    threads: usize,
    /// The job of the current step, lifetime-erased; valid while `run` waits.
    job: Mutex<Option<Job<'static>>>,
    wake: Condvar,
    step: AtomicUsize,
    finished: AtomicUsize,
    quit: AtomicBool,
    panicked: Mutex<Option<String>>,
    failed: AtomicBool,
    chunk: AtomicUsize,
    arrived: AtomicUsize,
    sense: AtomicBool,
}

/// A persistent team of threads; the caller of [`Pool::run`] is thread 0.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    busy: Mutex<()>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pool({} threads)", self.shared.threads)
    }
}

/// A thread's handle inside a step: its index and the team's ops.
pub struct Team<'a> {
    shared: &'a Shared,
    id: usize,
    /// Counter value where the current op's chunks start; every thread
    /// advances it identically (chunks of the op plus one failed claim per
    /// thread), so the counter never needs resetting.
    base: Cell<usize>,
    sense: Cell<bool>,
}

impl Pool {
    /// A team of `threads` (at least 1; the caller is one of them).
    ///
    /// # Errors
    /// [`KernelError::Spawn`] when a worker cannot start.
    pub fn new(threads: usize) -> Result<Pool, KernelError> {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            threads,
            job: Mutex::new(None),
            wake: Condvar::new(),
            step: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            quit: AtomicBool::new(false),
            panicked: Mutex::new(None),
            failed: AtomicBool::new(false),
            chunk: AtomicUsize::new(0),
            arrived: AtomicUsize::new(0),
            sense: AtomicBool::new(false),
        });
        let mut workers = Vec::new();
        for id in 1..threads {
            let s = Arc::clone(&shared);
            let handle = std::thread::Builder::new()
                .name(format!("tektra-kernel-{id}"))
                .spawn(move || worker(&s, id))
                .map_err(KernelError::Spawn)?;
            workers.push(handle);
        }
        Ok(Pool {
            shared,
            workers,
            busy: Mutex::new(()),
        })
    }

    /// Threads in the team.
    #[must_use]
    pub fn threads(&self) -> usize {
        self.shared.threads
    }

    /// Runs `f` on every thread of the team and returns when all are done.
    ///
    /// # Errors
    /// [`KernelError::Panicked`] when `f` panicked on any thread (a bug);
    /// the team stays usable.
    pub fn run<F: Fn(&Team) + Sync>(&self, f: F) -> Result<(), KernelError> {
        let _one_step_at_a_time = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        let s = &*self.shared;
        let job: Job<'_> = &f;
        // SAFETY: the erased reference is only used by workers between the
        // step increment below and their `finished` increment, and this
        // function waits for every worker's increment before returning (and
        // thus before `f` is dropped).
        let job: Job<'static> = unsafe { std::mem::transmute::<Job<'_>, Job<'static>>(job) };
        s.failed.store(false, Ordering::Relaxed);
        s.finished.store(0, Ordering::Relaxed);
        s.chunk.store(0, Ordering::Relaxed);
        {
            // The step moves under the lock a sleeping worker checks it
            // under, so no wake-up is lost.
            let mut slot = s.job.lock().unwrap_or_else(|e| e.into_inner());
            *slot = Some(job);
            s.step.fetch_add(1, Ordering::Release);
        }
        s.wake.notify_all();
        let ran = execute(s, 0, job);
        // Wait for the workers, spinning then yielding.
        let mut spins = 0u32;
        while s.finished.load(Ordering::Acquire) < s.threads - 1 {
            spins += 1;
            if spins < BARRIER_SPINS {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        *s.job.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let other = s.panicked.lock().unwrap_or_else(|e| e.into_inner()).take();
        match (ran, other) {
            (Err(msg), _) | (Ok(()), Some(msg)) => Err(KernelError::Panicked(msg)),
            (Ok(()), None) => Ok(()),
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.quit.store(true, Ordering::Release);
        {
            let _guard = self.shared.job.lock();
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs the job as thread `id`; a panic marks the step failed so the other
/// threads leave their barriers instead of waiting forever.
fn execute(s: &Shared, id: usize, job: Job<'_>) -> Result<(), String> {
    let team = Team {
        shared: s,
        id,
        base: Cell::new(0),
        sense: Cell::new(s.sense.load(Ordering::Acquire)),
    };
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&team)));
    out.map_err(|p| {
        s.failed.store(true, Ordering::Release);
        panic_message(&*p)
    })
}

fn worker(s: &Shared, id: usize) {
    let mut seen = 0usize;
    loop {
        // Wait for a new step: spin a little, then sleep on the condvar.
        let started = Instant::now();
        loop {
            if s.quit.load(Ordering::Acquire) {
                return;
            }
            if s.step.load(Ordering::Acquire) != seen {
                break;
            }
            if started.elapsed() < IDLE_SPIN {
                std::hint::spin_loop();
                continue;
            }
            let guard = s.job.lock().unwrap_or_else(|e| e.into_inner());
            if s.step.load(Ordering::Acquire) == seen && !s.quit.load(Ordering::Acquire) {
                let _unused = s
                    .wake
                    .wait_timeout(guard, Duration::from_millis(100))
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
        seen = s.step.load(Ordering::Acquire);
        let job = *s.job.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(job) = job
            && let Err(msg) = execute(s, id, job)
        {
            *s.panicked.lock().unwrap_or_else(|e| e.into_inner()) = Some(msg);
        }
        s.finished.fetch_add(1, Ordering::Release);
    }
}

impl Team<'_> {
    /// This thread's index (0 is the caller of `run`).
    #[must_use]
    pub fn id(&self) -> usize {
        self.id
    }

    /// Threads in the team.
    #[must_use]
    pub fn threads(&self) -> usize {
        self.shared.threads
    }

    /// Waits until every thread has arrived. Panics (ending this thread's
    /// part of the step) when another thread panicked, so none waits forever.
    pub fn barrier(&self) {
        let s = self.shared;
        if s.threads == 1 {
            return;
        }
        let sense = !self.sense.get();
        self.sense.set(sense);
        if s.arrived.fetch_add(1, Ordering::AcqRel) == s.threads - 1 {
            s.arrived.store(0, Ordering::Relaxed);
            s.sense.store(sense, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while s.sense.load(Ordering::Acquire) != sense {
            if s.failed.load(Ordering::Acquire) {
                // Leave the barrier count consistent for the next step.
                s.arrived.store(0, Ordering::Relaxed);
                s.sense.store(sense, Ordering::Release);
                // Unwinds this thread out of the step too; `execute` catches
                // it and the step returns the first thread's error.
                #[allow(clippy::panic)]
                std::panic::panic_any(String::from("another kernel thread panicked"));
            }
            spins += 1;
            if spins < BARRIER_SPINS {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Calls `f(i)` for every chunk index `i` in `0..chunks`, each exactly
    /// once across the team, then waits at the barrier.
    pub fn for_each(&self, chunks: usize, mut f: impl FnMut(usize)) {
        let base = self.base.get();
        loop {
            let i = self.shared.chunk.fetch_add(1, Ordering::Relaxed) - base;
            if i >= chunks {
                break;
            }
            f(i);
        }
        self.base.set(base + chunks + self.shared.threads);
        self.barrier();
    }

    /// Runs `f` on thread 0 only, then waits at the barrier.
    pub fn single(&self, f: impl FnOnce()) {
        if self.id == 0 {
            f();
        }
        self.barrier();
    }
}

/// A buffer threads of a team write disjoint parts of during an op and
/// read after the op's barrier. Access goes through the ops of this crate,
/// which uphold that discipline; outside a step it is a plain buffer.
pub struct SharedBuf<T> {
    data: UnsafeCell<Vec<T>>,
}

// SAFETY: concurrent access is limited to disjoint writes within one op
// and reads after a barrier (a happens-before edge), by the ops' design.
unsafe impl<T: Send> Sync for SharedBuf<T> {}

impl<T: Copy + Default> SharedBuf<T> {
    /// `len` default values.
    #[must_use]
    pub fn new(len: usize) -> Self {
        SharedBuf {
            data: UnsafeCell::new(vec![T::default(); len]),
        }
    }
}

impl<T> SharedBuf<T> {
    /// Length.
    #[must_use]
    pub fn len(&self) -> usize {
        // SAFETY: the Vec's length never changes after creation.
        unsafe { (*self.data.get()).len() }
    }

    /// Whether it is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The contents, outside a step.
    pub fn get_mut(&mut self) -> &mut [T] {
        self.data.get_mut()
    }

    /// Reads, for ops: no thread writes the buffer during the current op.
    ///
    /// # Safety
    /// No thread writes any part of the buffer until the next barrier.
    pub(crate) unsafe fn read(&self) -> &[T] {
        // SAFETY: per the contract.
        unsafe { &*self.data.get() }
    }

    /// A raw pointer for disjoint writes within an op.
    pub(crate) fn ptr(&self) -> *mut T {
        // SAFETY: taking the pointer creates no reference to the contents.
        unsafe { (*self.data.get()).as_mut_ptr() }
    }
}

impl<T> std::fmt::Debug for SharedBuf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedBuf({} items)", self.len())
    }
}
