//! The native module `memspace._memspace`: argument conversion, GIL release and error mapping
//! over the `memspace` core. No logic of its own lives here.

// PyO3 fixes the shapes of many signatures here (`self` on protocol methods, `Bound` taken by
// value), so these two pedantic lints only produce noise in this crate.
#![allow(clippy::needless_pass_by_value, clippy::unused_self)]

// Shared helpers (the lower floor): feature files import only these and the core.
mod args;
mod error;
mod export;
mod gil;
mod guard;
mod handle;
mod object;
mod signal;
mod value;

// One file per Python class family (the upper floor): none imports another.
mod aio;
mod broadcast;
mod fs;
mod lock;
mod queue;
mod ring;
mod shared_fs;
mod shm;
mod view;

use pyo3::prelude::*;

/// The native half of the `memspace` package. Import `memspace`, not this module.
#[pymodule]
#[pyo3(name = "_memspace", gil_used = false)]
fn memspace_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<shm::PySharedMemory>()?;
    m.add_class::<fs::PyFileSystem>()?;
    m.add_class::<fs::PyFileHandle>()?;
    m.add_class::<shared_fs::PySharedFileSystem>()?;
    m.add_class::<shared_fs::PySharedFileHandle>()?;
    m.add_class::<shared_fs::PySharedView>()?;
    m.add_function(wrap_pyfunction!(shm::_reopen_segment, m)?)?;
    m.add_function(wrap_pyfunction!(shm::_list_segments, m)?)?;
    m.add_class::<lock::PyMutex>()?;
    m.add_class::<lock::PyRwLock>()?;
    m.add_class::<guard::PyLockGuard>()?;
    m.add_class::<view::PyView>()?;
    m.add_class::<queue::PyQueue>()?;
    m.add_class::<queue::PyQueueView>()?;
    m.add_class::<ring::PyRing>()?;
    m.add_class::<ring::PyRingView>()?;
    m.add_class::<ring::PyRingReservation>()?;
    m.add_class::<broadcast::PyBroadcast>()?;
    m.add_class::<broadcast::PyBroadcastView>()?;
    m.add_class::<broadcast::PyBroadcastReservation>()?;
    m.add_function(wrap_pyfunction!(broadcast::_reopen_broadcast, m)?)?;
    m.add_class::<export::MessageBytes>()?;
    m.add_class::<signal::PySignal>()?;
    m.add_class::<aio::PyWaiter>()?;
    m.add_function(wrap_pyfunction!(handle::_reopen, m)?)?;
    m.add_function(wrap_pyfunction!(handle::_staleness, m)?)?;
    m.add_function(wrap_pyfunction!(handle::_header_report, m)?)?;
    Ok(())
}
