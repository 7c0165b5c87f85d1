//! Private services and real processes for fault-injection tests.
//!
//! Tests that stop, stall or kill Redis or PostgreSQL start their own
//! instances on free ports under a temporary folder and never touch the
//! shared ones.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn scratch_dir(kind: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fs-{kind}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A command that runs as `postgres` when we are root (initdb refuses root).
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    for _ in 0..200 {
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not become ready");
}

/// A private redis-server with AOF on (`appendfsync everysec`).
pub struct PrivateRedis {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// The primary's port, for a replica.
    replica_of: Option<u16>,
}

impl PrivateRedis {
    pub fn start() -> Self {
        let mut redis = Self {
            port: free_port(),
            dir: scratch_dir("redis"),
            child: None,
            replica_of: None,
        };
        redis.start_again();
        redis
    }

    /// A replica of `primary`, returned once its replication link is up.
    pub fn start_replica_of(primary: &PrivateRedis) -> Self {
        let mut redis = Self {
            port: free_port(),
            dir: scratch_dir("redis"),
            child: None,
            replica_of: Some(primary.port),
        };
        redis.start_again();
        wait_until("replication link", || {
            redis
                .cli(&["INFO", "replication"])
                .contains("master_link_status:up")
        });
        redis
    }

    /// A crash: SIGKILL, nothing flushed, the port closed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP) until [`Self::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let _ = Command::new("kill").args([signal, &pid]).status();
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn ping(&self) -> bool {
        cli(self.port, &["ping"]) == "PONG"
    }

    /// Starts it (again) on the same port and folder: AOF data comes back.
    pub fn start_again(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(
                self.replica_of
                    .map(|port| {
                        vec![
                            "--replicaof".to_owned(),
                            "127.0.0.1".to_owned(),
                            port.to_string(),
                        ]
                    })
                    .unwrap_or_default(),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        wait_until("private redis", || self.ping());
    }

    /// A clean shutdown: the AOF is flushed, nothing acknowledged is lost.
    pub fn stop(&mut self) {
        let _ = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "shutdown"])
            .output();
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP) for `pause`: connections stay open and
    /// nothing answers, like a stalled or swapping Redis.
    pub fn stall(&self, pause: Duration) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let _ = Command::new("kill").args(["-STOP", &pid]).status();
        std::thread::sleep(pause);
        let _ = Command::new("kill").args(["-CONT", &pid]).status();
    }

    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Redis Sentinels (`redis-server --sentinel`) on free ports watching
/// `primary` as the service `name`: quorum 2, a primary unreachable for
/// 2.5 s is down (1 s made a loaded machine fail over twice), failover
/// timeout 6 s.
pub struct PrivateSentinels {
    pub ports: Vec<u16>,
    pub name: String,
    dir: PathBuf,
    children: Vec<Child>,
    /// The one password of the sentinels and the servers, if any.
    password: Option<String>,
}

impl PrivateSentinels {
    pub fn start(primary: &PrivateRedis, count: usize, name: &str) -> Self {
        Self::start_with(primary, count, name, None)
    }

    /// Sentinels that require `password` and give it to the servers (set
    /// `requirepass` and `masterauth` on those first), as one password for
    /// both: what a `redis-sentinel://:password@…` URL uses.
    pub fn start_with_password(
        primary: &PrivateRedis,
        count: usize,
        name: &str,
        password: &str,
    ) -> Self {
        Self::start_with(primary, count, name, Some(password))
    }

    fn start_with(
        primary: &PrivateRedis,
        count: usize,
        name: &str,
        password: Option<&str>,
    ) -> Self {
        let dir = scratch_dir("sentinel");
        let mut sentinels = Self {
            ports: Vec::new(),
            name: name.to_owned(),
            dir,
            children: Vec::new(),
            password: password.map(str::to_owned),
        };
        let auth = password
            .map(|pw| {
                format!(
                    "requirepass {pw}\nsentinel sentinel-pass {pw}\nsentinel auth-pass {name} {pw}\n"
                )
            })
            .unwrap_or_default();
        for i in 0..count {
            let port = free_port();
            // Sentinel rewrites its config file: one each, writable.
            let conf = sentinels.dir.join(format!("sentinel-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                     sentinel monitor {name} 127.0.0.1 {primary} 2\n\
                     sentinel down-after-milliseconds {name} 2500\n\
                     sentinel failover-timeout {name} 6000\n\
                     sentinel parallel-syncs {name} 2\n{auth}",
                    dir = sentinels.dir.display(),
                    primary = primary.port,
                ),
            )
            .expect("sentinel config");
            let child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server is installed");
            sentinels.ports.push(port);
            sentinels.children.push(child);
        }
        for &port in &sentinels.ports {
            wait_until("sentinel", || {
                sentinels
                    .cli_at(port, &["SENTINEL", "get-master-addr-by-name", name])
                    .contains("127.0.0.1")
            });
        }
        sentinels
    }

