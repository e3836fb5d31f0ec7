//! `strata restore` killed at random moments. A restore is one Delta commit that puts an old
//! version's files back, so a kill leaves the table either as it was or restored, never between;
//! the table always opens, and restoring again finishes the job. On a local and an S3 lake.

use std::time::Instant;

use super::seed_and_points;
use crate::support::project::Project;
use crate::support::s3::Backend;
use crate::support::seeded::Seeded;

/// What the restored table holds, in a comparable order.
const RATINGS: &str = "SELECT * FROM silver.ratings ORDER BY user_id, movie_id";

crate::on_every_lake!(restores_killed_at_random_points_leave_the_table_as_it_was_or_restored);

fn restores_killed_at_random_points_leave_the_table_as_it_was_or_restored(backend: Backend) {
    let (seed, points) = seed_and_points();
    let project = Project::movielens_on(backend);
    project.ok(&["run"]);
    let original = project.query(RATINGS);
    super::add_ratings(&project);
    project.ok(&["run"]);
    let newer = project.query(RATINGS);
    assert_ne!(original, newer, "the second run must change silver.ratings");

    // How long a whole restore takes here.
    let start = Instant::now();
    project.ok(&["restore", "silver.ratings", "--version", "0"]);
    let window = start.elapsed();
    project.ok(&["restore", "silver.ratings", "--version", "1"]);

    let mut rng = Seeded(seed);
    let (mut restored, mut untouched) = (0, 0);
    for point in 0..points {
        // Most of a restore is the process starting and reading the log; its one commit comes
        // last. Kills land in the last 30% of a clean restore and a little past it.
        let permille = 700 + rng.next() % 400;
        let delay = window * permille as u32 / 1000;
        let at = format!("seed {seed}, point {point}: restore killed after {delay:?}");
        let before = project.versions()["silver.ratings"].0;
        let mut child = project
            .command(&["restore", "silver.ratings", "--version", "0"])
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        // The table opens, at its version or one more, holding the old rows or the restored ones.
        let after = project.versions()["silver.ratings"].0;
        let rows = project.query(RATINGS);
        if after == before {
            untouched += 1;
            assert_eq!(rows, newer, "{at}: no new version, yet the rows changed");
        } else {
            restored += 1;
            assert_eq!(after, before + 1, "{at}: more than one version");
            assert_eq!(
                rows, original,
                "{at}: a new version that is not the restored one"
            );
        }
        // Restoring again finishes the job; then back to the newer rows for the next point.
        project.ok(&["restore", "silver.ratings", "--version", "0"]);
        assert_eq!(project.query(RATINGS), original, "{at}: restoring again");
        project.ok(&["restore", "silver.ratings", "--version", "1"]);
        assert_eq!(project.query(RATINGS), newer, "{at}: restoring forward");
    }
    eprintln!(
        "restore kill points: {restored} landed the restore, {untouched} left the table as it was"
    );
}
