//! Scale-out through a real load balancer: `deploy/local/cluster.sh` (what
//! `make run-cluster` runs) starts api replicas and workers behind haproxy,
//! and Ctrl-C or SIGTERM stops every process it started.
//!
//! `CLUSTER_SH` runs these tests against another copy of the script (an
//! older one from git, saved in a `deploy/local/` folder next to a
//! `demo-sale.sh`), to see a test fail without a fix.

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

use crate::helpers::{create_database, wait_for_orders_within, TestConfig};
use test_support::{free_port, workspace_bin, Group};

struct Cluster {
    base: String,
    lb: u16,
    dir: PathBuf,
    api_ports: Vec<u16>,
    group: Group,
}

/// How the script is started.
#[derive(Clone, Copy)]
enum Launch {
    /// Its own process group with SIGINT at its default: a terminal's
    /// foreground job, what `make run-cluster` typed at a prompt is.
    Terminal,
    /// By a shell that ignores SIGINT, as a background job of any script, a
    /// CI step or a tool runner is; the script and all it starts inherit
    /// that. Issue 15's Ctrl-C left haproxy running this way.
    SigintIgnored,
}

fn cluster_script() -> String {
    std::env::var("CLUSTER_SH").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/local/cluster.sh").to_owned()
    })
}

impl Cluster {
    async fn start(config: &TestConfig, replicas: usize, workers: usize) -> Self {
        Self::launch(config, replicas, workers, Launch::Terminal).await
    }

    async fn launch(config: &TestConfig, replicas: usize, workers: usize, how: Launch) -> Self {
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
        let script = cluster_script();
        let group = match how {
            Launch::Terminal => Group::spawn("bash", &[&script], &vars),
            // `exec` keeps the pid: the group's child is the script itself.
            Launch::SigintIgnored => Group::spawn(
                "bash",
                &["-c", "trap '' INT; exec bash \"$0\"", &script],
                &vars,
            ),
        };
        for _ in 0..300 {
            if dir.join("ready").exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(dir.join("ready").exists(), "the cluster did not come up");
        Self {
            base: format!("http://127.0.0.1:{lb}"),
            lb,
            dir,
            api_ports,
            group,
        }
    }

    /// Every process the script says it started (its `*.pid` files).
    fn started(&self) -> Vec<(String, u32)> {
        let entries = std::fs::read_dir(&self.dir).expect("cluster dir");
        let mut started: Vec<(String, u32)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let process = name.strip_suffix(".pid")?.to_owned();
                let pid = std::fs::read_to_string(e.path())
                    .ok()?
                    .trim()
                    .parse()
                    .ok()?;
                Some((process, pid))
            })
            .collect();
        started.sort();
        started
    }

    /// Sends `signal` to the script's whole process group, as a terminal's
    /// Ctrl-C does (`--`: see `test_support::Group`), or to the script alone.
    fn send(&self, signal: &str, to_group: bool) {
        let pid = self.group.0.id();
        let target = if to_group {
            format!("-{pid}")
        } else {
            pid.to_string()
        };
        let sent = std::process::Command::new("kill")
            .args(["-s", signal, "--", &target])
            .status()
            .expect("kill");
        assert!(sent.success(), "could not send SIG{signal} to {target}");
    }

    /// What is left of the cluster `limit` after a stop was asked for:
    /// empty once the script has exited, every process it started is gone
    /// and nothing listens on its ports.
    async fn left_after(&mut self, limit: Duration) -> Vec<String> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let mut left = Vec::new();
            if self.group.0.try_wait().expect("try_wait").is_none() {
                left.push("the script".to_owned());
            }
            for (process, pid) in self.started() {
                if running(pid) {
                    left.push(format!("{process} (pid {pid})"));
                }
            }
            for port in std::iter::once(self.lb).chain(self.api_ports.iter().copied()) {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    left.push(format!("a listener on :{port}"));
                }
            }
            if left.is_empty() || std::time::Instant::now() > deadline {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
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

/// A live process, not a zombie waiting for its parent to reap it.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            Some(!matches!(state, 'Z' | 'X'))
        })
        .unwrap_or(false)
}

fn cluster_config(stock: u64, database: &str) -> TestConfig {
    let config = TestConfig::active(stock).set("DATABASE_URL", database);
    let sale = config.sale_id();
    // The reconciler leaves every ledger entry to its job for longer than a
    // test runs: rows equal to the answered orders prove the job path.
    config
        .set("RECONCILE_SALES", sale)
        .set("RECONCILE_INTERVAL_MS", 300)
        .set("RECONCILE_GRACE_MS", crate::persistence::JOBS_ONLY_GRACE_MS)
        .set("DATABASE_POOL_MIN", 0)
        .set("WORKER_CONCURRENCY", 16)
}

/// One shopper: a purchase, retried while the answer is lost (the replica
/// died, 5xx, connection error), as a real client would.
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
    let (first, mut order_id) = attempt().await;
    let mut last = first;
    // Up to three retries, 200, 400 and 800 ms apart: the killed
    // replica's requests in flight are lost, and haproxy takes about a
    // second (two failed checks 500 ms apart) to stop sending it more.
    let mut pause = Duration::from_millis(200);
    for _ in 0..3 {
        if last != 0 && last < 500 {
            break;
        }
        tokio::time::sleep(pause).await;
        pause *= 2;
        (last, order_id) = attempt().await;
    }
    Shopper {
        first,
        last,
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
    // Two per 10 s: a quota that refills every 5 s, so a slow, busy machine
    // cannot spread three requests far enough apart to earn a third.
    let config = cluster_config(100, &database)
        .set("IP_RATE_LIMIT_PER_SECOND", 0)
        .set("IP_RATE_LIMIT_PER_10_SECONDS", 2);
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

/// Starts a cluster of 2 replicas and 1 worker `how`, checks it serves, asks
/// it to stop, and asserts that within a few seconds nothing is left.
async fn assert_stop_leaves_nothing(how: Launch, signal: &str, to_group: bool) {
    let database = create_database().await;
    let config = cluster_config(10, &database);
    let mut cluster = Cluster::launch(&config, 2, 1, how).await;
    let health = reqwest::get(format!("{}/api/health", cluster.base))
        .await
        .expect("the balancer answers");
    assert_eq!(health.status().as_u16(), 200, "the cluster serves");
    let started = cluster.started();
    let names: Vec<&str> = started.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["api-1", "api-2", "haproxy", "worker-1"]);
    assert!(started.iter().all(|&(_, pid)| running(pid)));

    cluster.send(signal, to_group);
    let left = cluster.left_after(Duration::from_secs(10)).await;

    assert!(
        left.is_empty(),
        "SIG{signal} to the {}: still there after 10 s: {}",
        if to_group { "process group" } else { "script" },
        left.join(", ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_to_the_process_group_stops_everything_the_cluster_script_started() {
    assert_stop_leaves_nothing(Launch::Terminal, "INT", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_everything_even_when_the_cluster_script_inherited_an_ignored_sigint() {
    assert_stop_leaves_nothing(Launch::SigintIgnored, "INT", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_the_cluster_script_alone_stops_everything_it_started() {
    assert_stop_leaves_nothing(Launch::Terminal, "TERM", false).await;
}