    /// `redis-cli` against the sentinel on `port`, with the password.
    fn cli_at(&self, port: u16, args: &[&str]) -> String {
        match &self.password {
            Some(password) => {
                let mut with = vec!["--no-auth-warning", "-a", password];
                with.extend_from_slice(args);
                cli(port, &with)
            }
            None => cli(port, args),
        }
    }

    /// fred's URL of the service behind these sentinels.
    pub fn url(&self) -> String {
        let (first, rest) = self.ports.split_first().expect("a sentinel");
        let nodes: String = rest
            .iter()
            .map(|port| format!("&node=127.0.0.1:{port}"))
            .collect();
        let credentials = self
            .password
            .as_ref()
            .map(|pw| {
                let encoded: String = pw
                    .chars()
                    .map(|c| match c {
                        'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '.' | '_' | '~' => c.to_string(),
                        other => format!("%{:02X}", other as u32),
                    })
                    .collect();
                format!(":{encoded}@")
            })
            .unwrap_or_default();
        format!(
            "redis-sentinel://{credentials}127.0.0.1:{first}/0?sentinelServiceName={}{nodes}",
            self.name
        )
    }

    /// `redis-cli` against the first sentinel.
    pub fn cli(&self, args: &[&str]) -> String {
        self.cli_at(self.ports[0], args)
    }

    /// The port of the primary the first sentinel names now.
    pub fn primary_port(&self) -> Option<u16> {
        self.cli(&["SENTINEL", "get-master-addr-by-name", &self.name])
            .lines()
            .nth(1)
            .and_then(|port| port.trim().parse().ok())
    }
}

impl Drop for PrivateSentinels {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private Redis Cluster of `n` primaries (no replicas) on loopback,
/// every slot assigned; nothing kept on disk.
pub struct PrivateRedisCluster {
    pub ports: Vec<u16>,
    dir: PathBuf,
    /// One per port, in the same order (a restarted node replaces its own).
    children: std::sync::Mutex<Vec<Child>>,
    /// `cluster-node-timeout`: how long a silent node takes to be failed.
    node_timeout_ms: u64,
}

impl PrivateRedisCluster {
    pub fn start(primaries: usize) -> Self {
        Self::start_with_replicas(primaries, 0)
    }

    /// `primaries` primaries with `replicas` replicas each (the first
    /// `primaries` ports are the primaries). With replicas a node silent
    /// for 1 s is failed over; without, 5 s pass before a node counts as
    /// failed (a busy machine's stall must not take the cluster down).
    pub fn start_with_replicas(primaries: usize, replicas: usize) -> Self {
        let dir = scratch_dir("redis-cluster");
        let ports: Vec<u16> = (0..primaries * (1 + replicas))
            .map(|_| free_port())
            .collect();
        let cluster = Self {
            children: std::sync::Mutex::new(Vec::new()),
            ports,
            dir,
            node_timeout_ms: if replicas > 0 { 1000 } else { 5000 },
        };
        let children = cluster
            .ports
            .iter()
            .map(|&port| cluster.spawn_node(port))
            .collect();
        *cluster.children.lock().expect("lock") = children;
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli");
        assert!(
            created.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        for port in &cluster.ports {
            wait_until("cluster state ok", || {
                cli(*port, &["cluster", "info"]).contains("cluster_state:ok")
            });
        }
        for port in &cluster.ports[primaries..] {
            wait_until("replica linked", || {
                cli(*port, &["info", "replication"]).contains("master_link_status:up")
            });
        }
        cluster
    }

    fn spawn_node(&self, port: u16) -> Child {
        let node_dir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&node_dir).expect("node dir");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout"])
            .arg(self.node_timeout_ms.to_string())
            .args(["--appendonly", "no", "--save", ""])
            .arg("--dir")
            .arg(&node_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        wait_until("cluster node", || cli(port, &["ping"]) == "PONG");
        child
    }

    /// A crash of the node on `port`: SIGKILL.
    pub fn kill(&self, port: u16) {
        let i = self.index(port);
        let mut children = self.children.lock().expect("lock");
        let _ = children[i].kill();
        let _ = children[i].wait();
    }

    /// Starts the node on `port` again (its cluster config is kept): a
    /// failed-over primary comes back as a replica of the one promoted.
    pub fn restart(&self, port: u16) {
        let i = self.index(port);
        let child = self.spawn_node(port);
        self.children.lock().expect("lock")[i] = child;
    }

    /// Freezes the node on `port` (SIGSTOP) until [`Self::resume`].
    pub fn pause(&self, port: u16) {
        self.signal(port, "-STOP");
    }

    pub fn resume(&self, port: u16) {
        self.signal(port, "-CONT");
    }

    fn signal(&self, port: u16, signal: &str) {
        let pid = self.children.lock().expect("lock")[self.index(port)]
            .id()
            .to_string();
        let _ = Command::new("kill").args([signal, &pid]).status();
    }

    /// The port of the (first) replica of the primary on `primary`.
    pub fn replica_of(&self, primary: u16) -> u16 {
        let replication = cli(primary, &["info", "replication"]);
        replication
            .lines()
            .find_map(|line| line.strip_prefix("slave0:"))
            .and_then(|fields| fields.split(',').find_map(|f| f.strip_prefix("port=")))
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("{primary} has no replica: {replication}"))
    }

