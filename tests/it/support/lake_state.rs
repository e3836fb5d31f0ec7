//! What a lake holds, in a form two lakes can be compared by: the row count of every non-system
//! table and the contents of the tables a run's result shows in, each in an order that does not
//! depend on when or where the run happened. Crash and storage-fault tests compare a lake that went
//! through trouble with one a clean run left.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::project::Project;

/// The contents compared: every gold table a user reads, the silver table they come from, and
/// bronze's row and file counts (a duplicated or lost row or file shows there).
const CONTENTS: [&str; 6] = [
    "SELECT * FROM gold.movie_stats ORDER BY movie_id",
    "SELECT * FROM gold.genre_popularity ORDER BY genre",
    "SELECT * FROM gold.top_movies ORDER BY 1, 2",
    "SELECT user_id, rank, item_id FROM gold.user_recommendations ORDER BY user_id, rank",
    "SELECT * FROM silver.ratings ORDER BY user_id, movie_id",
    "SELECT count(*) AS n, count(DISTINCT _source_file) AS files FROM bronze.ratings",
];

/// Row counts of every non-system table, then [`CONTENTS`].
pub type LakeState = (BTreeMap<String, u64>, Vec<Vec<Value>>);

pub fn lake_state(project: &Project) -> LakeState {
    let rows = project
        .versions()
        .into_iter()
        .filter(|(table, _)| !table.starts_with("system."))
        .map(|(table, (_, rows))| (table, rows))
        .collect();
    (
        rows,
        CONTENTS.iter().map(|sql| project.query(sql)).collect(),
    )
}
