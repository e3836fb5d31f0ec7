//! The dashboard (`/ui`) through the real server: every page answers HTML, every link it shows
//! resolves, errors are pages, forms do what they say, and with auth on the sign-in cookie, the
//! CSRF check and the roles hold. The same pages in a real browser: `browser.rs`.

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};

use crate::api::{TestServer, auth_on, built_project, rerated_project, signed};
use crate::penguins::Example;

/// An attribute value as the browser reads it (askama writes `&` as `&#38;`).
fn unescape(href: &str) -> String {
    href.replace("&#38;", "&").replace("&amp;", "&")
}

/// Every `href="/ui..."` of an HTML page, unescaped.
fn ui_links(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|href| href.starts_with("/ui"))
        .map(unescape)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_runs_as_a_grid_and_every_link_it_shows_resolves() {
    let project = tokio::task::spawn_blocking(built_project).await.unwrap();
    let server = TestServer::start(&project, "").await;
    let run_id = project.query("SELECT run_id FROM system.runs")[0]["run_id"]
        .as_str()
        .unwrap()
        .to_string();

    // /ui opens the runs grid.
    let response = server.get("/ui").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.url().path(), "/ui/runs");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let grid = response.text().await.unwrap();
    assert!(
        grid.contains(&format!("href=\"/ui/runs/{run_id}\"")),
        "{grid}"
    );
    assert!(grid.contains("<table class=\"grid\">"), "{grid}");
    // Every step of the run has a cell, coloured by its status and named for screen readers.
    assert!(
        grid.contains("aria-label=\"silver.ratings: committed\""),
        "{grid}"
    );
    assert!(
        grid.contains("aria-label=\"gold.recommendations: committed\""),
        "{grid}"
    );

    // Cached under the run log's versions, like the API: a repeat with the ETag gets 304.
    let again = server.get("/ui/runs").await;
    let etag = again.headers()["etag"].to_str().unwrap().to_string();
    let revalidated = server
        .client
        .get(server.url("/ui/runs"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);

    let links = ui_links(&grid);
    assert!(
        links.iter().any(|l| l.starts_with("/ui/assets/style.")),
        "{links:?}"
    );
    for link in &links {
        let response = server.get(link).await;
        assert_eq!(response.status(), StatusCode::OK, "{link}");
        if link.starts_with("/ui/assets/") {
            assert_eq!(
                response.headers()["cache-control"],
                "public, max-age=31536000, immutable"
            );
            assert!(
                response.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/css")
            );
        }
    }

    let run = server
        .get(&format!("/ui/runs/{run_id}"))
        .await
        .text()
        .await
        .unwrap();
    for step in ["bronze.ratings", "silver.ratings", "gold.movie_stats"] {
        assert!(
            run.contains(&format!("<a href=\"/ui/tables/{step}\">{step}</a>")),
            "{step}: {run}"
        );
    }
    // The timeline draws one bar per attempt, named for screen readers.
    assert!(run.contains("<svg class=\"timeline\""), "{run}");
    assert!(
        run.contains("<title>silver.ratings: committed from +"),
        "{run}"
    );
    // Each attempt links the table versions it read.
    assert!(
        run.contains("href=\"/ui/tables/bronze.ratings?version=0\""),
        "{run}"
    );
    for link in ui_links(&run) {
        assert_eq!(server.get(&link).await.status(), StatusCode::OK, "{link}");
    }

    // Errors under /ui are pages, not JSON.
    for (path, words) in [
        ("/ui/runs/no-such-run", "Run not found"),
        ("/ui/nowhere", "Not found"),
        ("/ui/assets/style.000000000000.css", "Not found"),
    ] {
        let response = server.get(path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(response.text().await.unwrap().contains(words), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_pages_link_versions_to_runs_and_mark_the_changed_cells_of_a_diff() {
    let project = tokio::task::spawn_blocking(rerated_project).await.unwrap();
    let server = TestServer::start(&project, "").await;

    let catalog = server.get("/ui/tables").await.text().await.unwrap();
    assert!(
        catalog.contains("href=\"/ui/tables/silver.ratings\""),
        "{catalog}"
    );
    let page = server
        .get("/ui/tables/silver.ratings")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("<td>rating</td>"), "{page}");
    // Each version links to the run that wrote it and to its diff with the one before.
    let runs = project.query("SELECT run_id FROM system.runs");
    for run in &runs {
        let run_id = run["run_id"].as_str().unwrap();
        assert!(
            page.contains(&format!("href=\"/ui/runs/{run_id}\"")),
            "{page}"
        );
    }
    assert!(
        page.contains("href=\"/ui/tables/silver.ratings/diff?from=0&amp;to=1\""),
        "{page}"
    );
    links_resolve(&server, &page).await;

    let diff = server
        .get("/ui/tables/silver.ratings/diff?from=0&to=1")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        diff.contains("<td class=\"changed\"><del>4</del> → <ins>1</ins></td>"),
        "{diff}"
    );

    for (path, status) in [
        ("/ui/tables/silver.nothing", 404),
        ("/ui/tables/silver.ratings/diff?from=9", 404),
        ("/ui/tables/silver.ratings/diff?from=0&key=nope", 400),
        ("/ui/tables/silver.ratings/diff", 400),
    ] {
        let response = server.get(path).await;
        assert_eq!(response.status().as_u16(), status, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
}

/// Every link of `html` answers 200 (ampersands unescaped).
async fn links_resolve(server: &TestServer, html: &str) {
    for link in ui_links(html) {
        assert_eq!(server.get(&link).await.status(), StatusCode::OK, "{link}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_preview_filters_sorts_pages_travels_in_time_and_downloads_csv() {
    let project = tokio::task::spawn_blocking(rerated_project).await.unwrap();
    let server = TestServer::start(&project, "").await;

    // A submitted form leaves empty fields behind: they are ignored.
    let page = server
        .get("/ui/tables/silver.ratings?version=&as_of=&filter=user_id%3Aeq%3A6&filter=&order_by=-rating&columns=&limit=10")
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    let body = page.split("<table class=\"preview\">").nth(1).unwrap();
    let body = body.split("</table>").next().unwrap();
    // User 6's two ratings, highest first; the sorted column says so to screen readers.
    let first_row = body.split("<tr>").nth(2).unwrap();
    assert!(
        first_row.contains("<td>6</td>") && first_row.contains("<td>5</td>"),
        "{body}"
    );
    assert!(
        !body.contains("<td>1</td><td>1</td>"),
        "only user 6: {body}"
    );
    assert!(body.contains("aria-sort=\"descending\""), "{body}");
    links_resolve(&server, &page).await;

    // The CSV link is the API's CSV of the same rows.
    let csv_href = page
        .split("href=\"")
        .filter_map(|rest| rest.split('"').next())
        .find(|href| href.contains("/rows?"))
        .map(unescape)
        .unwrap();
    let csv = server.get(&csv_href).await;
    assert_eq!(csv.status(), StatusCode::OK, "{csv_href}");
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = csv.text().await.unwrap();
    assert_eq!(
        csv.lines().count(),
        3,
        "a header and user 6's two rows: {csv}"
    );

    // Version 0 is the table before user 6 re-rated movie 2.
    let old = server
        .get("/ui/tables/silver.ratings?version=0&filter=user_id:eq:6&order_by=movie_id")
        .await
        .text()
        .await
        .unwrap();
    assert!(old.contains("version 0 (latest is"), "{old}");
    let new = server
        .get("/ui/tables/silver.ratings?filter=user_id:eq:6&order_by=movie_id")
        .await
        .text()
        .await
        .unwrap();
    assert_ne!(
        old.split("<table class=\"preview\">").nth(1),
        new.split("<table class=\"preview\">").nth(1)
    );

    for (path, status) in [
        ("/ui/tables/silver.ratings?version=99", 404),
        ("/ui/tables/silver.ratings?filter=nope:eq:1", 400),
        ("/ui/tables/silver.ratings?as_of=yesterday", 400),
    ] {
        let response = server.get(path).await;
        assert_eq!(response.status().as_u16(), status, "{path}");
        assert!(
            response.text().await.unwrap().contains("<!doctype html>"),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_names_the_exact_upstream_versions_and_the_graph_links_every_step() {
    let project = tokio::task::spawn_blocking(built_project).await.unwrap();
    let server = TestServer::start(&project, "").await;

    let lineage = server
        .get("/ui/tables/gold.movie_stats/lineage")
        .await
        .text()
        .await
        .unwrap();
    // gold.movie_stats reads silver tables, which read bronze ones: each at the version it read.
    for upstream in ["silver.movie_ratings @ ", "bronze.ratings @ 0"] {
        assert!(lineage.contains(upstream), "{upstream}: {lineage}");
    }
    let movie_stats_at = lineage.find("gold.movie_stats @").unwrap();
    let ratings_at = lineage.find("bronze.ratings @").unwrap();
    assert!(
        movie_stats_at < ratings_at,
        "the table first, then its inputs: {lineage}"
    );
    links_resolve(&server, &lineage).await;

    let graph = server.get("/ui/graph").await.text().await.unwrap();
    assert!(graph.contains("<svg class=\"graph\""), "{graph}");
    for step in [
        "bronze.ratings",
        "silver.ratings",
        "gold.movie_stats",
        "gold.recommendations",
    ] {
        assert!(
            graph.contains(&format!("<title>{step} (")),
            "{step}: {graph}"
        );
    }
    // An edge per read, drawn and titled.
    assert!(
        graph.contains("<title>silver.ratings reads bronze.ratings</title>"),
        "{graph}"
    );
    links_resolve(&server, &graph).await;

    // Focused on a step: only its upstream and downstream, and its charts.
    let focused = server
        .get("/ui/graph?focus=silver.users")
        .await
        .text()
        .await
        .unwrap();
    assert!(focused.contains("<title>bronze.users ("), "{focused}");
    assert!(!focused.contains("<title>bronze.movies ("), "{focused}");
    assert!(focused.contains("seconds per attempt"), "{focused}");
    links_resolve(&server, &focused).await;
    assert_eq!(
        server.get("/ui/graph?focus=gold.nothing").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_pages_compare_runs_and_answer_the_lookup_form() {
    let project = tokio::task::spawn_blocking(|| {
        let project = built_project();
        // A second training with other settings, so two runs differ.
        project.ok(&["run", "--full-refresh", "--select", "gold.recommendations"]);
        project
    })
    .await
    .unwrap();
    let server = TestServer::start(&project, "").await;
    let runs = project.query("SELECT run_id FROM system.model_runs ORDER BY trained_at");
    let ids: Vec<&str> = runs.iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2);

    let list = server.get("/ui/models").await.text().await.unwrap();
    assert!(
        list.contains("href=\"/ui/models/recommendations\""),
        "{list}"
    );
    links_resolve(&server, &list).await;

    let model = server
        .get("/ui/models/recommendations")
        .await
        .text()
        .await
        .unwrap();
    // The newest run wrote the gold tables served now.
    assert!(
        model.contains(&format!(
            "title=\"{}\"><code>{}</code></a> <span class=\"badge status-succeeded\">served</span>",
            ids[1],
            &ids[1][..8]
        )),
        "{model}"
    );
    assert!(model.contains("class=\"num best\""), "{model}");
    assert!(model.contains("Loss per iteration"), "{model}");
    links_resolve(&server, &model).await;

    let recs = server
        .get("/ui/models/recommendations?user=6&k=3")
        .await
        .text()
        .await
        .unwrap();
    assert!(recs.contains("<th scope=\"col\">item_id</th>"), "{recs}");
    let unknown = server
        .get("/ui/models/recommendations?user=abc")
        .await
        .text()
        .await
        .unwrap();
    assert!(unknown.contains("is not a user id"), "{unknown}");

    let compare = format!(
        "/ui/models/recommendations/compare?run={}&run={}",
        ids[0], ids[1]
    );
    let all = server.get(&compare).await.text().await.unwrap();
    assert!(all.contains("<polyline class=\"series\""), "{all}");
    assert_eq!(
        all.matches("<polyline class=\"series\"").count(),
        2,
        "one loss line per run"
    );
    assert!(all.contains("<td>factors</td>"), "{all}");
    links_resolve(&server, &all).await;
    // Same settings and data: only the timings (and anything else that moved) are left.
    let different = server
        .get(&format!("{compare}&only_differences=on"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!different.contains("<td>factors</td>"), "{different}");
    assert!(different.contains("_seconds</td>"), "{different}");

    assert_eq!(
        server
            .get(&format!(
                "/ui/models/recommendations/compare?run={}",
                ids[0]
            ))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        server
            .get("/ui/models/recommendations/compare?run=a&run=b")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server.get("/ui/models/nothing").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classifier_page_predicts_from_its_form_and_compares_confusion_matrices() {
    let example = tokio::task::spawn_blocking(|| {
        let example = Example::new();
        example.ok(&["run"]);
        example.append_config("\n[steps.\"gold.penguin_species\"]\ntrees = 15\nseed = 7\n");
        example.ok(&["run"]);
        example
    })
    .await
    .unwrap();
    let server = TestServer::start_with(&example.config(), example.dir.path(), "").await;
    let page = server
        .get("/ui/models/penguin_species")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("<select name=\"island\">"), "{page}");
    let run_ids: Vec<String> = page
        .split("name=\"run\" value=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect();
    assert_eq!(run_ids.len(), 2, "{page}");

    let predicted = server
        .get("/ui/models/penguin_species?predict=1&island=Biscoe&bill_length_mm=47.5&bill_depth_mm=15.0&flipper_length_mm=218&body_mass_g=4950&sex=male")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        predicted.contains("Predicted class: <strong>Gentoo</strong>"),
        "{predicted}"
    );
    let bad = server
        .get("/ui/models/penguin_species?predict=1&island=Atlantis")
        .await
        .text()
        .await
        .unwrap();
    assert!(bad.contains("role=\"alert\""), "{bad}");

    let compare = server
        .get(&format!(
            "/ui/models/penguin_species/compare?run={}&run={}",
            run_ids[0], run_ids[1]
        ))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        compare.matches("<table class=\"heatmap\">").count(),
        2,
        "{compare}"
    );
    assert!(
        compare.contains("<th scope=\"row\">Adelie</th>"),
        "{compare}"
    );
    assert!(compare.contains("<td>trees</td>"), "{compare}");
}

/// A client that shows redirects instead of following them, like a test of a login form needs.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_on_the_dashboard_signs_in_once_with_a_strict_cookie_and_checks_origin_and_role()
{
    let project = tokio::task::spawn_blocking(built_project).await.unwrap();
    let server = TestServer::start(&project, &auth_on()).await;
    let reader = signed("reader", 600);
    let admin = signed("admin", 600);
    let client = no_redirects();
    let origin = server.url("");

    // A page without a token sends the browser to sign in, and back afterwards.
    let response = client
        .get(server.url("/ui/tables?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()[LOCATION],
        "/ui/login?next=%2Fui%2Ftables%3Fx%3D1"
    );
    assert_eq!(
        client
            .get(server.url("/ui/login"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // A bearer header works as it does for the API.
    let bearer = client
        .get(server.url("/ui/runs"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::OK);

    let sign_in = |token: &str, origin: &str| {
        client
            .post(server.url("/ui/login"))
            .header(ORIGIN, origin)
            .form(&[("token", token), ("next", "/ui/tables")])
            .send()
    };
    assert_eq!(
        sign_in("not-a-token", &origin).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    // Another site cannot sign this browser in.
    assert_eq!(
        sign_in(&reader, "http://evil.example")
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    let signed_in = sign_in(&reader, &origin).await.unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(signed_in.headers()[LOCATION], "/ui/tables");
    let cookie = signed_in.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(cookie.contains(attribute), "{attribute}: {cookie}");
    }
    let reader_cookie = cookie.split(';').next().unwrap().to_string();

    let page = client
        .get(server.url("/ui/runs"))
        .header(COOKIE, &reader_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        !page.text().await.unwrap().contains("Start a run"),
        "readers get no trigger form"
    );
    // The cookie is the dashboard's only: the JSON API still wants a bearer token.
    let api = client
        .get(server.url("/v1/tables"))
        .header(COOKIE, &reader_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);

    let trigger = |cookie: String, origin: String| {
        client
            .post(server.url("/ui/runs"))
            .header(COOKIE, cookie)
            .header(ORIGIN, origin)
            .form(&[("downstream", "on")])
            .send()
    };
    assert_eq!(
        trigger(reader_cookie.clone(), origin.clone())
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    let admin_cookie = format!("strata_token={admin}");
    let forged = trigger(admin_cookie.clone(), "http://evil.example".into())
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        project.count("SELECT count(*) AS n FROM system.runs"),
        1,
        "no run was started"
    );
    let started = trigger(admin_cookie.clone(), origin.clone()).await.unwrap();
    assert_eq!(started.status(), StatusCode::SEE_OTHER);
    let run_page = started.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(run_page.starts_with("/ui/runs/"), "{run_page}");
    let run_id = run_page.trim_start_matches("/ui/runs/");
    let run = server.wait_for_run_as(run_id, &admin).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["trigger"], "ui", "{run}");

    let signed_out = client
        .post(server.url("/ui/logout"))
        .header(COOKIE, &admin_cookie)
        .header(ORIGIN, &origin)
        .send()
        .await
        .unwrap();
    assert!(
        signed_out.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}
