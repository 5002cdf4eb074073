//! `_Signal`: one of a channel's eventcounts held apart from its handle, as each channel class
//! hands it out (`_signal("readable" | "writable")`) to the asyncio layer (`memspace.aio`),
//! which watches it with a `_Waiter` (see `aio.rs`).
//!
//! A shared helper so that every channel's feature file can build one without importing
//! another feature file.

use memspace::Signal;
use pyo3::prelude::*;

/// One eventcount of a channel (internal: `memspace.aio` uses it).
#[pyclass(module = "memspace._memspace", name = "_Signal", frozen)]
pub(crate) struct PySignal {
    pub(crate) sig: Signal,
}

impl PySignal {
    pub(crate) fn new(sig: Signal) -> Self {
        Self { sig }
    }
}

#[pymethods]
impl PySignal {
    /// Announces a waiter; returns the key to watch (then `cancel()` or `_Waiter.watch`).
    fn prepare(&self) -> u32 {
        self.sig.prepare()
    }

    /// Withdraws a `prepare()`.
    fn cancel(&self) {
        self.sig.cancel();
    }

    /// Whether a notify came after the `prepare()` that returned `key`.
    fn changed(&self, key: u32) -> bool {
        self.sig.changed(key)
    }

    /// Whether both are the same eventcount of the same mapping.
    fn same_as(&self, other: &PySignal) -> bool {
        self.sig.same_as(&other.sig)
    }
}
