//! An open client connection's share of the limits: its `--max-connections` permit, its place
//! in its IP's count, and the active-connections gauge. An upgraded WebSocket keeps it until
//! the socket closes.

use crate::access::ip_slots::IpSlot;
use crate::ops::telemetry;
use tokio::sync::OwnedSemaphorePermit;

/// See the module docs; dropping it gives everything back.
pub struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
    _per_ip: Option<IpSlot>,
    _active: telemetry::Active,
}

impl ConnectionSlot {
    pub fn new(permit: OwnedSemaphorePermit, per_ip: Option<IpSlot>) -> ConnectionSlot {
        ConnectionSlot {
            _permit: permit,
            _per_ip: per_ip,
            _active: telemetry::Active::connection(),
        }
    }
}
