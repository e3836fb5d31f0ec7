//! Two writers racing on one table: two `strata serve` processes on the same lake appending rows
//! to the same bronze table at the same moments. Delta's optimistic commit lets one commit win
//! each version; the other finds the version taken, checks the winner for conflicts (blind
//! appends have none) and commits at the next one. No row may be lost or doubled, and every
//! version is one append.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};

use crate::support::project::Project;
use crate::support::s3::Backend;
use crate::support::serve::ServeProcess;

/// Appends each server receives, all in flight at once.
const APPENDS_PER_SERVER: u64 = 12;

async fn two_servers_appending_to_one_table_lose_and_double_no_row(backend: Backend) {
    let project = Project::movielens_on(backend);
    project.ok(&["run"]);
    let binary = Path::new(env!("CARGO_BIN_EXE_strata"));
    let servers = [
        ServeProcess::start(binary, &project, &[]),
        ServeProcess::start(binary, &project, &[]),
    ];
    let client = reqwest::Client::new();
    let appends = (0..2 * APPENDS_PER_SERVER).map(|i| {
        let url = format!(
            "{}/v1/tables/bronze.ratings/rows",
            servers[(i % 2) as usize].base
        );
        let row = json!([{"user_id": 1000 + i, "movie_id": 1, "rating": 3, "timestamp": 978_300_000 + i}]);
        let client = client.clone();
        async move {
            let response = client.post(url).json(&row).send().await.unwrap();
            let status = response.status().as_u16();
            (i, status, response.text().await.unwrap())
        }
    });
    let answers = futures::future::join_all(appends).await;
    let mut versions = BTreeSet::new();
    for (i, status, body) in &answers {
        assert_eq!(
            *status,
            200,
            "append {i}: {body}\n{:#?}",
            servers
                .iter()
                .flat_map(|s| s.log())
                .filter(|l| l.contains("ERROR"))
                .collect::<Vec<_>>()
        );
        let body: Value = serde_json::from_str(body).unwrap();
        assert!(
            versions.insert(body["version"].as_u64().unwrap()),
            "two appends answered version {}",
            body["version"]
        );
    }
    // Version 0 is the pipeline's ingest; each append is exactly one version after it.
    let expected: BTreeSet<u64> = (1..=2 * APPENDS_PER_SERVER).collect();
    assert_eq!(versions, expected);
    let appended = project.query(
        "SELECT count(*) AS n, count(DISTINCT user_id) AS users FROM bronze.ratings \
         WHERE user_id >= 1000",
    );
    assert_eq!(
        appended,
        vec![json!({"n": 2 * APPENDS_PER_SERVER, "users": 2 * APPENDS_PER_SERVER})]
    );
    for server in servers {
        let log = server.stop();
        assert!(!log.iter().any(|l| l.contains("panicked")), "{log:#?}");
    }
}

crate::on_every_lake!(async: two_servers_appending_to_one_table_lose_and_double_no_row);