    /// Whether the node on `port` answers PING.
    pub fn answers(&self, port: u16) -> bool {
        cli(port, &["ping"]) == "PONG"
    }

    fn index(&self, port: u16) -> usize {
        self.ports
            .iter()
            .position(|&p| p == port)
            .expect("a node of this cluster")
    }

    /// The cluster URL the services take: one seed node, the others as `node=`.
    pub fn url(&self) -> String {
        let (first, rest) = self.ports.split_first().expect("at least one node");
        let seeds: Vec<String> = rest
            .iter()
            .map(|port| format!("node=127.0.0.1:{port}"))
            .collect();
        format!("redis-cluster://127.0.0.1:{first}?{}", seeds.join("&"))
    }

    /// The port of the primary serving `key`'s slot (asked without
    /// following redirections: a MOVED reply names the owner).
    pub fn port_of(&self, key: &str) -> u16 {
        let first = self.ports[0];
        let reply = cli(first, &["exists", key]);
        match reply.strip_prefix("MOVED ") {
            Some(moved) => moved
                .rsplit(':')
                .next()
                .and_then(|port| port.parse().ok())
                .expect("MOVED names host:port"),
            None => first,
        }
    }

    /// `redis-cli -c` against the cluster: follows redirections.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-c", "-p", &self.ports[0].to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// `redis-cli -p port args…`, its output trimmed ("" if it could not run).
fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

impl Drop for PrivateRedisCluster {
    fn drop(&mut self) {
        if let Ok(children) = self.children.get_mut() {
            for child in children {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private PostgreSQL cluster (trust auth) on a free port.
pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl PrivatePostgres {
    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|p| p.join("initdb").exists())
            .expect("initdb");
        let dir = scratch_dir("pg");
        if is_root() {
            Command::new("chown")
                .arg("-R")
                .arg("postgres")
                .arg(&dir)
                .status()
                .expect("chown");
        }
        let status = as_postgres(&bin.join("initdb"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "-D"])
            .arg(dir.join("data"))
            .stdout(Stdio::null())
            .status()
            .expect("initdb");
        assert!(status.success(), "initdb failed");
        let pg = Self {
            port: free_port(),
            dir,
            bin,
        };
        pg.start_again();
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn start_again(&self) {
        let status = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-o"])
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                self.port,
                self.dir.display()
            ))
            .arg("start")
            .stdout(Stdio::null())
            .status()
            .expect("pg_ctl start");
        assert!(status.success(), "pg_ctl start failed");
    }

    /// An immediate stop, like a crash or a pulled cable.
    pub fn stop(&self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .status();
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A workspace binary next to this test binary (`target/<profile>/<name>`).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let bin = profile_dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: build the workspace binaries first (make test does)",
        bin.display()
    );
    bin
}

/// A child process killed when dropped.
pub struct Process(pub Child);

/// A process group (a script and everything it started), ended when dropped.
pub struct Group(pub Child);

impl Group {
    pub fn spawn(program: &str, args: &[&str], vars: &[(String, String)]) -> Self {
        use std::os::unix::process::CommandExt;
        let child = Command::new(program)
            .args(args)
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "warn")
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        Self(child)
    }
}

impl Group {
    /// Signals every process of the group. The `--` matters: without it
    /// procps `kill` does not read `-<pgid>` as a process group (seen here:
    /// it signalled every process on the machine).
    fn signal(&self, signal: &str) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill")
            .args(["-s", signal, "--", &group])
            .status();
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.signal("TERM");
        let _ = self.0.wait();
        std::thread::sleep(Duration::from_millis(300));
        self.signal("KILL");
    }
}

impl Process {
    pub fn spawn(bin: &Path, vars: &[(String, String)]) -> Self {
        let child = Command::new(bin)
            .current_dir(std::env::temp_dir())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        Self(child)
    }

    /// SIGTERM: the process's own graceful shutdown.
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
    }

    /// Waits for the process to exit, up to `limit`; `None` if it did not.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGKILL: no shutdown, no cleanup.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
