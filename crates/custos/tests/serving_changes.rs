//! Changes made while `custos serve` runs, as a hostile review tried them: 20 moves of one
//! org at once through two serving processes, and key rotations by the CLI with writes in
//! flight. Nothing may answer 5xx, and the end state must be whole.

mod support;

use std::path::{Path, PathBuf};

use serde_json::json;
use support::{send, Server, ADMIN};

/// The built-in policy with three of its regions on stores of their own under `root` (the
/// fourth stays on the main stores).
fn three_region_policy(root: &Path) -> PathBuf {
    support::policy_with_region_stores(
        root,
        &[
            ("us-east", "us"),
            ("eu-central", "eu"),
            ("ap-southeast", "ap"),
        ],
    )
}

/// Files under `dir` whose path contains `needle`.
fn paths_with(dir: &Path, needle: &str) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            if path.to_string_lossy().contains(needle) && path.is_file() {
                n += 1;
            }
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_moves_through_two_instances_leave_one_copy() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let config = three_region_policy(root);
    let main = root.join("main");
    let command = || {
        let mut c = support::cli(&main);
        c.arg("--config").arg(&config);
        c
    };
    let one = support::serve(command(), &[]).await;
    let two = support::serve(command(), &[]).await;

    let org = support::post(&one, ADMIN, "/v1/orgs", json!({"name": "mover"})).await;
    let org = org["id"].as_str().unwrap().to_string();
    let owner = support::post(
        &one,
        ADMIN,
        &format!("/v1/orgs/{org}/members"),
        json!({"name": "owner", "roles": ["owner"]}),
    )
    .await["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..3 {
        let r = reqwest::Client::new()
            .post(format!(
                "{}/v1/orgs/{org}/files?category=uploads&name=f{i}.txt",
                one.base
            ))
            .bearer_auth(&owner)
            .header("content-type", "text/plain")
            .body(format!("file {i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }
    support::post(
        &one,
        &owner,
        &format!("/v1/orgs/{org}/records"),
        json!({"category": "messages", "content": {"text": "stays whole"}}),
    )
    .await;
    let settings = format!("/v1/orgs/{org}/settings");
    let (status, _) = send(
        &one,
        reqwest::Method::PATCH,
        &owner,
        &settings,
        Some(json!({"allow_data_transfer": true})),
    )
    .await;
    assert_eq!(status, 200);

    let regions = ["eu-central", "ap-southeast", "us-east"];
    let moves = (0..20).map(|i| {
        let server = if i % 2 == 0 { &one } else { &two };
        let (owner, settings) = (owner.clone(), settings.clone());
        async move {
            send(
                server,
                reqwest::Method::PATCH,
                &owner,
                &settings,
                Some(json!({"region": regions[i % 3]})),
            )
            .await
        }
    });
    let answers = futures::future::join_all(moves).await;
    for (status, body) in &answers {
        assert!(
            *status == 200 || (*status == 409 && body["code"] == "move_in_progress"),
            "{status} {body}"
        );
    }
    assert!(answers.iter().any(|(s, _)| *s == 200));

    // One home: its database holds the org and its objects, the others neither.
    let (status, read) = send(&two, reqwest::Method::GET, &owner, &settings, None).await;
    assert_eq!(status, 200, "{read}");
    let home = read["region"].as_str().unwrap().to_string();
    let dirs = [
        ("us-east", "us"),
        ("eu-central", "eu"),
        ("ap-southeast", "ap"),
    ];
    for (region, dir) in dirs {
        let objects = paths_with(&root.join(dir).join("objects"), &org);
        if region == home {
            assert_eq!(objects, 3, "{region} has the org's files");
        } else {
            assert_eq!(objects, 0, "{region} keeps files of an org that left");
        }
    }
    let (status, list) = send(
        &one,
        reqwest::Method::GET,
        &owner,
        &format!("/v1/orgs/{org}/records?category=messages"),
        None,
    )
    .await;
    assert_eq!(
        (status, list["items"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    drop((one, two));
    // The CLI finds each log whole and the org in one region's stores only.
    let verify = command().args(["audit", "verify"]).output().unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// Writes `n` records at once, spread over `servers`; the statuses.
async fn burst(servers: &[&Server], key: &str, org: &str, n: usize) -> Vec<u16> {
    let client = reqwest::Client::new();
    let writes = (0..n).map(|i| {
        let client = client.clone();
        let url = format!("{}/v1/orgs/{org}/records", servers[i % servers.len()].base);
        async move {
            client
                .post(url)
                .bearer_auth(key)
                .json(
                    &json!({"category": "messages", "subject": format!("s{}", i % 7),
                              "content": {"text": format!("write {i}")}}),
                )
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    futures::future::join_all(writes).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_by_the_cli_fails_no_request_of_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // 200 callers at once from one address: more connections than the default per source.
    let wide = ["--max-connections-per-source", "400"];
    let server = support::serve(support::cli(&data), &wide).await;
    // A second instance on the same data and keys.
    let other = support::serve(support::cli(&data), &wide).await;
    let both = [&server, &other];
    let (org, owner) = support::org_with_owner(&server, "rot").await;
    let key = support::post(
        &server,
        &owner,
        &format!("/v1/orgs/{org}/members"),
        json!({"name": "app", "roles": ["member"]}),
    )
    .await["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    let warm = burst(&both, &key, &org, 20).await;
    assert!(warm.iter().all(|s| *s == 201), "{warm:?}");

    // 200 writes in flight while the root key, then the org key, rotate.
    for args in [
        vec!["keys", "rotate"],
        vec!["keys", "rotate", "--org", &org],
    ] {
        let rotate = tokio::task::spawn_blocking({
            let mut c = support::cli(&data);
            c.args(&args);
            move || c.output().unwrap()
        });
        let statuses = burst(&both, &key, &org, 200).await;
        let out = rotate.await.unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let failed: Vec<&u16> = statuses.iter().filter(|s| **s != 201).collect();
        assert!(
            failed.is_empty(),
            "{args:?}: {} failed: {failed:?}",
            failed.len()
        );
        // Afterwards, within the stated bound (1 s), every write and read still works.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        assert!(burst(&both, &key, &org, 50).await.iter().all(|s| *s == 201));
    }
    let (status, list) = send(
        &server,
        reqwest::Method::GET,
        &key,
        &format!("/v1/orgs/{org}/records?limit=1000"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 20 + 2 * 250);
    for item in items.iter().step_by(37) {
        let id = item["id"].as_str().unwrap();
        for s in both {
            let (status, _) = send(
                s,
                reqwest::Method::GET,
                &key,
                &format!("/v1/orgs/{org}/records/{id}"),
                None,
            )
            .await;
            assert_eq!(status, 200, "record {id} reads after both rotations");
        }
    }
}
