//! CPU over one measured phase, per process: the proxy's, the mock's, the load generator's
//! (this process), everything else on the machine, and the kernel's interrupt time.

use crate::procfs::{self, Cpu};
use serde::Serialize;

/// CPU seconds spent during a phase.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PhaseCpu {
    /// The proxy's user + system time (0 in a direct phase).
    pub proxy_s: f64,
    pub mock_s: f64,
    pub loadgen_s: f64,
    /// Every other process: the measurement is only as clean as this is small.
    pub other_s: f64,
    /// Interrupts (loopback TCP is processed there, ours included).
    pub interrupt_s: f64,
}

/// Readings taken when a phase starts.
pub struct Meter {
    proxy: Option<(u32, Cpu)>,
    mock: (u32, Cpu),
    me: (u32, Cpu),
    machine: procfs::MachineCpu,
}

impl Meter {
    pub fn start(proxy_pid: Option<u32>, mock_pid: u32) -> Meter {
        let me = std::process::id();
        let read = |pid| procfs::cpu(pid).unwrap_or_default();
        Meter {
            proxy: proxy_pid.map(|pid| (pid, read(pid))),
            mock: (mock_pid, read(mock_pid)),
            me: (me, read(me)),
            machine: procfs::machine_cpu().unwrap_or_default(),
        }
    }

    pub fn finish(&self) -> PhaseCpu {
        let since =
            |(pid, before): (u32, Cpu)| procfs::cpu(pid).unwrap_or_default().since(before).total();
        let machine = procfs::machine_cpu().unwrap_or_default();
        let proxy_s = self.proxy.map_or(0.0, since);
        let mock_s = since(self.mock);
        let loadgen_s = since(self.me);
        PhaseCpu {
            proxy_s,
            mock_s,
            loadgen_s,
            other_s: (machine.processes - self.machine.processes - proxy_s - mock_s - loadgen_s)
                .max(0.0),
            interrupt_s: machine.interrupts - self.machine.interrupts,
        }
    }
}
