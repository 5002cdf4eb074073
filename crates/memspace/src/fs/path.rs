//! The path rules of every filesystem here: normalisation, joining, splitting.
//!
//! Paths are POSIX-like strings. Backslashes are read as slashes, a relative path is taken
//! from the root, `.` and empty components vanish, and `..` climbs one level, but never above
//! the root: a path that would is refused (it is a traversal attempt, not a path to clamp).

use super::error::{FsError, FsResult};
use crate::Result;

/// Splits `path` into its normalised components (the root is the empty list).
///
/// # Examples
///
/// ```
/// use memspace::fs::normalize;
///
/// assert_eq!(normalize("/a/./b//c/../d")?, ["a", "b", "d"]);
/// assert_eq!(normalize("x\\y")?, ["x", "y"]);
/// assert!(normalize("/").unwrap().is_empty());
/// assert!(normalize("/a/../../etc").is_err());
/// # Ok::<(), memspace::Error>(())
/// ```
pub fn normalize(path: &str) -> Result<Vec<String>> {
    Ok(components(path)?.into_iter().map(str::to_owned).collect())
}

/// [`normalize`] without copying the components (the hot paths use this).
pub(crate) fn components(path: &str) -> FsResult<Vec<&str>> {
    let mut parts: Vec<&str> = Vec::with_capacity(8);
    for part in path.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(FsError::PathTraversal {
                        path: path.to_owned(),
                    });
                }
            }
            name => parts.push(name),
        }
    }
    Ok(parts)
}

/// Splits a path into (parent components, name); the root has no name.
pub(crate) fn split(path: &str) -> FsResult<(Vec<String>, Option<String>)> {
    let mut parts: Vec<String> = components(path)?.into_iter().map(str::to_owned).collect();
    let name = parts.pop();
    Ok((parts, name))
}

/// The absolute path string of `parts` (`/` for the root).
pub(crate) fn join<S: AsRef<str>>(parts: &[S]) -> String {
    if parts.is_empty() {
        return "/".to_owned();
    }
    let mut s = String::with_capacity(parts.iter().map(|p| p.as_ref().len() + 1).sum());
    for p in parts {
        s.push('/');
        s.push_str(p.as_ref());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use proptest::prelude::*;

    #[test]
    fn basics() {
        assert_eq!(normalize("").unwrap(), Vec::<String>::new());
        assert_eq!(normalize("a/b").unwrap(), ["a", "b"]);
        assert_eq!(normalize("/a/b/..").unwrap(), ["a"]);
        assert_eq!(normalize("/a/..").unwrap(), Vec::<String>::new());
        assert!(matches!(
            normalize(".."),
            Err(Error::Fs(FsError::PathTraversal { .. }))
        ));
        assert!(matches!(
            normalize("/a/../.."),
            Err(Error::Fs(FsError::PathTraversal { .. }))
        ));
        assert_eq!(join(&normalize("//a///b/").unwrap()), "/a/b");
    }

    proptest! {
        #[test]
        fn normalized_paths_are_fixed_points(
            comps in proptest::collection::vec("[a-c]{1,2}|\\.|\\.\\.|", 0..10)
        ) {
            let path = comps.join("/");
            if let Ok(parts) = normalize(&path) {
                prop_assert!(parts.iter().all(|p| !p.is_empty() && p != "." && p != ".."));
                let again = normalize(&join(&parts)).unwrap();
                prop_assert_eq!(again, parts);
            }
        }

        #[test]
        fn traversal_is_refused_exactly_when_depth_goes_negative(
            comps in proptest::collection::vec("a|\\.\\.", 0..10)
        ) {
            let mut depth = 0i32;
            let mut bad = false;
            for c in &comps {
                if c == ".." { depth -= 1; if depth < 0 { bad = true; } } else { depth += 1; }
            }
            prop_assert_eq!(normalize(&comps.join("/")).is_err(), bad);
        }
    }
}
