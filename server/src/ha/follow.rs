//! Every second, each replica puts in force what the shared store says
//! ([`adopt_from_store`]); the leader also reconciles etcd RBAC when another replica said nodes
//! changed, and at once after taking the lead.

use super::Replicas;
use crate::metrics::Metrics;
use calseg_control::Control;
use calseg_control::adopt::adopt_from_store;
use std::sync::Arc;
use std::time::Duration;

/// Every second: puts the store's policy and rollout in force; on the leader, reconciles etcd
/// RBAC when another replica said nodes changed, and at once after taking the lead.
pub async fn follow_store(control: Arc<Control>, metrics: Arc<Metrics>, replicas: Arc<Replicas>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut led = false;
    loop {
        every.tick().await;
        {
            let _one_at_a_time = control.rollout_lock.lock().await;
            if let Err(error) = adopt_from_store(&control).await {
                tracing::warn!(kind = %error.kind, "following the store: {} (will retry)", error.message);
            }
        }
        let leads = replicas.leads();
        metrics.set_leader(leads);
        if leads {
            match replicas.nodes_changed.take().await {
                Ok(changed) if changed || !led => control.poke_local_reconciler(),
                Ok(_) => {}
                Err(error) => tracing::warn!("reading the nodes-changed signal: {error}"),
            }
        }
        led = leads;
    }
}
