//! The in-memory filesystem from Rust: a hard quota, all-or-nothing imports, file locks.
//!
//! `cargo run --example fs`

use std::time::Duration;

use memspace::fs::{FsOptions, MemoryFileSystem, OpenMode};
use memspace::Error;

fn main() -> Result<(), Error> {
    let fs = MemoryFileSystem::new(FsOptions::new().max_quota(64 * 1024).max_nodes(Some(100)));
    fs.mkdir("/logs", false)?;

    let mut log = fs.open("/logs/app.log", OpenMode::Append, 0, None)?;
    for i in 0..10 {
        log.write(format!("line {i}\n").as_bytes())?;
    }
    // While the log is open for writing, a reader that will not wait is refused...
    let busy = fs.open("/logs/app.log", OpenMode::Read, 0, Some(Duration::ZERO));
    println!("reader while writing: {}", busy.unwrap_err());
    // ...but a snapshot copies what has been written so far, without waiting.
    println!("snapshot: {} bytes", fs.read_file("/logs/app.log")?.len());
    log.close();

    // The quota is checked before anything is allocated or written.
    let big = vec![0u8; 100 * 1024];
    let err = fs.import_tree([("/data/a.bin", &b"small"[..]), ("/data/big.bin", &big[..])]);
    println!("import of 100 KiB into 64 KiB: {}", err.unwrap_err());
    println!("nothing was imported: {}", !fs.exists("/data"));

    let st = fs.stats();
    println!(
        "{} files, {} dirs, {} of {} bytes used",
        st.file_count, st.dir_count, st.used_bytes, st.quota_bytes
    );
    fs.rmtree("/logs")?;
    assert_eq!(fs.stats().used_bytes, 0);
    Ok(())
}
