//! A private PostgreSQL cluster started from the machine's own server binaries.
//!
//! Used by `samgate demo` (data under `.samgate/pg`, kept across runs) and by the test harness (one
//! cluster per test run under `target/`). The cluster listens on a Unix socket only, never on TCP.
//! As root the server runs as an unprivileged user, because `initdb` refuses root.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use fs2::FileExt;
use sqlx::postgres::PgConnectOptions;

/// Why a private cluster could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LocalPgError {
    /// No `initdb`/`pg_ctl` were found anywhere we look.
    #[error(
        "no PostgreSQL server binaries (initdb, pg_ctl) were found on PATH, in `pg_config --bindir`, \
         or under /usr/lib/postgresql/*/bin.\n\
         Install the PostgreSQL server package (Debian/Ubuntu: `apt-get install postgresql`, \
         Fedora: `dnf install postgresql-server`, macOS: `brew install postgresql@17`), \
         or set DATABASE_URL to an existing PostgreSQL database."
    )]
    BinariesNotFound,
    /// Running as root but there is no unprivileged user to run the server as.
    #[error(
        "samgate is running as root and initdb refuses root; create a `postgres` user \
         (or set SAMGATE_PG_USER to an unprivileged user), or set DATABASE_URL"
    )]
    NoUnprivilegedUser,
    /// Another process holds the cluster's exclusive lock.
    #[error("{0}")]
    Busy(String),
    /// A server command failed; `log` holds the tail of its output.
    #[error("`{command}` failed: {log}")]
    Command { command: String, log: String },
    /// Filesystem trouble around the cluster directory.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> LocalPgError {
    let context = context.into();
    move |source| LocalPgError::Io { context, source }
}

/// Where the server binaries live and which user runs them.
#[derive(Debug, Clone)]
pub struct ServerBinaries {
    bin_dir: PathBuf,
    run_as: Option<String>,
}

impl ServerBinaries {
    /// Finds `initdb` and `pg_ctl`: on PATH, then `pg_config --bindir`, then
    /// `/usr/lib/postgresql/*/bin` and Homebrew's prefixes, newest version first.
    pub fn discover() -> Result<Self, LocalPgError> {
        Self::discover_in(candidate_bin_dirs())
    }

    /// Like [`discover`](Self::discover), over an explicit list of directories.
    pub fn discover_in(candidates: Vec<PathBuf>) -> Result<Self, LocalPgError> {
        let bin_dir = candidates
            .into_iter()
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
            .ok_or(LocalPgError::BinariesNotFound)?;
        let run_as = if nix::unistd::geteuid().is_root() {
            let user = std::env::var("SAMGATE_PG_USER").unwrap_or_else(|_| "postgres".to_owned());
            match nix::unistd::User::from_name(&user) {
                Ok(Some(_)) => Some(user),
                _ => return Err(LocalPgError::NoUnprivilegedUser),
            }
        } else {
            None
        };
        Ok(Self { bin_dir, run_as })
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin_dir.join(program);
        match &self.run_as {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.arg("-u").arg(user).arg("--").arg(path);
                cmd
            }
            None => Command::new(path),
        }
    }

    fn chown_for_server(&self, path: &Path) -> Result<(), LocalPgError> {
        let Some(user) = &self.run_as else {
            return Ok(());
        };
        let found = nix::unistd::User::from_name(user)
            .ok()
            .flatten()
            .ok_or(LocalPgError::NoUnprivilegedUser)?;
        nix::unistd::chown(path, Some(found.uid), Some(found.gid)).map_err(|errno| {
            LocalPgError::Io {
                context: format!("chown {} to {user}", path.display()),
                source: errno.into(),
            }
        })
    }
}

fn candidate_bin_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        dirs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    for pattern_root in ["/usr/lib/postgresql", "/opt/homebrew/opt", "/usr/local/opt"] {
        let mut versioned: Vec<(Vec<u32>, PathBuf)> = fs::read_dir(pattern_root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let version = name.strip_prefix("postgresql@").unwrap_or(&name);
                let parts: Vec<u32> = version.split('.').map_while(|p| p.parse().ok()).collect();
                (!parts.is_empty()).then(|| (parts, entry.path().join("bin")))
            })
            .collect();
        versioned.sort_by(|a, b| b.0.cmp(&a.0));
        dirs.extend(versioned.into_iter().map(|(_, dir)| dir));
    }
    dirs
}

/// A private cluster rooted at one directory: `data/` holds the cluster, the directory itself holds
/// the socket, the server log and the lock files.
#[derive(Debug)]
pub struct LocalCluster {
    root: PathBuf,
    socket_dir: PathBuf,
    binaries: ServerBinaries,
}

