//! Talks to systemd's manager over D-Bus (zbus): reads a unit's state and restarts it.
//!
//! The connection can be the host's system bus or any bus address, so tests can drive the
//! systemd of a sandboxed host from outside it.

use std::time::Duration;
use thiserror::Error;
use zbus::proxy::CacheProperties;
use zbus::zvariant::OwnedObjectPath;

/// Why a call to systemd failed.
#[derive(Debug, Error)]
pub enum SystemdError {
    #[error("cannot connect to systemd's D-Bus at {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: zbus::Error,
    },
    #[error("systemd call {call} for unit {unit} failed: {source}")]
    Call {
        call: &'static str,
        unit: String,
        #[source]
        source: zbus::Error,
    },
    #[error("unit {unit} did not become active within {waited:?} (last state {state})")]
    NotActive {
        unit: String,
        waited: Duration,
        state: String,
    },
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
trait Manager {
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn reload(&self) -> zbus::Result<()>;
    #[zbus(property)]
    fn system_state(&self) -> zbus::Result<String>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1"
)]
trait Unit {
    #[zbus(property)]
    fn load_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn sub_state(&self) -> zbus::Result<String>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Service",
    default_service = "org.freedesktop.systemd1"
)]
trait Service {
    #[zbus(property, name = "MainPID")]
    fn main_pid(&self) -> zbus::Result<u32>;
    #[zbus(property, name = "NRestarts")]
    fn n_restarts(&self) -> zbus::Result<u32>;
}

/// A unit's state as systemd reports it at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitStatus {
    /// `loaded`, `not-found`, `masked`, ...
    pub load_state: String,
    /// `active`, `activating`, `failed`, `inactive`, ...
    pub active_state: String,
    pub sub_state: String,
    /// 0 when the unit has no running main process (or is not a service).
    pub main_pid: u32,
    /// How often systemd restarted the service by itself (Restart=): rising means it loops.
    pub n_restarts: u32,
}

impl UnitStatus {
    /// True when the unit file exists and systemd loaded it.
    pub fn is_installed(&self) -> bool {
        self.load_state == "loaded"
    }
}

/// One unit of a [`Systemd`], its object path resolved.
pub struct UnitHandle<'a> {
    name: String,
    unit: UnitProxy<'a>,
    /// For `.service` units: main PID and restart count.
    service: Option<ServiceProxy<'a>>,
}

impl UnitHandle<'_> {
    /// The unit's state now.
    pub async fn status(&self) -> Result<UnitStatus, SystemdError> {
        let call = async {
            // The reads of one interface go out together: one wait for their replies.
            let (load_state, active_state, sub_state) = tokio::try_join!(
                self.unit.load_state(),
                self.unit.active_state(),
                self.unit.sub_state()
            )?;
            let (main_pid, n_restarts) = match &self.service {
                Some(service) if load_state == "loaded" => {
                    tokio::try_join!(service.main_pid(), service.n_restarts())?
                }
                _ => (0, 0),
            };
            Ok(UnitStatus {
                load_state,
                active_state,
                sub_state,
                main_pid,
                n_restarts,
            })
        };
        call.await.map_err(|source| SystemdError::Call {
            call: "Get",
            unit: self.name.clone(),
            source,
        })
    }
}

/// A handle on one systemd manager.
#[derive(Clone)]
pub struct Systemd {
    conn: zbus::Connection,
}

impl Systemd {
    /// Connects to the host's system bus.
    pub async fn system() -> Result<Self, SystemdError> {
        let conn = zbus::Connection::system()
            .await
            .map_err(|source| SystemdError::Connect {
                address: "system bus".into(),
                source,
            })?;
        Ok(Self { conn })
    }

    /// Connects to a bus at a D-Bus address such as `unix:path=/run/dbus/system_bus_socket`.
    pub async fn at_address(address: &str) -> Result<Self, SystemdError> {
        let connect = async { zbus::connection::Builder::address(address)?.build().await };
        let conn = connect.await.map_err(|source| SystemdError::Connect {
            address: address.to_owned(),
            source,
        })?;
        Ok(Self { conn })
    }

    async fn manager(&self) -> zbus::Result<ManagerProxy<'_>> {
        ManagerProxy::builder(&self.conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
    }

    /// The manager's overall state: `running`, `degraded`, `starting`, ...
    pub async fn system_state(&self) -> Result<String, SystemdError> {
        let call = async { self.manager().await?.system_state().await };
        call.await.map_err(|source| SystemdError::Call {
            call: "SystemState",
            unit: String::new(),
            source,
        })
    }

    /// Makes systemd re-read unit files (`systemctl daemon-reload`).
    pub async fn daemon_reload(&self) -> Result<(), SystemdError> {
        let call = async { self.manager().await?.reload().await };
        call.await.map_err(|source| SystemdError::Call {
            call: "Reload",
            unit: String::new(),
            source,
        })
    }

    /// Reads a unit's load and active state, main PID and restart count.
    pub async fn unit_status(&self, unit: &str) -> Result<UnitStatus, SystemdError> {
        self.unit(unit).await?.status().await
    }

    /// Resolves a unit's object path once (`LoadUnit`), for repeated [`UnitHandle::status`]
    /// reads that then cost only the property reads.
    pub async fn unit(&self, unit: &str) -> Result<UnitHandle<'_>, SystemdError> {
        let resolve = async {
            let path = self.manager().await?.load_unit(unit).await?;
            let unit_proxy = UnitProxy::builder(&self.conn)
                .path(path.clone())?
                .cache_properties(CacheProperties::No)
                .build()
                .await?;
            let service = if unit.ends_with(".service") {
                let proxy = ServiceProxy::builder(&self.conn)
                    .path(path)?
                    .cache_properties(CacheProperties::No)
                    .build()
                    .await?;
                Some(proxy)
            } else {
                None
            };
            Ok((unit_proxy, service))
        };
        let (unit_proxy, service) = resolve.await.map_err(|source| SystemdError::Call {
            call: "LoadUnit",
            unit: unit.to_owned(),
            source,
        })?;
        Ok(UnitHandle {
            name: unit.to_owned(),
            unit: unit_proxy,
            service,
        })
    }

    /// Queues a restart of the unit (mode `replace`) and returns once systemd accepted the job.
    pub async fn restart(&self, unit: &str) -> Result<(), SystemdError> {
        let call = async {
            self.manager()
                .await?
                .restart_unit(unit, "replace")
                .await
                .map(drop)
        };
        call.await.map_err(|source| SystemdError::Call {
            call: "RestartUnit",
            unit: unit.to_owned(),
            source,
        })
    }

    /// Polls until the unit is `active`, or fails once `timeout` has passed.
    pub async fn wait_active(
        &self,
        unit: &str,
        timeout: Duration,
    ) -> Result<UnitStatus, SystemdError> {
        let started = tokio::time::Instant::now();
        loop {
            let status = self.unit_status(unit).await?;
            if status.active_state == "active" {
                return Ok(status);
            }
            if started.elapsed() >= timeout {
                return Err(SystemdError::NotActive {
                    unit: unit.to_owned(),
                    waited: timeout,
                    state: format!("{}/{}", status.active_state, status.sub_state),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
