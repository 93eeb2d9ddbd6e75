//! The event fixtures in `events/<function>/<case>.json` (the shapes AWS sends), for the
//! functions' unit tests, `scripts/invoke` and `cargo lambda invoke --data-file`.

use std::collections::BTreeSet;
use std::path::PathBuf;

/// Stands where a fixture needs a valid bearer token; `scripts/invoke` and the tests put one in.
pub const TOKEN_PLACEHOLDER: &str = "REPLACE_WITH_scripts/token";

fn folder(function: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../events")).join(function)
}

/// The text of `events/<function>/<case>.json`.
pub fn load(function: &str, case: &str) -> String {
    let path = folder(function).join(format!("{case}.json"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The same, with `token` where the fixture has [`TOKEN_PLACEHOLDER`].
pub fn load_with_token(function: &str, case: &str, token: &str) -> String {
    load(function, case).replace(TOKEN_PLACEHOLDER, token)
}

/// Every case of a function, so a test can insist that it covers them all.
pub fn cases(function: &str) -> BTreeSet<String> {
    let dir = folder(function);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".json").map(str::to_owned)
        })
        .collect()
}

/// Fails unless `named` are exactly the cases in `events/<function>/`, so a new fixture
/// cannot go untested.
pub fn assert_covered<'a>(function: &str, named: impl IntoIterator<Item = &'a str>) {
    let named: BTreeSet<String> = named.into_iter().map(str::to_owned).collect();
    assert_eq!(
        named,
        cases(function),
        "every fixture in events/{function}/ has a case"
    );
}