/// The longest Unix socket path we trust on every platform (macOS allows 104 bytes).
const MAX_SOCKET_PATH: usize = 100;

impl LocalCluster {
    /// Prepares (but does not start) a cluster under `root`.
    pub fn new(root: impl Into<PathBuf>, binaries: ServerBinaries) -> Result<Self, LocalPgError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(io_err(format!("create {}", root.display())))?;
        let root = root
            .canonicalize()
            .map_err(io_err(format!("resolve {}", root.display())))?;
        // Unix socket paths are short; a deep checkout gets a socket directory under /tmp instead.
        let socket_dir = if root.join(".s.PGSQL.5432").as_os_str().len() > MAX_SOCKET_PATH {
            let digest = sha2_hex(root.to_string_lossy().as_bytes());
            let dir = std::env::temp_dir().join(format!("samgate-pg-{}", &digest[..16]));
            private_dir(&dir, &binaries)?;
            dir
        } else {
            root.clone()
        };
        binaries.chown_for_server(&root)?;
        binaries.chown_for_server(&socket_dir)?;
        restrict(&root, 0o700)?;
        restrict(&socket_dir, 0o700)?;
        Ok(Self {
            root,
            socket_dir,
            binaries,
        })
    }

    /// The directory that holds the cluster.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.root.join("server.log")
    }

    fn password_file(&self) -> PathBuf {
        self.root.join("superuser.password")
    }

    /// The superuser's password, when the cluster was initialised with one.
    fn password(&self) -> Option<String> {
        fs::read_to_string(self.password_file())
            .ok()
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
    }

    /// Takes an exclusive lock on `name` under the root, failing at once if another process holds it.
    pub fn try_lock(&self, name: &str) -> Result<Option<File>, LocalPgError> {
        let file = self.lock_file(name)?;
        match file.try_lock_exclusive() {
            Ok(()) => Ok(Some(file)),
            Err(_) => Ok(None),
        }
    }

    /// Takes a lock on `name` under the root, waiting for it.
    pub fn lock(&self, name: &str, exclusive: bool) -> Result<File, LocalPgError> {
        let file = self.lock_file(name)?;
        let locked = if exclusive {
            file.lock_exclusive()
        } else {
            file.lock_shared()
        };
        locked.map_err(io_err(format!("lock {name}")))?;
        Ok(file)
    }

    fn lock_file(&self, name: &str) -> Result<File, LocalPgError> {
        let path = self.root.join(name);
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err(format!("open {}", path.display())))
    }

    /// Runs `initdb` unless the data directory already holds a cluster.
    pub fn ensure_initialized(&self) -> Result<bool, LocalPgError> {
        if self.data_dir().join("PG_VERSION").is_file() {
            return Ok(false);
        }
        // A random superuser password, readable only by this user and the server's: the socket
        // directory is private too, but a password means nobody else on the machine gets in even
        // if a directory is opened up later.
        let password = {
            use base64::Engine;
            let mut bytes = [0u8; 24];
            rand::fill(&mut bytes[..]);
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        };
        let password_file = self.password_file();
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(0o600)
                .open(&password_file)
                .map_err(io_err(format!("create {}", password_file.display())))?;
            file.write_all(password.as_bytes())
                .map_err(io_err(format!("write {}", password_file.display())))?;
        }
        restrict(&password_file, 0o600)?;
        self.binaries.chown_for_server(&password_file)?;
        let output = self
            .binaries
            .command("initdb")
            .arg("-D")
            .arg(self.data_dir())
            .arg(format!("--pwfile={}", password_file.display()))
            .args([
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-instructions",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(io_err("run initdb"))?;
        check("initdb", output)?;
        Ok(true)
    }

    /// Whether a server is running on this cluster's data directory.
    pub fn is_running(&self) -> bool {
        self.binaries
            .command("pg_ctl")
            .arg("status")
            .arg("-D")
            .arg(self.data_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|status| status.success())
            .unwrap_or(false)
    }

    /// Starts the server (Unix socket only) and waits until it accepts connections.
    pub fn start(&self, durable: bool) -> Result<(), LocalPgError> {
        let mut options = format!(
            "-k {} -c listen_addresses='' -c unix_socket_permissions=0700 -c max_connections=300 \
             -c shared_buffers=64MB",
            self.socket_dir.display()
        );
        if !durable {
            options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let log = self.log_file();
        // The server user must be able to write the log; create it first and hand it over.
        File::create(&log).map_err(io_err(format!("create {}", log.display())))?;
        self.binaries.chown_for_server(&log)?;
        let output = self
            .binaries
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .stdin(Stdio::null())
            .output()
            .map_err(io_err("run pg_ctl start"))?;
        if !output.status.success() {
            let tail = fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(8).collect();
            return Err(LocalPgError::Command {
                command: "pg_ctl start".into(),
                log: format!(
                    "{}\n{}",
                    String::from_utf8_lossy(&output.stderr).trim(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ),
            });
        }
        Ok(())
    }

    /// Stops the server; `fast` disconnects clients, otherwise an immediate stop.
    pub fn stop(&self, fast: bool) -> Result<(), LocalPgError> {
        let output = self
            .binaries
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", if fast { "fast" } else { "immediate" }, "-w", "stop"])
            .stdin(Stdio::null())
            .output()
            .map_err(io_err("run pg_ctl stop"))?;
        check("pg_ctl stop", output)
    }

    /// A shell command that stops this server, for watchdog processes.
    pub fn stop_command_line(&self) -> String {
        let pg_ctl = self.binaries.bin_dir.join("pg_ctl");
        let stop = format!(
            "'{}' -D '{}' -m fast -w stop",
            pg_ctl.display(),
            self.data_dir().display()
        );
        match &self.binaries.run_as {
            Some(user) => format!("runuser -u {user} -- {stop}"),
            None => stop,
        }
    }

    /// Connection options for `database` over the cluster's socket.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        let options = PgConnectOptions::new()
            .socket(&self.socket_dir)
            .username("postgres")
            .database(database);
        match self.password() {
            Some(password) => options.password(&password),
            None => options,
        }
    }

    /// A `DATABASE_URL` for `database`, for tools such as `psql` and `pg_dump`.
    pub fn database_url(&self, database: &str) -> String {
        let credentials = match self.password() {
            // URL-safe base64: nothing to escape.
            Some(password) => format!("postgres:{password}"),
            None => "postgres".to_owned(),
        };
        format!(
            "postgres://{credentials}@localhost/{database}?host={}",
            self.socket_dir.display()
        )
    }

    /// Writes the pid of this process into `name` under the root (used to say who holds a lock).
    pub fn write_owner(&self, file: &mut File) -> Result<(), LocalPgError> {
        file.set_len(0).map_err(io_err("truncate lock file"))?;
        writeln!(file, "{}", std::process::id()).map_err(io_err("write lock file"))
    }
}

fn check(command: &str, output: Output) -> Result<(), LocalPgError> {
    if output.status.success() {
        return Ok(());
    }
    let mut log = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if log.is_empty() {
        log = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    }
    Err(LocalPgError::Command {
        command: command.to_owned(),
        log,
    })
}

fn sha2_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(bytes))
}

