//! Scale-out through a real load balancer: `deploy/local/cluster.sh` (what
//! `make run-cluster` runs) starts api replicas and workers behind haproxy.

use std::{
    collections::BTreeSet,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use futures::StreamExt;
use serde_json::{json, Value};

use crate::{
    helpers::{create_database, wait_for_orders_within, TestConfig},
    support::{free_port, workspace_bin, Group},
};

struct Cluster {
    base: String,
    dir: PathBuf,
    api_ports: Vec<u16>,
    _group: Group,
}

impl Cluster {
    async fn start(config: &TestConfig, replicas: usize, workers: usize) -> Self {
        let dir =
            std::env::temp_dir().join(format!("fs-cluster-{}", uuid::Uuid::new_v4().simple()));
        let lb = free_port();
        let api_ports: Vec<u16> = (0..replicas).map(|_| free_port()).collect();
        let bin_dir = workspace_bin("order-worker")
            .parent()
            .map(Path::to_path_buf)
            .expect("bin dir");
        let mut vars = config.vars.clone();
        for (k, v) in [
            ("N", replicas.to_string()),
            ("M", workers.to_string()),
            ("LB_PORT", lb.to_string()),
            (
                "API_PORTS",
                api_ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            ("BIN_DIR", bin_dir.display().to_string()),
            ("CLUSTER_DIR", dir.display().to_string()),
            ("SKIP_SERVICES", "1".to_owned()),
            ("METRICS_PORT", "0".to_owned()),
        ] {
            vars.push((k.to_owned(), v));
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/local/cluster.sh");
        let group = Group::spawn("bash", &[script], &vars);
        for _ in 0..300 {
            if dir.join("ready").exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(dir.join("ready").exists(), "the cluster did not come up");
        Self {
            base: format!("http://127.0.0.1:{lb}"),
            dir,
            api_ports,
            _group: group,
        }
    }

    /// SIGKILL one api replica (1-based, as the script numbers them).
    fn kill_api(&self, replica: usize) {
        let pid =
            std::fs::read_to_string(self.dir.join(format!("api-{replica}.pid"))).expect("pid file");
        let _ = std::process::Command::new("kill")
            .args(["-KILL", pid.trim()])
            .status();
    }
}

fn cluster_config(stock: u64, database: &str) -> TestConfig {
    let config = TestConfig::active(stock).set("DATABASE_URL", database);
    let sale = config.sale_id();
    config
        .set("RECONCILE_SALES", sale)
        .set("RECONCILE_INTERVAL_MS", 300)
        .set("RECONCILE_GRACE_MS", 1000)
        .set("DATABASE_POOL_MIN", 0)
        .set("WORKER_CONCURRENCY", 16)
}

/// One shopper: a purchase, retried once if the answer was lost (the
/// replica died, 5xx, connection error), as a real client would.
#[derive(Debug)]
struct Shopper {
    first: u16,
    last: u16,
    order_id: Option<String>,
}

async fn shop(client: &reqwest::Client, url: &str, user: &str) -> Shopper {
    let attempt = || async {
        match client
            .post(url)
            .json(&json!({ "userId": user }))
            .send()
            .await
        {
            Ok(r) => {
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                (status, body["orderId"].as_str().map(str::to_owned))
            }
            Err(_) => (0, None),
        }
    };
    let (first, order_id) = attempt().await;
    if first == 0 || first >= 500 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (last, order_id) = attempt().await;
        return Shopper {
            first,
            last,
            order_id,
        };
    }
    Shopper {
        first,
        last: first,
        order_id,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_behind_haproxy_sell_exactly_the_stock_even_when_one_is_killed() {
    let database = create_database().await;
    let config = cluster_config(500, &database);
    let cluster = Cluster::start(&config, 3, 2).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client");
    let url = format!("{}/api/purchases", cluster.base);
    let answered = Arc::new(AtomicUsize::new(0));

    let shoppers = futures::stream::iter((0..2000).map(|i| format!("lb-{i:04}")))
        .map(|user| {
            let (client, url, answered) = (client.clone(), url.clone(), answered.clone());
            async move {
                let shopper = shop(&client, &url, &user).await;
                answered.fetch_add(1, Ordering::SeqCst);
                shopper
            }
        })
        .buffer_unordered(64);
    let killer = {
        let answered = answered.clone();
        async move {
            while answered.load(Ordering::SeqCst) < 600 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            cluster.kill_api(2);
            cluster
        }
    };
    let (shoppers, cluster): (Vec<Shopper>, Cluster) = tokio::join!(shoppers.collect(), killer);

    let count = |s: u16| shoppers.iter().filter(|x| x.last == s).count();
    let lost_then_found: Vec<&Shopper> = shoppers
        .iter()
        .filter(|s| (s.first == 0 || s.first >= 500) && s.last == 409)
        .collect();
    let confirmed: BTreeSet<String> = shoppers
        .iter()
        .filter(|s| s.last == 201 || (s.last == 409 && (s.first == 0 || s.first >= 500)))
        .filter_map(|s| s.order_id.clone())
        .collect();
    let rows =
        wait_for_orders_within(&database, &config.sale_id(), 500, Duration::from_secs(90)).await;
    let persisted: BTreeSet<String> = rows.iter().map(|r| r.id.clone()).collect();
    eprintln!(
        "[cluster report] 201: {}, 409 after a lost answer: {}, 410: {}, other: {}, rows: {}, retried after the kill: {}",
        count(201),
        lost_then_found.len(),
        count(410),
        shoppers.len() - count(201) - count(409) - count(410),
        rows.len(),
        shoppers.iter().filter(|s| s.first != s.last).count(),
    );

    assert!(
        shoppers.iter().all(|s| [201, 409, 410].contains(&s.last)),
        "every shopper got an answer"
    );
    assert_eq!(
        count(409),
        lost_then_found.len(),
        "a 409 only where a first answer was lost"
    );
    assert_eq!(confirmed.len(), 500, "exactly the stock was sold");
    assert_eq!(count(410), 1500);
    assert_eq!(rows.len(), 500);
    assert_eq!(
        persisted, confirmed,
        "every confirmed order persisted, nothing else"
    );
    drop(cluster);
}

fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<IpAddr>().ok())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

async fn statuses(
    client: &reqwest::Client,
    url: &str,
    prefix: &str,
    n: usize,
    forged: &str,
) -> Vec<u16> {
    let mut out = Vec::new();
    for i in 0..n {
        let response = client
            .post(url)
            .header("x-forwarded-for", forged)
            .json(&json!({ "userId": format!("{prefix}-{i}") }))
            .send()
            .await
            .expect("sent");
        out.push(response.status().as_u16());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_balancer_each_client_is_limited_by_its_own_address() {
    let database = create_database().await;
    let config = cluster_config(100, &database).set("IP_RATE_LIMIT_PER_SECOND", 2);
    let cluster = Cluster::start(&config, 1, 0).await;
    let via_lb = format!("{}/api/purchases", cluster.base);
    let direct = format!("http://127.0.0.1:{}/api/purchases", cluster.api_ports[0]);

    // Two clients on their own loopback addresses; the first forges its address.
    let a = statuses(&client_from("127.0.0.2"), &via_lb, "a", 3, "203.0.113.7").await;
    let b = statuses(&client_from("127.0.0.3"), &via_lb, "b", 2, "203.0.113.7").await;
    // Straight to a replica from an untrusted address: the forged header counts for nothing.
    let c = statuses(&client_from("127.0.0.4"), &direct, "c", 3, "198.51.100.1").await;

    assert_eq!(
        a,
        [201, 201, 429],
        "the balancer's X-Forwarded-For names the real client"
    );
    assert_eq!(b, [201, 201], "another client has its own quota");
    assert_eq!(c, [201, 201, 429]);
    drop(cluster);
}
