//! A throwaway Strata project in a temp directory: config, raw files, SQL steps, lake; and a way to
//! run the real `strata` binary in it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Path of the repository (for its `sql/` directory).
pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    /// An empty project: lake in `lake/`, raw files in `raw/`, steps in `sql/`, no sample generation.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let project = Project { dir };
        project.write(
            "config/strata.toml",
            "[lake]\nroot = \"../lake\"\n[ingest]\nraw_dir = \"../raw\"\n[sql]\ndir = \"../sql\"\n\
             [sample]\ngenerate_if_empty = false\n",
        );
        std::fs::create_dir_all(project.path("raw")).unwrap();
        project
    }

    /// A project with the repository's MovieLens SQL steps and a small hand-written MovieLens dataset.
    pub fn movielens() -> Self {
        let project = Project::new();
        project.copy_repo_sql();
        project.write_raw("users.dat", USERS.as_bytes());
        project.write_raw("movies.dat", &latin1(MOVIES));
        project.write_raw("ratings.dat", RATINGS.as_bytes());
        project
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        self.write_bytes(rel, text.as_bytes());
    }

    pub fn write_bytes(&self, rel: &str, bytes: &[u8]) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    pub fn write_raw(&self, name: &str, bytes: &[u8]) {
        self.write_bytes(&format!("raw/{name}"), bytes);
    }

    pub fn copy_repo_sql(&self) {
        for layer in ["silver", "gold"] {
            let dir = repo_dir().join("sql").join(layer);
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_str().unwrap().to_string();
                std::fs::create_dir_all(self.path(&format!("sql/{layer}"))).unwrap();
                std::fs::copy(&path, self.path(&format!("sql/{layer}/{name}"))).unwrap();
            }
        }
    }

    /// Runs `strata ARGS` in the project directory with a clean `STRATA_*` environment.
    pub fn strata(&self, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
        command.current_dir(self.root()).args(args);
        for (key, _) in std::env::vars() {
            if key.starts_with("STRATA_") {
                command.env_remove(key);
            }
        }
        command.output().expect("strata runs")
    }

    /// Runs a command that must succeed and returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.strata(args);
        assert!(
            out.status.success(),
            "strata {args:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `strata tables --format json`, as (table -> (version, rows)).
    pub fn versions(&self) -> std::collections::BTreeMap<String, (u64, u64)> {
        let json: Value = serde_json::from_str(&self.ok(&["tables", "--format", "json"])).unwrap();
        json.as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["table"].as_str().unwrap().to_string(),
                    (t["version"].as_u64().unwrap(), t["rows"].as_u64().unwrap()),
                )
            })
            .collect()
    }

    /// `strata query SQL --format json` rows.
    pub fn query(&self, sql: &str) -> Vec<Value> {
        let out = self.ok(&["query", sql, "--format", "json"]);
        serde_json::from_str::<Value>(&out)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
            .as_array()
            .unwrap()
            .clone()
    }

    /// A single integer from a query such as `SELECT count(*) AS n FROM ...`.
    pub fn count(&self, sql: &str) -> i64 {
        let rows = self.query(sql);
        let row = rows[0].as_object().unwrap();
        row.values().next().unwrap().as_i64().unwrap()
    }
}

/// Encodes text as latin-1 (every char must be <= U+00FF), like MovieLens `.dat` files.
pub fn latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).expect("latin-1 character"))
        .collect()
}

pub const USERS: &str = "\
1::F::1::10::48067
2::M::56::16::70072
3::M::25::15::55117
4::M::45::7::02460
5::M::25::20::55455
6::F::50::9::55117
";

pub const MOVIES: &str = "\
1::Toy Story (1995)::Animation|Children's|Comedy
2::Jumanji (1995)::Adventure|Children's|Fantasy
3::Café au lait (Métisse) (1993)::Comedy
4::City of Lost Children, The (1995)::Adventure|Sci-Fi
5::Heat (1995)::Action|Crime|Thriller
";

/// 20 ratings; movie 5 is rated by nobody, user 6 rates nothing.
pub const RATINGS: &str = "\
1::1::5::978300760
1::2::3::978302109
1::3::4::978301968
2::1::4::978300275
2::2::2::978824291
2::4::5::978302268
3::1::3::978302039
3::3::5::978300719
3::4::4::978302268
4::1::5::978824351
4::2::1::978301953
4::3::3::978300760
4::4::4::978302109
5::1::2::978301968
5::2::4::978300275
5::3::1::978824291
5::4::3::978302268
1::4::2::978302039
2::3::4::978300719
3::2::5::978302268
";