/// Sets `path`'s permission bits.
fn restrict(path: &Path, mode: u32) -> Result<(), LocalPgError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(io_err(format!("restrict {}", path.display())))
}

/// Creates `dir` as a private directory, or accepts it only when it is ours (or the server
/// user's) and private: a directory someone else created in `/tmp` is refused, not used.
fn private_dir(dir: &Path, binaries: &ServerBinaries) -> Result<(), LocalPgError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => {
            return Err(LocalPgError::Io {
                context: format!("create {}", dir.display()),
                source: err,
            });
        }
    }
    let meta = fs::symlink_metadata(dir).map_err(io_err(format!("inspect {}", dir.display())))?;
    let me = nix::unistd::Uid::current().as_raw();
    let server = binaries
        .run_as
        .as_deref()
        .and_then(|user| nix::unistd::User::from_name(user).ok().flatten())
        .map(|user| user.uid.as_raw());
    let owned = meta.uid() == me || Some(meta.uid()) == server;
    if !meta.is_dir() || !owned || meta.mode() & 0o077 != 0 {
        return Err(LocalPgError::Io {
            context: format!(
                "{} exists but is not a private directory of this user (owner uid {}, mode {:o}); \
                 remove it or use a shorter checkout path",
                dir.display(),
                meta.uid(),
                meta.mode() & 0o777
            ),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_server_binaries_explain_what_to_install_or_configure() {
        let empty = std::env::temp_dir().join(format!("samgate-empty-{}", std::process::id()));
        let err = ServerBinaries::discover_in(vec![empty]).expect_err("nothing to find");
        let message = err.to_string();
        assert!(matches!(err, LocalPgError::BinariesNotFound));
        assert!(message.contains("apt-get install postgresql"), "{message}");
        assert!(message.contains("DATABASE_URL"), "{message}");
    }
}
