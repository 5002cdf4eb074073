//! The only module that calls the operating system directly.
//!
//! Each platform gets one file with the same small set of functions. Linux is first-class;
//! the other Unix flavours share most of it; Windows compiles and reports
//! [`Error::Unsupported`](crate::Error::Unsupported) until a machine exists to write and test
//! its primitives on.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(not(target_os = "linux"))]
mod other;
#[cfg(not(target_os = "linux"))]
pub(crate) use other::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;
