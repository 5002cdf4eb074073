//! Filesystem input: path normalisation and glob patterns, through the public API of the heap
//! filesystem (so that the targets hold whatever the walks and matchers become inside).

use crate::fs::{normalize, FsOptions, MemoryFileSystem, OpenMode};

/// The longest path or pattern a case uses (longer inputs are cut): enough for any shape,
/// small enough that a slow case is the code's fault, not the input's size.
const MAX_TEXT: usize = 256;
/// The most paths a glob case creates.
const MAX_PATHS: usize = 16;

fn text(data: &[u8]) -> String {
    let s = String::from_utf8_lossy(data);
    s.chars().take(MAX_TEXT).collect()
}

fn absolute(parts: &[String]) -> String {
    format!("/{}", parts.join("/"))
}

/// `fs::normalize` of an arbitrary string: a traversal error exactly when `..` climbs above
/// the root, otherwise clean components that normalise to themselves; and `mkdir` of the
/// same path in a filesystem makes it a directory that `is_dir` and `listdir` agree on.
pub fn path(data: &[u8]) {
    let s = text(data);
    let mut depth = 0usize;
    let mut climbs_out = false;
    for c in s.split(['/', '\\']) {
        match c {
            "" | "." => {}
            ".." => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => climbs_out = true,
            },
            _ => depth += 1,
        }
    }
    let Ok(parts) = normalize(&s) else {
        assert!(climbs_out, "normalize refused {s:?}");
        return;
    };
    assert!(!climbs_out, "normalize accepted the traversal {s:?}");
    assert_eq!(parts.len(), depth);
    for p in &parts {
        assert!(!p.is_empty() && p != "." && p != "..", "component {p:?}");
        assert!(!p.contains(['/', '\\']), "component {p:?}");
    }
    assert_eq!(normalize(&absolute(&parts)).ok().as_ref(), Some(&parts));

    let fs = MemoryFileSystem::new(FsOptions::new().max_quota(1 << 16));
    if fs.mkdir(&s, true).is_ok() {
        assert!(fs.is_dir(&s) && fs.is_dir(&absolute(&parts)));
        if let Some((last, parent)) = parts.split_last() {
            let names = fs.listdir(&absolute(parent)).expect("the parent exists");
            assert!(names.contains(last), "{last:?} not listed in its parent");
            fs.rmtree(&s).expect("a fresh directory can be removed");
            assert!(!fs.exists(&s));
        }
    }
}

/// `MemoryFileSystem::glob`: the input's first line is a pattern, the next lines paths to
/// create (a trailing `/` makes a directory). The result is sorted, each path once, each one
/// existing; a pattern without wildcards finds exactly its own path if it exists; `/**`
/// finds every path created (but the root, which no pattern finds).
pub fn glob(data: &[u8]) {
    let all = text_lines(data);
    let Some((pattern, paths)) = all.split_first() else {
        return;
    };
    let fs = MemoryFileSystem::new(FsOptions::new().max_quota(1 << 20));
    let mut made = Vec::new();
    for p in paths.iter().take(MAX_PATHS) {
        let Ok(parts) = normalize(p) else { continue };
        if p.ends_with('/') {
            if fs.mkdir(p, true).is_ok() {
                made.push(absolute(&parts));
            }
        } else if let Some((_, parent)) = parts.split_last() {
            if fs.mkdir(&absolute(parent), true).is_ok()
                && fs.open(p, OpenMode::Write, 0, None).is_ok()
            {
                made.push(absolute(&parts));
            }
        }
    }
    let found = fs
        .glob(pattern)
        .expect("a small tree's matches fit in memory");
    assert!(
        found.windows(2).all(|w| w[0] < w[1]),
        "unsorted or repeated"
    );
    for f in &found {
        assert!(fs.exists(f), "glob found {f:?}, which does not exist");
    }
    let comps: Vec<&str> = pattern
        .split(['/', '\\'])
        .filter(|c| !c.is_empty())
        .collect();
    let literal = comps
        .iter()
        .all(|c| !c.contains(['*', '?', '[']) && *c != "." && *c != "..");
    if literal && !comps.is_empty() {
        let whole = format!("/{}", comps.join("/"));
        let want: Vec<String> = if fs.exists(&whole) {
            vec![whole]
        } else {
            vec![]
        };
        assert_eq!(found, want, "literal pattern {pattern:?}");
    }
    let everything = fs.glob("/**").expect("a small tree fits in memory");
    for m in &made {
        if m != "/" && fs.exists(m) {
            assert!(everything.binary_search(m).is_ok(), "/** misses {m:?}");
        }
    }
}

/// Lines of the input as text, each cut to `MAX_TEXT` characters.
fn text_lines(data: &[u8]) -> Vec<String> {
    data.split(|&b| b == b'\n')
        .take(MAX_PATHS + 1)
        .map(text)
        .collect()
}
