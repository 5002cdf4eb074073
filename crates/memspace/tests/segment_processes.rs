//! Segments shared by real processes: the test binary re-executes itself as the child.

use memspace::{Error, Segment, SegmentError, SegmentOptions};

mod common;
use common::unique;

const CHILD_ENV: &str = "MEMSPACE_TEST_CHILD_SEGMENT";

/// Runs `child_entry` of this binary in a new process with `arg` in its environment.
fn run_child(arg: &str) {
    let status = common::child("child_entry", CHILD_ENV, arg)
        .status()
        .unwrap();
    assert!(status.success(), "child failed: {status}");
}

/// Not a test of its own: the body of the child process (does nothing when run normally).
#[test]
fn child_entry() {
    let Ok(arg) = std::env::var(CHILD_ENV) else {
        return;
    };
    let seg = match arg.split_once(':') {
        Some(("name", name)) => Segment::open_named(name).unwrap(),
        Some(("path", path)) => Segment::open_path(path).unwrap(),
        _ => panic!("bad child argument {arg:?}"),
    };
    // Check what the parent wrote, then answer.
    assert_eq!(seg.read_u64(0).unwrap(), 0x1234_5678);
    let mut buf = [0u8; 6];
    seg.read_at(8, &mut buf).unwrap();
    assert_eq!(&buf, b"parent");
    seg.write_at(64, b"child").unwrap();
    seg.write_u64(72, seg.len() as u64).unwrap();
}

fn exchange(seg: &Segment, arg: &str) {
    seg.write_u64(0, 0x1234_5678).unwrap();
    seg.write_at(8, b"parent").unwrap();
    run_child(arg);
    let mut buf = [0u8; 5];
    seg.read_at(64, &mut buf).unwrap();
    assert_eq!(&buf, b"child");
    assert_eq!(seg.read_u64(72).unwrap(), seg.len() as u64);
}

#[test]
fn named_segment_is_shared_with_a_child_process() {
    let name = unique("seg-named");
    let seg = Segment::create_named(&name, 8192).unwrap();
    exchange(&seg, &format!("name:{name}"));
    Segment::unlink_named(&name).unwrap();
    assert!(matches!(
        Segment::open_named(&name),
        Err(Error::Segment(SegmentError::NotFound { .. }))
    ));
}

#[test]
fn file_segment_is_shared_and_persists() {
    let path = common::temp_path("seg-file");
    {
        let seg = SegmentOptions::path(&path).size(4096).create().unwrap();
        exchange(&seg, &format!("path:{}", path.display()));
    }
    // Every mapping is gone; the data is still in the file.
    let again = Segment::open_path(&path).unwrap();
    let mut buf = [0u8; 5];
    again.read_at(64, &mut buf).unwrap();
    assert_eq!(&buf, b"child");
    Segment::unlink_path(&path).unwrap();
}
