//! Errors of the kernel crate.

/// What can go wrong when weights enter the kernels or a run is set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// The byte count does not match the type and shape.
    #[error("{wtype} tensor of {rows} x {cols} needs {expected} bytes, got {got}")]
    ByteCount {
        /// The weight type.
        wtype: crate::WeightType,
        /// Rows (outputs).
        rows: usize,
        /// Columns (inputs).
        cols: usize,
        /// Bytes the shape needs.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// Columns are not whole blocks of the type.
    #[error("{wtype} needs a multiple of {block} columns, got {cols}")]
    PartialBlock {
        /// The weight type.
        wtype: crate::WeightType,
        /// Its block length.
        block: usize,
        /// Columns given.
        cols: usize,
    },
    /// A shape too large to address.
    #[error("a {rows} x {cols} matrix is too large")]
    TooLarge {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
    },
    /// `TEKTRA_ISA` names a path this CPU cannot run, or no path at all.
    #[error("TEKTRA_ISA={value}: {reason}")]
    BadIsa {
        /// The value given.
        value: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A worker thread could not be started.
    #[error("cannot start kernel thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// A kernel thread panicked (a bug); the step's results are lost.
    #[error("a kernel thread panicked: {0}")]
    Panicked(String),
}
