//! A real PostgreSQL server for the fleet tests.
//!
//! `.ci/run` starts one (`scripts/pg_test_cluster.sh start`) and exports its URL and data folder
//! as `MIMML_TEST_POSTGRES` and `MIMML_TEST_PGDATA`; without them the first test that needs a
//! server starts one the same way, stopped when the test process exits. Each test works in a
//! database of its own ([`Server::database`]), so tests run in parallel and the CI server is
//! shared by every test binary.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A running server that tests may create databases on and restart.
#[derive(Debug)]
pub struct Server {
    /// URL of its `postgres` database as the `postgres` superuser.
    pub url: String,
    /// The folder `scripts/pg_test_cluster.sh` made (data, socket, log).
    pub dir: PathBuf,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg_test_cluster.sh")
}

/// The server (started on first use when `.ci/run` has not started one).
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        if let (Ok(url), Ok(dir)) = (std::env::var("MIMML_TEST_POSTGRES"), std::env::var("MIMML_TEST_PGDATA")) {
            return Server { url, dir: dir.into() };
        }
        let out =
            Command::new(script()).arg("start").stderr(Stdio::inherit()).output().expect("run pg_test_cluster.sh");
        assert!(
            out.status.success(),
            "no PostgreSQL server for the fleet tests: install Debian's postgresql (scripts/install_system_packages.sh; the README's test command runs it) or set \
             MIMML_TEST_POSTGRES and MIMML_TEST_PGDATA"
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let value = |key: &str| {
            text.lines().find_map(|l| l.strip_prefix(key)).map(str::to_owned).expect("pg_test_cluster.sh output")
        };
        let server = Server { url: value("MIMML_TEST_POSTGRES="), dir: value("MIMML_TEST_PGDATA=").into() };
        // Stopped and removed once this process is gone (statics are never dropped): a
        // background shell that outlives the one started here watches for that.
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "(while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; exec {script} stop {dir}) \
                 </dev/null >/dev/null 2>&1 &",
                pid = std::process::id(),
                script = script().display(),
                dir = server.dir.display()
            ))
            .status()
            .expect("start the server's reaper");
        assert!(status.success(), "starting the server's reaper");
        server
    })
}

impl Server {
    /// A new, empty database; its URL.
    pub fn database(&self, name: &str) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let db = format!("{name}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls).expect("connect to the test server");
        client.batch_execute(&format!("CREATE DATABASE {db}")).expect("create database");
        let base = self.url.rsplit_once('/').map_or(self.url.as_str(), |(b, _)| b);
        format!("{base}/{db}")
    }

    /// Restarts the server the way a crash does (`pg_ctl restart -m immediate`): every open
    /// connection and transaction is cut.
    pub fn restart(&self) {
        let status = Command::new(script()).arg("restart").arg(&self.dir).status().expect("run pg_test_cluster.sh");
        assert!(status.success(), "restarting the test server");
    }
}
