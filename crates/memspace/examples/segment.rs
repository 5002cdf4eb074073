//! Share a counter and a message between two runs of this program.
//!
//! ```sh
//! cargo run --example segment -- write   # creates /memspace-example and writes into it
//! cargo run --example segment -- read    # opens it, reads, removes it
//! ```

use memspace::{Segment, SegmentOptions};

const NAME: &str = "/memspace-example";

fn main() -> Result<(), memspace::Error> {
    match std::env::args().nth(1).as_deref() {
        Some("write") => {
            let seg = SegmentOptions::named(NAME).size(4096).create()?;
            seg.write_u64(0, 42)?;
            seg.write_at(8, b"hello from another process")?;
            println!("wrote to {NAME}; now run: cargo run --example segment -- read");
        }
        Some("read") => {
            let seg = Segment::open_named(NAME)?;
            let mut msg = [0u8; 26];
            seg.read_at(8, &mut msg)?;
            println!(
                "counter = {}, message = {:?}",
                seg.read_u64(0)?,
                String::from_utf8_lossy(&msg)
            );
            Segment::unlink_named(NAME)?;
        }
        _ => eprintln!("usage: segment (write|read)"),
    }
    Ok(())
}
